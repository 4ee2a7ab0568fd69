"""The ``facegate`` command: models, gallery, identify, verify, eval, run."""

from __future__ import annotations

import os

# One probe against the gallery is a matrix-vector product bound by memory bandwidth: on a
# 2-core board a second BLAS thread only contends (100k templates: 8.5 ms with two, 5.3 ms with
# one). Model inference has its own --threads. Set before numpy loads; the user's value wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from facegate import __version__  # noqa: E402
from facegate.errors import FacegateError  # noqa: E402
from facegate.text import visible  # noqa: E402

log = logging.getLogger("facegate")


# Each command's module, so that a command imports only its own (``identify`` answers without
# loading the daemon, the config schema, MQTT or cryptography); help and unknown names load all.
COMMAND_MODULES = {
    "models": "models",
    "gallery": "gallery",
    "identify": "recognise",
    "verify": "recognise",
    "demo": "demo",
    "eval": "evaluate",
    "run": "run",
    "check-config": "check_config",
    "fleet": "fleet",
    "liveness": "liveness",
    "eval-liveness": "liveness",
    "unknowns": "unknowns",
}
ALL_MODULES = (
    "models", "gallery", "recognise", "demo", "evaluate", "run", "check_config", "fleet",
    "liveness", "unknowns",
)


def _command(argv: list[str]) -> str | None:
    """The command named on the command line: the first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    module = COMMAND_MODULES.get(_command(argv) or "")
    parser = argparse.ArgumentParser(
        prog="facegate", description="Face recognition for edge devices"
    )
    parser.add_argument("--version", action="version", version=f"facegate {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (module,) if module else ALL_MODULES:
        importlib.import_module(f"facegate.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one command; user errors become one line on stderr and exit 1."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv).parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FacegateError as err:
        print(f"facegate: error: {visible(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facegate: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, permissions: the OS says it best
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"facegate: error: {visible(err.strerror or err)}{visible(where)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
