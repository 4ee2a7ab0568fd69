"""Reading a configuration: TOML text or file, command-line overrides, resolved paths."""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

# A version test rather than try/except: checkers (vermin, mypy) then see 3.10 is covered.
if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from facegate.config.fields import Problems, build, show, unknown_key
from facegate.config.schema import CameraConfig, Config, SinkConfig
from facegate.errors import ConfigError


def _sink_tables() -> dict[str, type]:
    from facegate.sinks import SINK_KINDS

    return {name: kind.config for name, kind in SINK_KINDS.items()}


def _build_sinks(data: Any, problems: Problems) -> tuple[SinkConfig, ...]:
    """The ``[[sinks]]`` tables, each built by its ``type``."""
    if not isinstance(data, list | tuple):
        problems.add(("sinks",), "expected an array of tables ([[sinks]])")
        return ()
    sinks, tables = [], _sink_tables()
    for i, table in enumerate(data):
        if not isinstance(table, dict):
            problems.add(("sinks", i), f"expected a table, got {show(table)}")
        elif not isinstance(table.get("type"), str) or table["type"] not in tables:
            kind = table.get("type")
            got = "missing" if kind is None else f"got {show(kind)}"
            problems.add(("sinks", i, "type"), f"must be one of {', '.join(tables)}, {got}")
        else:
            sinks.append(build(tables[table["type"]], table, ("sinks", i), problems))
    return tuple(sinks)


def _build_cameras(data: Any, problems: Problems) -> tuple[CameraConfig, ...]:
    """The ``[[cameras]]`` tables: at least one, names unique."""
    if not isinstance(data, list | tuple) or not data:
        problems.add(("cameras",), "expected one or more tables ([[cameras]])")
        return ()
    cameras, first_with = [], {}
    for i, table in enumerate(data):
        cam = build(CameraConfig, table, ("cameras", i), problems)
        if cam is None:
            continue
        if cam.name in first_with:
            other = first_with[cam.name]
            problems.add(("cameras", i, "name"), f"{cam.name!r} is already cameras[{other}]'s name")
        first_with.setdefault(cam.name, i)
        cameras.append(cam)
    return tuple(cameras)


def _from_data(data: dict[str, Any], problems: Problems) -> Config:
    """A Config from parsed TOML, or ConfigProblems listing everything wrong with it."""
    hints, known = typing.get_type_hints(Config), {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    for key in (k for k in data if k not in known):
        problems.add((key,), unknown_key(key, known))
    if "camera" in data and "cameras" in data:
        problems.add(("camera",), "give one [camera] table or [[cameras]] tables, not both")
    for name in (f.name for f in fields(Config) if f.name in data):
        if name == "sinks":
            values[name] = _build_sinks(data[name], problems)
        elif name == "cameras":
            values[name] = _build_cameras(data[name], problems)
        else:
            values[name] = build(hints[name], data[name], (name,), problems)
    problems.raise_if_any()
    return Config(**values)


def parse(text: str, source: str = "<string>") -> Config:
    """Validate TOML ``text``; ``source`` names it in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: invalid TOML: {err}") from err
    except RecursionError as err:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from err
    return _from_data(data, Problems(source, text))


def load(path: str | Path) -> Config:
    """Read and validate the TOML file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from err
    return parse(text, str(path))


def default() -> Config:
    """The configuration with every default (no source: give one with --source)."""
    return Config()


def _sink_data(spec: str) -> dict[str, Any]:
    """A ``--sink`` spec as the TOML table it stands for, parsed by its sink kind."""
    from facegate.sinks import kind_for_spec

    return kind_for_spec(spec).from_spec(spec)


def parse_sink(spec: str) -> SinkConfig:
    """One sink from a ``--sink`` spec: jsonl:PATH, jsonl:-, mqtt://[USER@]HOST[:PORT], URL."""
    problems = Problems("--sink", flags={"sinks[0]": f"--sink {show(spec)}"})
    sink = _build_sinks([_sink_data(spec)], problems)
    problems.raise_if_any()
    return sink[0]


def apply_overrides(
    config: Config,
    source: str | None = None,
    sinks: list[str] | None = None,
    camera: str | None = None,
    max_fps: float | None = None,
    *,
    realtime: bool | None = None,
    bundle: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    threads: int | None = None,
    threshold: float | None = None,
    gallery: str | None = None,
    providers: tuple[str, ...] | None = None,
    votes: int | None = None,
) -> Config:
    """``config`` with the command line's quick-start flags applied (given ``sinks`` replace)."""
    given = {
        ("camera", "source", "--source"): source,
        ("camera", "name", "--camera"): camera,
        ("camera", "max_fps", "--max-fps"): max_fps,
        ("camera", "realtime", "--realtime"): realtime,
        ("models", "bundle", "--bundle"): bundle,
        ("models", "backend", "--backend"): backend,
        ("models", "precision", "--precision"): precision,
        ("models", "threads", "--threads"): threads,
        ("recognition", "threshold", "--threshold"): threshold,
        ("recognition", "votes", "--votes"): votes,
        ("gallery", "path", "--gallery"): gallery,
        ("runtime", "providers", "--providers"): providers,
    }
    data, flags = dataclasses.asdict(config), {}
    if config.cameras:
        return _override_cameras(config, data, given, sinks)
    del data["cameras"]
    for (table, key, flag), value in given.items():
        if value is not None:
            data[table][key], flags[f"{table}.{key}"] = value, flag
    if sinks is not None:
        data["sinks"] = [_sink_data(spec) for spec in sinks]
        flags.update({f"sinks[{i}]": f"--sink {show(s)}" for i, s in enumerate(sinks)})
    return _from_data(data, Problems("command line", flags=flags))


CAMERA_WIDE = ("max_fps", "realtime")  # flags that apply to every [[cameras]] table


def _override_cameras(
    config: Config, data: dict[str, Any], given: dict[tuple[str, str, str], Any], sinks: Any
) -> Config:
    """apply_overrides for a config with [[cameras]]: --max-fps and --realtime apply to each."""
    del data["camera"]
    flags: dict[str, str] = {}
    for (table, key, flag), value in given.items():
        if value is None:
            continue
        if table != "camera":
            data[table][key], flags[f"{table}.{key}"] = value, flag
        elif key in CAMERA_WIDE:
            for i, cam in enumerate(data["cameras"]):
                cam[key], flags[f"cameras[{i}].{key}"] = value, flag
        else:
            raise ConfigError(f"{flag}: the config has [[cameras]]; set it in each camera's table")
    if sinks is not None:
        data["sinks"] = [_sink_data(spec) for spec in sinks]
        flags.update({f"sinks[{i}]": f"--sink {show(s)}" for i, s in enumerate(sinks)})
    return _from_data(data, Problems("command line", flags=flags))


def resolve_paths(config: Config, home: Path) -> Config:
    """``config`` with the empty gallery and snapshot paths placed in ``home``."""
    gallery = config.gallery.path or str(home / "gallery.db")
    snapshots = config.snapshots.dir or str(home / "snapshots")
    return dataclasses.replace(
        config,
        gallery=dataclasses.replace(config.gallery, path=gallery),
        snapshots=dataclasses.replace(config.snapshots, dir=snapshots),
    )
