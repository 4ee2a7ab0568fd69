"""Bundle recipes (``models/*.json``): pinned sources, models, and the variants to build."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from facegate.bundle.recipes import recipe_names, recipes_dir
from facegate.converters import CONVERTER_VERSION
from facegate.converters.sources import Source
from facegate.errors import BundleError

# Converter modules that do not shape what a build produces (the CLI plumbing around it).
NOT_IN_BUILD_KEY = frozenset({"command.py", "tfjs_reader.py"})  # not used by `models build`


@dataclass(frozen=True, slots=True)
class ModelRecipe:
    """How to obtain one network."""

    role: str
    source: str
    member: str
    reader: str
    task: str
    latency_shape: tuple[int, ...]
    input: dict
    int8_float_convs: int = 0  # the first N convolutions stay float in the ONNX INT8 variant


@dataclass(frozen=True, slots=True)
class Variant:
    """One (format, precision) to build for some models."""

    format: str
    precision: str
    models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recipe:
    """A whole bundle recipe."""

    name: str
    version: str
    description: str
    sources: dict[str, Source]
    models: dict[str, ModelRecipe]
    variants: tuple[Variant, ...]
    samples: dict
    digest: str

    def build_key(self) -> str:
        """Changes whenever the recipe, its pinned sources or the converter code change."""
        text = f"{self.digest}:{CONVERTER_VERSION}:{code_digest()}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_digest() -> str:
    """Hash of the code that shapes a build: the converters and the detector/alignment."""
    from facegate.vision import align
    from facegate.vision.detect import mtcnn

    here = Path(__file__).resolve().parent
    files = sorted(p for p in here.glob("*.py") if p.name not in NOT_IN_BUILD_KEY) + [
        Path(mtcnn.__file__),
        Path(align.__file__),
    ]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def available() -> list[str]:
    """Names of the recipes shipped in ``models/``."""
    return recipe_names()


def load(name: str) -> Recipe:
    """Load the recipe ``models/<name>.json``."""
    path = recipes_dir() / f"{name}.json"
    if not path.is_file():
        raise BundleError(f"no bundle recipe named {name!r} (available: {', '.join(available())})")
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    try:
        sources = {k: Source(k, **v) for k, v in raw["sources"].items()}
        models = {
            role: ModelRecipe(
                role,
                m["source"],
                m.get("member", ""),
                m["reader"],
                m["task"],
                tuple(m["latency_shape"]),
                raw["input"][role],
                int(m.get("int8_float_convs", 0)),
            )
            for role, m in raw["models"].items()
        }
        variants = tuple(
            Variant(v["format"], v["precision"], tuple(v["models"])) for v in raw["variants"]
        )
        return Recipe(
            raw["bundle"],
            raw["version"],
            raw.get("description", ""),
            sources,
            models,
            variants,
            raw["samples"],
            hashlib.sha256(text.encode()).hexdigest(),
        )
    except (KeyError, TypeError) as err:
        raise BundleError(f"{path}: malformed recipe ({err})") from err
