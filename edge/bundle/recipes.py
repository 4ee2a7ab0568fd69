"""The bundle recipes shipped with facegate (``models/*.json``, package ``facegate.recipes``)."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def recipes_dir() -> Traversable:
    """The folder of recipe files, wherever facegate is installed."""
    return resources.files("facegate.recipes")


def recipe_names() -> list[str]:
    """Names of the recipes that can be built (``facegate models build --bundle NAME``)."""
    return sorted(
        p.name[: -len(".json")] for p in recipes_dir().iterdir() if p.name.endswith(".json")
    )
