"""Model bundles: a folder with ``manifest.json`` that says everything the runtime needs.

The runtime never guesses: input shape, layout, colour order, normalisation, output names and
embedding size all come from the manifest, and a file whose sha256 differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facegate.backends import Backend, open_backend
from facegate.errors import BundleError, ModelError

if TYPE_CHECKING:
    from facegate.backends.onnxruntime import Providers

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROLES = ("pnet", "rnet", "onet", "embedder")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What a model expects: NHWC float32 of ``shape``, ``(x - mean) / std`` in ``colour`` order."""

    shape: tuple[int | None, ...]
    layout: str
    colour: str
    mean: float
    std: float


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
        ),
        outputs=tuple(o["name"] for o in raw["outputs"]),
        embedding_size=raw.get("embedding_size"),
        model_id=raw["model_id"],
    )


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
        """Read and validate ``root/manifest.json``."""
        path = root / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise BundleError(
                f"no model bundle at {root}: install one with `facegate models install FILE|URL`"
                " (or build it: `facegate models build`)"
            ) from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleError(f"{path}: unreadable manifest ({err})") from err
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA_VERSION:
            found = manifest.get("schema") if isinstance(manifest, dict) else None
            raise BundleError(
                f"{path}: manifest schema {found!r} is not supported "
                f"(this facegate reads schema {SCHEMA_VERSION})"
            )
        try:
            return cls(root, manifest)
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{path}: malformed manifest (missing or bad {err})") from err

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
        path = self.root / entry.file
        if not path.is_file():
            raise ModelError(
                f"{path}: model file is missing; reinstall the bundle with"
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
