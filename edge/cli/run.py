"""``facegate run``: the daemon, from a config file and/or quick-start flags."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facegate.errors import ConfigError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run``."""
    p = sub.add_parser("run", help="watch a camera and emit events (the service)")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument(
        "--source", help="camera index, /dev/videoN, rtsp/http URL, file, folder, or picamera2"
    )
    p.add_argument(
        "--sink",
        action="append",
        metavar="SPEC",
        help="jsonl:PATH | jsonl:- | mqtt://HOST[:PORT] | http(s)://URL (repeatable; "
        "replaces the config's sinks)",
    )
    p.add_argument("--camera", help="camera name for events and topics")
    p.add_argument("--max-fps", type=float, help="process at most this many frames per second")
    p.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop frames to keep up (default: yes for cameras, no for files)",
    )
    p.add_argument("--bundle", help="bundle name or folder")
    p.add_argument("--backend", choices=["auto", "onnxruntime", "litert"])
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"])
    p.add_argument("--threads", type=int)
    p.add_argument("--threshold", type=float)
    p.add_argument(
        "--votes",
        type=int,
        metavar="N",
        help="agreeing frames before a face is named (default: 3; 1 for a folder of photos)",
    )
    p.add_argument("--gallery", help="gallery database")
    p.set_defaults(func=cmd_run)


def load_config(args: argparse.Namespace) -> object:
    """The config file (or defaults) with the command line's flags applied."""
    from facegate import config as cfg

    base = cfg.load(args.config) if args.config else cfg.default()
    return cfg.apply_overrides(
        base,
        source=args.source,
        sinks=args.sink,
        camera=args.camera,
        max_fps=args.max_fps,
        realtime=args.realtime,
        bundle=args.bundle,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        threshold=args.threshold,
        gallery=args.gallery,
        votes=args.votes,
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon; a finite source ends it with exit 0 after its last frame."""
    from facegate.service import daemon

    config = load_config(args)
    level = getattr(logging, config.service.log_level.upper(), logging.INFO)
    if args.verbose == 0:
        logging.getLogger().setLevel(level)

    def reload() -> object:
        try:
            return load_config(args)
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration: %s", err)
            return config

    return daemon.run(config, reload)
