"""Model bundles: a folder with ``manifest.json`` that says everything the runtime needs.

The runtime never guesses: input shape, layout, colour order, normalisation, output names and
embedding size all come from the manifest, and a file whose sha256 differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, cast

from facegate.backends import Backend, open_backend
from facegate.errors import BundleError, ModelError

if TYPE_CHECKING:
    from facegate.backends.onnxruntime import Providers

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROLES = ("pnet", "rnet", "onet", "embedder")  # every bundle has these
OPTIONAL_ROLES = ("liveness",)  # a bundle may add these stages
LIVENESS_SCORES = ("attack-probability",)  # softmax [live, attack]: the last column
CROP_SCALE_RANGE = (0.5, 4.0)  # face crop side / detector box side (1 = the box, 4 = a wide view)
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8", "int8-full")  # int8-full: LiteRT full-integer variant
MAX_MANIFEST_BYTES = 1 << 20  # a built manifest is ~15 KB; a megabyte is no manifest we wrote
MAX_MODELS = 64  # 5 roles x 2 formats x 4 precisions = 40 variants at most today
MAX_SIDE = 4096  # no face model takes an input side over 4096 px (P-Net's is dynamic: null)
MEAN_RANGE = (0.0, 255.0)  # a pixel mean lies within the 8-bit pixel range
# Normalisations in use: std 1 (raw pixels), ~58 (ImageNet), 127.5/128 (to ±1), 255 (to 0..1).
# Outside this range is a typo, and 0 divides by zero.
STD_RANGE = (0.5, 512.0)
EMBEDDING_RANGE = (16, 4096)  # face embedders give 128-512 dimensions; ours gives 192
SHORT, LONG = 200, 2000  # characters in a name/version and in a description


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What a model expects: NHWC float32 of ``shape``, ``(x - mean) / std`` in ``colour`` order."""

    shape: tuple[int | None, ...]
    layout: str
    colour: str
    mean: float
    std: float
    crop_scale: float | None = None  # liveness: crop side / the detector box's longer side
    score: str | None = None  # liveness: how the outputs become one attack score
    threshold: float | None = None  # liveness: attack score at which a face is an attack


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model file of the bundle."""

    role: str
    file: str
    format: str
    precision: str
    sha256: str
    input: InputSpec
    outputs: tuple[str, ...]
    embedding_size: int | None
    model_id: str


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Check = Callable[[object, str], None]


class _Invalid(Exception):
    """A manifest value that breaks the schema: ``field`` says where, ``problem`` what."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(
    max_len: int = SHORT, choices: tuple[str, ...] = (), pattern: str = "", min_len: int = 1
) -> Check:
    def check(value: object, field: str) -> None:
        if not isinstance(value, str) or not min_len <= len(value) <= max_len:
            raise _Invalid(
                field, f"must be a text of {min_len}-{max_len} characters, not {_show(value)}"
            )
        if choices and value not in choices:
            raise _Invalid(field, f"must be one of {', '.join(choices)}, not {_show(value)}")
        if pattern and not re.fullmatch(pattern, value):
            raise _Invalid(field, f"is malformed: {_show(value)}")

    return check


def _integer(lo: int, hi: int) -> Check:
    def check(value: object, field: str) -> None:
        if type(value) is not int or not lo <= value <= hi:
            raise _Invalid(field, f"must be a whole number in [{lo}, {hi}], not {_show(value)}")

    return check


def _number(lo: float, hi: float) -> Check:
    def check(value: object, field: str) -> None:
        if type(value) not in (int, float) or not (math.isfinite(value) and lo <= value <= hi):
            raise _Invalid(
                field, f"must be a finite number in [{lo:g}, {hi:g}], not {_show(value)}"
            )

    return check


def _boolean(value: object, field: str) -> None:
    if not isinstance(value, bool):
        raise _Invalid(field, f"must be true or false, not {_show(value)}")


def _nullable(inner: Check) -> Check:
    def check(value: object, field: str) -> None:
        if value is not None:
            inner(value, field)

    return check


def _array(item: Check, lo: int, hi: int) -> Check:
    def check(value: object, field: str) -> None:
        if not isinstance(value, list) or not lo <= len(value) <= hi:
            raise _Invalid(field, f"must be a list of {lo}-{hi} items, not {_show(value)}")
        for i, v in enumerate(value):
            item(v, f"{field}[{i}]")

    return check


def _key(prefix: str, key: str) -> str:
    return prefix + (key if key.isidentifier() else _show(key))


def _record(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    known = {**required, **(optional or {})}

    def check(value: object, field: str) -> None:
        if not isinstance(value, dict):
            raise _Invalid(field or "manifest", f"must be an object, not {_show(value)}")
        prefix = f"{field}." if field else ""
        for key in value:
            if key not in known:
                raise _Invalid(_key(prefix, key), "is unknown to this facegate")
        for key, sub in known.items():
            if key in value:
                sub(value[key], prefix + key)
            elif key in required:
                raise _Invalid(prefix + key, "is missing")

    return check


def _mapping(inner: Check, hi: int) -> Check:
    def check(value: object, field: str) -> None:
        if not isinstance(value, dict) or len(value) > hi:
            raise _Invalid(field, f"must be an object of at most {hi} entries, not {_show(value)}")
        for key, v in value.items():
            inner(v, _key(f"{field}.", key))

    return check


def _file(value: object, field: str) -> None:
    _text(255)(value, field)
    pure = PurePosixPath(str(value))
    if pure.is_absolute() or ".." in pure.parts or "\\" in str(value) or "\0" in str(value):
        raise _Invalid(field, f"must name a file inside the bundle folder, not {_show(value)}")


_SHA256 = _text(64, pattern="[0-9a-f]{64}")
_NAME = _text(pattern=r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_INPUT = _record(
    {
        "shape": _array(_nullable(_integer(1, MAX_SIDE)), 4, 4),
        "layout": _text(choices=("NHWC",)),
        "colour": _text(choices=("RGB", "BGR")),
        "mean": _number(*MEAN_RANGE),
        "std": _number(*STD_RANGE),
    },
    {
        "dtype": _text(choices=("float32",)),
        "alignment": _text(choices=("arcface-112",)),
        "l2_normalise": _boolean,
        "crop_scale": _number(*CROP_SCALE_RANGE),
        "score": _text(choices=LIVENESS_SCORES),
        "threshold": _number(0.0, 1.0),
    },
)
_SOURCE = _record(
    {"package": _text(), "version": _text(), "registry": _text(), "sha256": _SHA256},
    {"licence": _text(), "member": _text(LONG)},
)
_MODEL = _record(
    {
        "role": _text(choices=ROLES + OPTIONAL_ROLES),
        "file": _file,
        "format": _text(choices=FORMATS),
        "precision": _text(choices=PRECISIONS),
        "sha256": _SHA256,
        "bytes": _integer(0, 1 << 34),
        "input": _INPUT,
        "outputs": _array(_record({"name": _NAME}), 1, 8),
        "model_id": _NAME,
        "params": _integer(0, 10**12),
        "macs": _integer(0, 10**15),
        "latency_ms": _number(0, 1e6),
        "source": _SOURCE,
        "converter_version": _text(),
    },
    {
        "embedding_size": _nullable(_integer(*EMBEDDING_RANGE)),
        "macs_shape": _array(_integer(1, MAX_SIDE), 4, 4),
        "parity": _mapping(_number(-1e9, 1e9), 16),
    },
)
_PHOTO = _record({"file": _text(255, pattern=r"(?!\.\.?$)[^/\\\x00]+"), "sha256": _SHA256})
_MANIFEST = _record(
    {
        "schema": _integer(SCHEMA_VERSION, SCHEMA_VERSION),
        "bundle": _NAME,
        "version": _NAME,
        "models": _array(_MODEL, 1, MAX_MODELS),
    },
    {
        "description": _text(LONG, min_len=0),
        "build_key": _text(64, pattern="[0-9a-f]+"),
        "built": _text(),
        "converter_version": _text(),
        "samples": _integer(0, 100_000),
        "held_out": _record(
            {
                "source": _text(choices=("samples", "calib-dir")),
                "calibrate": _array(_PHOTO, 0, 100_000),
                "check": _array(_PHOTO, 0, 100_000),
            }
        ),
    },
)


def _check_models(models: list[dict]) -> None:
    """Rules across fields: one entry per variant, colour input, an embedder's fixed size."""
    seen: dict[tuple[str, str, str], int] = {}
    for i, m in enumerate(models):
        key = (m["role"], m["format"], m["precision"])
        if key in seen:
            raise _Invalid(f"models[{i}]", f"repeats models[{seen[key]}] ({' '.join(key)})")
        seen[key] = i
        shape = m["input"]["shape"]
        if shape[3] != 3:
            raise _Invalid(f"models[{i}].input.shape", f"must end in 3 channels, not {shape}")
        if m["role"] == "embedder":
            if m.get("embedding_size") is None:
                raise _Invalid(f"models[{i}].embedding_size", "is missing for an embedder")
            if None in shape[1:3]:
                raise _Invalid(f"models[{i}].input.shape", f"needs a fixed size, not {shape}")
        if m["role"] == "liveness":
            _check_liveness(m, i)


def _check_liveness(m: dict, i: int) -> None:
    """A liveness model needs a fixed square input and says how to crop and score."""
    spec = m["input"]
    shape = spec["shape"]
    if None in shape[1:3] or shape[1] != shape[2]:
        raise _Invalid(f"models[{i}].input.shape", f"needs a fixed square size, not {shape}")
    for key in ("crop_scale", "score", "threshold"):
        if key not in spec:
            raise _Invalid(f"models[{i}].input.{key}", "is missing for a liveness model")


def _inside(root: Path, name: str) -> Path | None:
    """``root/name`` with links followed, or None where that leads out of ``root``."""
    base = root.resolve()
    path = (base / name).resolve()
    return path if path != base and path.is_relative_to(base) else None


def validate(manifest: object, root: Path) -> None:
    """Check every field's type and range, and that every model file lies inside ``root``."""
    _MANIFEST(manifest, "")
    models = cast(dict, manifest)["models"]
    _check_models(models)
    for i, m in enumerate(models):
        if _inside(root, m["file"]) is None:
            raise _Invalid(
                f"models[{i}].file", f"{_show(m['file'])} leads outside the bundle folder"
            )


def _entry(raw: dict) -> ModelEntry:
    spec = raw["input"]
    return ModelEntry(
        role=raw["role"],
        file=raw["file"],
        format=raw["format"],
        precision=raw["precision"],
        sha256=raw["sha256"],
        input=InputSpec(
            tuple(spec["shape"]),
            spec["layout"],
            spec["colour"],
            float(spec["mean"]),
            float(spec["std"]),
            spec.get("crop_scale"),
            spec.get("score"),
            spec.get("threshold"),
        ),
        outputs=tuple(o["name"] for o in raw["outputs"]),
        embedding_size=raw.get("embedding_size"),
        model_id=raw["model_id"],
    )


def _read(path: Path, root: Path) -> object:
    """The parsed manifest; a missing, huge, unreadable or too deeply nested one is refused."""
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(
                f"{path}: manifest too large ({size} bytes; a bundle's is well under "
                f"{MAX_MANIFEST_BYTES >> 20} MiB)"
            )
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BundleError(
            f"no model bundle at {root}: install one with `facegate models install FILE|URL`"
            " (or build it: `facegate models build`)"
        ) from err
    except RecursionError:
        raise BundleError(f"{path}: unreadable manifest (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: unreadable manifest ({err})") from err


class Bundle:
    """A loaded, validated manifest and the folder that holds its files."""

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = root
        self.manifest = manifest
        self.name: str = manifest["bundle"]
        self.version: str = manifest["version"]
        self.entries = [_entry(m) for m in manifest["models"]]

    @classmethod
    def load(cls, root: Path) -> Bundle:
        """Read ``root/manifest.json`` and validate all of it before anything uses it."""
        path = root / "manifest.json"
        manifest = _read(path, root)
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA_VERSION:
            found = manifest.get("schema") if isinstance(manifest, dict) else None
            raise BundleError(
                f"{path}: manifest schema {_show(found)} is not supported "
                f"(this facegate reads schema {SCHEMA_VERSION})"
            )
        try:
            validate(manifest, root)
        except _Invalid as err:
            raise BundleError(f"{path}: bad manifest: {err}") from None
        return cls(root, manifest)

    def has(self, role: str, fmt: str | None = None) -> bool:
        """Whether the bundle holds a model for ``role`` (in ``fmt``, when given)."""
        return any(e.role == role and fmt in (None, e.format) for e in self.entries)

    def entry(self, role: str, fmt: str, precision: str = "fp32") -> ModelEntry:
        """The model for ``role`` in ``fmt`` at ``precision``, falling back to FP32."""
        for want in (precision, "fp32"):
            for e in self.entries:
                if e.role == role and e.format == fmt and e.precision == want:
                    if want != precision:
                        log.info(
                            "%s: no %s %s variant in the bundle, using fp32", role, fmt, precision
                        )
                    return e
        raise BundleError(f"bundle {self.name} has no {fmt} model for {role}")

    def verify_file(self, entry: ModelEntry) -> Path:
        """Return the file's path after checking it exists and matches its sha256."""
        named = self.root / entry.file
        path = _inside(self.root, entry.file)
        if path is None:
            raise ModelError(f"{named}: leads outside the bundle folder {self.root}; not loaded")
        if not path.is_file():
            raise ModelError(
                f"{named}: model file is missing; reinstall the bundle with"
                " `facegate models install FILE|URL --force` (or `facegate models build`)"
            )
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise ModelError(
                f"{path.name}: sha256 mismatch (file {actual[:12]}…, manifest "
                f"{entry.sha256[:12]}…): the file is truncated or was modified"
            )
        return path

    def open(
        self, entry: ModelEntry, threads: int = 1, providers: Providers | None = None
    ) -> Backend:
        """Verify and open ``entry`` with its runtime; check the input signature."""
        path = self.verify_file(entry)
        backend = open_backend(path, entry.format, threads, list(entry.outputs), providers)
        got, want = backend.input_shape, entry.input.shape
        if len(got) != len(want) or any(
            w is not None and g != w for g, w in zip(got, want, strict=False)
        ):
            raise ModelError(f"{entry.file}: input shape {got} differs from the manifest's {want}")
        return backend

    @property
    def embedder_id(self) -> str:
        """The embedding space this bundle produces (same across formats and precisions)."""
        return self.entry("embedder", self.entries[0].format).model_id
