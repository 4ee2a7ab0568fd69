"""The work behind ``facegate models build``: reuse a finished cached build, or build one.

The cache check (recipe and build key) is pure Python, so a device without the converter extra
can still install a bundle that was built into its cache; only an actual build imports the
converters, and so onnx and TensorFlow.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from facegate.bundle import Bundle
from facegate.bundle.install import copy_into_place
from facegate.converters import recipe as recipes
from facegate.errors import BundleError, FacegateError
from facegate.host.paths import cache_dir, models_dir


def finished(out: Path, key: str) -> bool:
    """Whether ``out`` holds a complete build with build key ``key`` whose files all verify."""
    try:
        bundle = Bundle.load(out)
    except BundleError:
        return False
    if bundle.manifest.get("build_key") != key:
        return False
    try:
        for entry in bundle.entries:
            bundle.verify_file(entry)
    except FacegateError:
        return False
    return True


def _builder(name: str) -> ModuleType:
    """The converter pipeline, or one line saying which extra is missing."""
    try:
        from facegate.converters import build
    except ImportError as err:
        if (err.name or "").startswith("facegate"):
            raise
        raise FacegateError(
            f"no finished build of {name!r} in the cache, and building one needs the converter "
            f"extra ({err.name} is missing): pip install 'facegate[convert]', or install a "
            "packed bundle with `facegate models install FILE|URL`"
        ) from err
    return build


def build_bundle(
    name: str,
    *,
    force: bool = False,
    source_dir: Path | None = None,
    calib: Path | None = None,
    progress: Callable[[], object] | None = None,
) -> tuple[str, Path, str]:
    """Build (or reuse) recipe ``name`` and install it in the state dir: (state, folder, key)."""
    recipe = recipes.load(name)
    key = recipe.build_key()
    cached = cache_dir() / "bundles" / f"{recipe.name}-{key}"
    target = models_dir() / recipe.name
    state = "cached"
    if force or not finished(cached, key):
        builder = _builder(recipe.name)
        with progress() if progress else _quiet() as bar:
            builder.build(recipe, cached, source_dir, calib, bar)
        state = "built"
    if not finished(target, key):
        copy_into_place(cached, target, leave_out=("rejected",))
    return state, target, key


def _quiet() -> object:
    """A progress display that shows nothing."""
    from rich.progress import Progress

    return Progress(disable=True)


def run(args: argparse.Namespace, progress: Callable[[], object]) -> int:
    """``facegate models build``: build or reuse, then print the build report."""
    from facegate.cli.common import emit_json

    state, target, key = build_bundle(
        args.bundle,
        force=args.force,
        source_dir=args.source_dir,
        calib=args.calib,
        progress=progress,
    )
    report = json.loads((target / "report.json").read_text())
    if args.json:
        emit_json({**report, "state": state, "path": str(target)})
        return 0
    from facegate.converters.report import VariantReport, print_table

    rows = [VariantReport(**v) for v in report["variants"]]
    print_table(rows, f"bundle {target.name} ({state}, key {key}) -> {target}")
    return 0
