"""``facegate check-config``: validate a daemon configuration file and summarise it."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facegate.cli.common import emit_json
from facegate.config import (
    CameraConfig,
    Config,
    ConfigProblems,
    JsonlSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    camera_list,
    explain,
    load,
)
from facegate.errors import ConfigError
from facegate.service.pipeline import PipelineSettings

if TYPE_CHECKING:
    from facegate.service.preflight import Preflight


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``check-config`` command."""
    p = sub.add_parser(
        "check-config", help="validate a daemon config file (every problem, by line)"
    )
    p.add_argument("file", type=Path, nargs="?", help="TOML config file")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument(
        "--explain", action="store_true", help="list every key: type, default, values, meaning"
    )
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Exit 0 with a summary when FILE is valid, 1 with every problem on stderr when not."""
    if args.explain:
        return print_explain(args.json)
    if args.file is None:
        raise ConfigError("check-config needs a FILE (or --explain)")
    from facegate.service import preflight

    try:
        config = load(args.file)
    except ConfigError as err:
        return report_problems(args.file, err, args.json)
    found = preflight.check(config)  # what the daemon checks at start-up, the same function
    if found.problems:
        return report_host_problems(args.file, found, args.json)
    if args.json:
        emit_json(
            {
                "file": str(args.file),
                "ok": True,
                "warnings": list(found.warnings),
                "config": redacted(config),
            }
        )
    else:
        print(f"{args.file}: ok")
        for line in summary(config):
            print(f"  {line}")
        for line in found.warnings:
            print(f"{args.file}: warning: {line}", file=sys.stderr)
    return 0


def report_problems(file: Path, err: ConfigError, as_json: bool) -> int:
    """Print every problem (stderr, one per line; or JSON on stdout) and return 1."""
    if as_json:
        problems = err.problems if isinstance(err, ConfigProblems) else ()
        found = [dataclasses.asdict(p) for p in problems] or [{"message": str(err)}]
        emit_json({"file": str(file), "ok": False, "problems": found})
    else:
        for line in str(err).splitlines():
            print(line, file=sys.stderr)
    return 1


def report_host_problems(file: Path, found: Preflight, as_json: bool) -> int:
    """Print what the preflight refused (stderr, one per line; or JSON on stdout); return 1."""
    problems, warnings = list(found.problems), list(found.warnings)
    if as_json:
        found_list = [{"message": p} for p in problems]
        emit_json({"file": str(file), "ok": False, "problems": found_list, "warnings": warnings})
        return 1
    for line in problems:
        print(f"{file}: {line}", file=sys.stderr)
    for line in warnings:
        print(f"{file}: warning: {line}", file=sys.stderr)
    return 1


def print_explain(as_json: bool) -> int:
    """Print every key with its type, default, accepted values and meaning."""
    rows = explain()
    if as_json:
        names = ("key", "type", "default", "values", "description")
        emit_json([dict(zip(names, row, strict=True)) for row in rows])
        return 0
    for key, kind, default, values, doc in rows:
        print(f"{key}: {kind}, default {default}" + (f", {values}" if values else ""))
        print(f"    {doc}")
    return 0


def hide_secrets(text: str) -> str:
    """``text`` with a URL's user info and every query value hidden (passwords, ?token=)."""
    text = re.sub(r"//[^/@\s]*@", "//***@", text)
    if "?" not in text:
        return text
    base, _, rest = text.partition("?")
    query, hash_, fragment = rest.partition("#")
    hidden = "&".join(
        part.partition("=")[0] + "=***" if "=" in part else "***" for part in query.split("&")
    )
    return f"{base}?{hidden}" + (hash_ + "***" if fragment else "")


def redacted(config: Config) -> dict[str, object]:
    """The config as a JSON-ready dict, camera and webhook URLs without user info."""
    data = dataclasses.asdict(config)
    for cam in (data["camera"], *data["cameras"]):
        if cam["source"]:
            cam["source"] = hide_secrets(cam["source"])
    for sink in data["sinks"]:
        if "url" in sink:
            sink["url"] = hide_secrets(sink["url"])
    return data


def describe_sink(sink: SinkConfig) -> str:
    """One sink in a few words."""
    if isinstance(sink, JsonlSinkConfig):
        return "jsonl " + ("stdout" if sink.path == "-" else sink.path)
    if isinstance(sink, MqttSinkConfig):
        user = f"{sink.username}@" if sink.username else ""
        tls = " tls" if sink.tls else ""
        return f"mqtt {user}{sink.host}:{sink.port}/{sink.prefix}{tls}"
    return f"webhook {hide_secrets(sink.url)}"


def describe_camera(cam: CameraConfig) -> str:
    """One camera in a line: name, source (without secrets), fps cap, detection rate."""
    source = hide_secrets(cam.source) if cam.source else "(unset: pass --source to run)"
    fps = f", at most {cam.max_fps:g} fps" if cam.max_fps else ""
    return f"camera {cam.name}: {source}{fps}, detect every {cam.detect_every} frame(s)"


def summary(config: Config) -> list[str]:
    """A few lines on what the daemon will do with ``config``."""
    models, rec, http = config.models, config.recognition, config.http
    snaps, web = config.snapshots, f"{http.host}:{http.port}"
    votes = PipelineSettings.from_config(config).votes  # unset: 3 for video, 1 for photos
    return [
        *map(describe_camera, camera_list(config)),
        f"models: bundle {models.bundle}, {models.backend} {models.precision}, "
        f"{models.threads} thread(s)",
        f"recognition: threshold {rec.threshold:g}, {votes} vote(s) to name",
        f"gallery: {config.gallery.path or '$FACEGATE_HOME/gallery.db'}",
        "snapshots: " + (f"{snaps.dir or '$FACEGATE_HOME/snapshots'}" if snaps.enabled else "off"),
        "sinks: " + (", ".join(map(describe_sink, config.sinks)) or "none"),
        "http: " + (web + (" (token)" if http.token_file else "") if http.enabled else "off"),
    ]
