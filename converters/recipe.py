"""Bundle recipes (``models/*.json``): pinned sources, models, and the variants to build."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from converters import CONVERTER_VERSION
from converters.sources import Source
from edge.errors import BundleError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "models"


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
    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "converters").glob("*.py")) + [
        root / "edge" / "detect" / "mtcnn.py", root / "edge" / "align.py"]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def available() -> list[str]:
    """Names of the recipes shipped in ``models/``."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def load(name: str) -> Recipe:
    """Load the recipe ``models/<name>.json``."""
    path = RECIPES_DIR / f"{name}.json"
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
                m["member"],
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
