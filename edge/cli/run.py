"""``facegate run``: the daemon, from a config file and/or quick-start flags."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

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
    p.add_argument(
        "--json",
        action="store_true",
        help="events as JSON lines on stdout (the same as --sink jsonl:-; logs go to stderr)",
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
    p.add_argument(
        "--providers",
        metavar="LIST",
        help="onnxruntime execution providers, e.g. cuda,cpu (replaces [runtime] providers)",
    )
    p.set_defaults(func=cmd_run)


def sink_specs(args: argparse.Namespace) -> list[str] | None:
    """The --sink specs, with ``jsonl:-`` added for --json (None: the config's sinks)."""
    specs = list(args.sink or [])
    if args.json and "jsonl:-" not in specs:
        specs.append("jsonl:-")
    return specs or None


def load_config(args: argparse.Namespace) -> object:
    """The config file (or defaults) with the command line's flags applied."""
    from dataclasses import replace

    from facegate import config as cfg
    from facegate.backends.onnxruntime import parse_providers
    from facegate.sinks.mqtt import with_instance

    providers = parse_providers(args.providers) if args.providers is not None else None
    base = cfg.load(args.config) if args.config else cfg.default()
    config = cfg.apply_overrides(
        base,
        source=args.source,
        sinks=sink_specs(args),
        camera=args.camera,
        max_fps=args.max_fps,
        realtime=args.realtime,
        bundle=args.bundle,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        threshold=args.threshold,
        gallery=args.gallery,
        providers=providers,
        votes=args.votes,
    )
    # MQTT topics name the device: the host, plus NAME for facegate@NAME's NAME.toml
    return replace(config, sinks=with_instance(config.sinks, args.config))


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon; a finite source ends it with exit 0 after its last frame.

    On SIGHUP the daemon calls ``load_config(args)`` again; a ConfigError there is logged and
    the running configuration (the last good one) stays.
    """
    from facegate.service import daemon

    config = load_config(args)
    level = getattr(logging, config.service.log_level.upper(), logging.INFO)
    if args.verbose == 0:
        logging.getLogger().setLevel(level)
    return daemon.run(config, lambda: load_config(args))
