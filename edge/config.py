"""The daemon's configuration: one validated TOML schema; the only module that reads config files.

Every key has a type, a default, the values it accepts and a description, all kept here so
``facegate check-config --explain`` prints them. Validation collects every problem and raises one
:class:`ConfigProblems` whose lines read ``FILE:LINE: section.key: problem``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import re
import sys
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from edge.errors import ConfigError
from edge.recognizer import DEFAULT_THRESHOLD

SECRET_KEYS = {"password": "password_file", "token": "token_file"}
SECRET_HINT = (
    "never put a secret in the config: write it to a file only the facegate user can read "
    "and set {key}, or pass it with systemd LoadCredential"
)
NUM = r"-?\d+(?:\.\d+)?"
# Named rules: the pattern a string must match and what that means in words.
PATTERNS = {
    "text": (r"(?s).*\S.*", "non-empty"),
    "slug": (r"[a-z0-9_-]+", "lowercase letters, digits, '_' or '-'"),
    "topic": (r"[^#+\s]+", "an MQTT topic without '+', '#' or spaces"),
    "url": (r"https?://\S+", "an http:// or https:// URL"),
}
KeyPath = tuple[str | int, ...]
SOURCE_DOC = (
    "camera index, /dev/videoN, picamera2[:N], rtsp:// or http(s):// URL, video file or image "
    "folder; required here or as --source"
)


@dataclass(frozen=True, slots=True)
class Spec:
    """A key's description and its rule: 'a|b', '>0', '>=1', '1..16', '(0,1)' or a PATTERNS name."""

    doc: str
    rule: str = ""
    from_int: bool = False  # a string key that also takes an integer (a camera index)

    def words(self) -> str:
        """The rule in words, e.g. '> 0', 'between 1 and 16', 'one of a, b'."""
        if self.rule in PATTERNS:
            return PATTERNS[self.rule][1]
        if "|" in self.rule:
            return "one of " + ", ".join(self.rule.split("|"))
        if m := re.fullmatch(f"({NUM})\\.\\.({NUM})", self.rule):
            return f"between {m[1]} and {m[2]}"
        if m := re.fullmatch(f"\\(({NUM}),({NUM})\\)", self.rule):
            return f"in ({m[1]}, {m[2]})"
        return re.sub(f"({NUM})$", r" \1", self.rule)

    def check(self, value: Any) -> str | None:
        """Why ``value`` (already of the key's type) breaks the rule, or None."""
        if isinstance(value, tuple):
            bad = next((i for i, v in enumerate(value, 1) if self.check(v)), 0)
            return f"item {bad} {self.check(value[bad - 1])}" if bad else None
        return None if self._ok(value) else f"must be {self.words()}, got {_show(value)}"

    def _ok(self, value: Any) -> bool:
        if self.rule in PATTERNS:
            return not isinstance(value, str) or bool(re.fullmatch(PATTERNS[self.rule][0], value))
        if "|" in self.rule:
            return value in self.rule.split("|")
        if not isinstance(value, int | float) or isinstance(value, bool) or not self.rule:
            return True
        bounds = [float(x) for x in re.findall(NUM, self.rule)]
        if self.rule.startswith(">"):
            return value >= bounds[0] if self.rule.startswith(">=") else value > bounds[0]
        if self.rule.startswith("("):
            return bounds[0] < value < bounds[1]
        return bounds[0] <= value <= bounds[1]


def opt(default: Any, doc: str, rule: str = "", *, from_int: bool = False) -> Any:
    """A schema field: its default (MISSING: required), description and rule."""
    return field(default=default, metadata={"spec": Spec(doc, rule, from_int)})


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraConfig:
    """[camera]: where frames come from and how many are processed."""

    name: str = opt("camera", "name used in events and MQTT topics", "slug")
    source: str | None = opt(None, SOURCE_DOC, "text", from_int=True)
    max_fps: float | None = opt(None, "frames per second to process at most (unset: all)", ">0")
    detect_every: int = opt(1, "run the detector on every Nth frame; tracks bridge the rest", ">=1")
    realtime: bool | None = opt(None, "drop frames to keep up (unset: for cameras and streams)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelsConfig:
    """[models]: which bundle runs on which runtime."""

    bundle: str = opt("default", "bundle name in $FACEGATE_HOME/models, or its folder", "text")
    backend: str = opt("auto", "runtime (auto: LiteRT when installed)", "auto|onnxruntime|litert")
    precision: str = opt("fp32", "model precision (fp32 where not bundled)", "fp32|fp16|int8")
    threads: int = opt(1, "inference threads", "1..16")
    flip: bool = opt(False, "also embed the mirrored face: ~2x embed time, a little accuracy")


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """[detector]: the MTCNN cascade (defaults: the reference implementations)."""

    min_face_size: int = opt(
        40, "smallest face searched for, pixels (smaller costs more)", "12..2000"
    )
    thresholds: tuple[float, float, float] = opt(
        (0.6, 0.7, 0.7), "P-Net, R-Net and O-Net face-probability thresholds", "(0,1)"
    )
    scale_factor: float = opt(0.709, "image-pyramid step (~1/sqrt(2))", "0.5..0.95")
    crop: str = opt(
        "zero",
        "faces at the image edge: black outside it (zero) or the inside stretched (clip)",
        "zero|clip",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecognitionConfig:
    """[recognition]: when a tracked face gets embedded, named, or called unknown."""

    threshold: float = opt(DEFAULT_THRESHOLD, "cosine similarity at which a face matches", "-1..1")
    min_face_size: int = opt(60, "narrower faces (pixels) are tracked but not embedded", ">=0")
    min_sharpness: float = opt(60.0, "Laplacian variance under which a crop is too blurred", ">=0")
    votes: int = opt(3, "agreeing frames before a track is named", ">=1")
    max_embeds_per_track: int = opt(10, "embeddings computed per track at most", ">=1")
    unknown_after: int = opt(5, "embedded frames without a match before 'unknown'", ">=1")

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        cap = self.max_embeds_per_track
        return [
            (key, f"must be <= max_embeds_per_track ({cap}), got {value}")
            for key, value in (("votes", self.votes), ("unknown_after", self.unknown_after))
            if value > cap
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    """[tracker]: the IoU tracker that follows faces between frames."""

    iou_threshold: float = opt(0.3, "overlap (IoU) at which a detection continues a track", "0..1")
    max_missed: int = opt(15, "frames a track may go unseen before a 'left' event", ">=1")


@dataclass(frozen=True, slots=True, kw_only=True)
class GalleryConfig:
    """[gallery]: the enrolled people."""

    path: str = opt("", "gallery database (empty: $FACEGATE_HOME/gallery.db)")
    reload_interval: float = opt(2.0, "seconds between checks for gallery changes", ">0")


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotsConfig:
    """[snapshots]: face crops saved with events, and their cleanup."""

    enabled: bool = opt(True, "save a crop of each recognized or unknown face")
    dir: str = opt("", "snapshot folder (empty: $FACEGATE_HOME/snapshots)")
    max_files: int = opt(500, "keep at most this many files (0: no limit)", ">=0")
    max_age_days: float = opt(30.0, "delete files older than this (0: no limit)", ">=0")
    max_mb: float = opt(200.0, "keep the folder under this size (0: no limit)", ">=0")


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonlSinkConfig:
    """[[sinks]] type = "jsonl": one JSON event per line."""

    type: Literal["jsonl"] = opt("jsonl", "sink type")
    path: str = opt("-", "file to append to, or - for stdout", "text")


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSinkConfig:
    """[[sinks]] type = "mqtt": events to an MQTT broker, with Home Assistant discovery."""

    type: Literal["mqtt"] = opt("mqtt", "sink type")
    host: str = opt(MISSING, "broker host name or address", "text")
    port: int = opt(1883, "broker port", "1..65535")
    prefix: str = opt("facegate", "topic prefix", "topic")
    username: str | None = opt(None, "broker user name")
    password_file: str | None = opt(None, "file holding the broker password")
    tls: bool = opt(False, "connect with TLS")
    ca_file: str | None = opt(None, "CA certificate for TLS (unset: the system's)")
    discovery: bool = opt(True, "publish Home Assistant MQTT discovery")
    discovery_prefix: str = opt("homeassistant", "Home Assistant discovery prefix", "topic")
    queue_size: int = opt(1000, "events held while the broker is away (oldest dropped)", ">=1")

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        found = []
        if self.ca_file and not self.tls:
            found.append(("ca_file", "needs tls = true"))
        if self.password_file and not self.username:
            found.append(("password_file", "needs username"))
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSinkConfig:
    """[[sinks]] type = "webhook": each event POSTed as JSON."""

    type: Literal["webhook"] = opt("webhook", "sink type")
    url: str = opt(MISSING, "URL to POST events to", "url")
    timeout: float = opt(5.0, "seconds per request", ">0")
    retries: int = opt(3, "retries of a failed request", ">=0")
    queue_size: int = opt(100, "events held while the target is away (oldest dropped)", ">=1")

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        try:
            password = urlsplit(self.url).password
        except ValueError as err:
            return [("url", f"is not a valid URL: {err}")]
        if password is not None:
            return [("url", "must not contain user:password@: never put a secret in the config")]
        return []


SinkConfig = JsonlSinkConfig | MqttSinkConfig | WebhookSinkConfig
SINK_TYPES: dict[str, type] = {
    "jsonl": JsonlSinkConfig,
    "mqtt": MqttSinkConfig,
    "webhook": WebhookSinkConfig,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """[http]: the /health and /metrics endpoint."""

    enabled: bool = opt(True, "serve /health and /metrics")
    host: str = opt("127.0.0.1", "address to listen on (not loopback: needs token_file)", "text")
    port: int = opt(8765, "TCP port", "1..65535")
    token_file: str | None = opt(None, "file holding the bearer token for all but /health")

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        if not self.enabled or self.token_file or is_loopback(self.host):
            return []
        return [("token_file", f"required when host is not loopback ({self.host!r})")]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """[service]: how the daemon behaves under systemd."""

    watchdog: bool = opt(True, "ping the systemd watchdog from the pipeline loop")
    log_level: str = opt("info", "log level", "debug|info|warning|error")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole daemon configuration."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    snapshots: SnapshotsConfig = field(default_factory=SnapshotsConfig)
    sinks: tuple[SinkConfig, ...] = opt((JsonlSinkConfig(),), "[[sinks]] (none: stdout)")
    http: HttpConfig = field(default_factory=HttpConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration, located as well as we can."""

    source: str  # the file, or the command-line flag that set the value
    line: int | None  # best effort: tomllib reports no positions
    key: str  # "camera.max_fps", "sinks[1].password"
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}"


class ConfigProblems(ConfigError):
    """Every problem found in one configuration, one per line of the message."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
        super().__init__("\n".join(map(str, self.problems)))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is localhost or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _show(value: Any) -> str:
    """A value as the user wrote it, for messages (URLs lose their user info)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_show, value)) + "]"
    text = repr(re.sub(r"//[^/@\s]*@", "//***@", value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(path: KeyPath) -> str:
    """``("sinks", 1, "port")`` as ``sinks[1].port``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


def _lines(text: str) -> dict[KeyPath, int]:
    """Best-effort line numbers of tables and keys (tomllib gives none)."""
    found: dict[KeyPath, int] = {}
    table: KeyPath = ()
    counts: dict[str, int] = {}
    in_string = False
    for number, line in enumerate(text.splitlines(), 1):
        was_in_string = in_string
        in_string ^= bool((line.count('"""') + line.count("'''")) % 2)
        if was_in_string:
            continue
        header = re.fullmatch(r"\s*(\[\[?)\s*([\w\-\"'. ]+?)\s*\]\]?\s*(#.*)?", line)
        if header:
            parts = tuple(p.strip().strip("\"'") for p in header.group(2).split("."))
            if header.group(1) == "[[":
                counts[".".join(parts)] = counts.get(".".join(parts), -1) + 1
                parts = (*parts, counts[".".join(parts)])
            table = parts
            found.setdefault(table, number)
            continue
        key = re.match(r"\s*([\w\-\"'. ]+?)\s*=", line)
        if key:
            parts = tuple(p.strip().strip("\"'") for p in key.group(1).split("."))
            for end in range(1, len(parts) + 1):
                found.setdefault((*table, *parts[:end]), number)
    return found


class _Problems:
    """Collects problems, locating each in the source text or on the command line."""

    def __init__(self, source: str, text: str = "", flags: dict[str, str] | None = None) -> None:
        self.source, self.flags = source, flags or {}
        self.found: list[Problem] = []
        self.lines = _lines(text) if text else {}

    def add(self, path: KeyPath, message: str) -> None:
        """Record ``message`` about the key at ``path``."""
        key = _key(path)
        flag = self.flags.get(key) or self.flags.get(_key(path[:2]))
        if flag:
            self.found.append(Problem(flag, None, key, message))
            return
        line = next(
            (self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), None
        )
        self.found.append(Problem(self.source, line, key, message))

    def raise_if_any(self) -> None:
        """Raise one ConfigProblems listing everything found."""
        if self.found:
            raise ConfigProblems(self.found)


def _unknown(key: str, known: typing.Iterable[str]) -> str:
    """The message for an unknown key, with a suggestion or the secret-file rule."""
    if key in SECRET_KEYS:
        return SECRET_HINT.format(key=SECRET_KEYS[key])
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _convert(value: Any, hint: Any, spec: Spec) -> tuple[Any, str | None]:
    """``value`` as type ``hint``, or the reason it is not one."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if value is None:
            return None, None
        hint = args[0]
    if typing.get_origin(hint) is Literal:
        return value, None if value in args else f"must be {args[0]!r}, got {_show(value)}"
    if typing.get_origin(hint) is tuple:
        return _convert_list(value, args, spec)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str and spec.from_int and number and isinstance(value, int):
        value = str(value)
    ok = {bool: isinstance(value, bool), int: number and isinstance(value, int), float: number}
    if not ok.get(hint, isinstance(value, str)):
        return value, f"expected {EXPECTED[hint]}, got {_show(value)}"
    if hint is not float:
        return value, None
    if abs(value) > sys.float_info.max or not math.isfinite(value):
        return value, f"expected a finite number, got {_show(value)}"
    return float(value), None


def _convert_list(value: Any, args: tuple[Any, ...], spec: Spec) -> tuple[Any, str | None]:
    """A fixed-length list of numbers as a tuple, or the reason it is not one."""
    if not isinstance(value, list | tuple) or len(value) != len(args):
        return value, f"expected a list of {len(args)} numbers, got {_show(value)}"
    items = [_convert(v, a, spec) for v, a in zip(value, args, strict=True)]
    problem = next((f"item {i}: {p}" for i, (_, p) in enumerate(items, 1) if p), None)
    return tuple(v for v, _ in items), problem


def _build(cls: type, data: Any, path: KeyPath, problems: _Problems) -> Any:
    """One dataclass from a TOML table, or None after recording its problems."""
    if not isinstance(data, dict):
        problems.add(path, f"expected a table, got {_show(data)}")
        return None
    hints, known = typing.get_type_hints(cls), {f.name: f for f in fields(cls)}
    before, kwargs = len(problems.found), {}
    for key, value in data.items():
        if key not in known:
            problems.add((*path, key), _unknown(key, known))
            continue
        spec = known[key].metadata["spec"]
        value, problem = _convert(value, hints[key], spec)
        problem = problem or spec.check(value)
        if problem:
            problems.add((*path, key), problem)
        kwargs[key] = value
    for name in (n for n in known if n not in data):
        if known[name].default is MISSING and known[name].default_factory is MISSING:
            problems.add((*path, name), "required")
    if len(problems.found) > before:
        return None
    obj = cls(**kwargs)
    for key, message in obj.check() if hasattr(obj, "check") else ():
        problems.add((*path, key), message)
    return obj


def _build_sinks(data: Any, problems: _Problems) -> tuple[SinkConfig, ...]:
    """The ``[[sinks]]`` tables, each built by its ``type``."""
    if not isinstance(data, list | tuple):
        problems.add(("sinks",), "expected an array of tables ([[sinks]])")
        return ()
    sinks = []
    for i, table in enumerate(data):
        if not isinstance(table, dict):
            problems.add(("sinks", i), f"expected a table, got {_show(table)}")
        elif not isinstance(table.get("type"), str) or table["type"] not in SINK_TYPES:
            kind = table.get("type")
            got = "missing" if kind is None else f"got {_show(kind)}"
            problems.add(("sinks", i, "type"), f"must be one of {', '.join(SINK_TYPES)}, {got}")
        else:
            sinks.append(_build(SINK_TYPES[table["type"]], table, ("sinks", i), problems))
    return tuple(sinks)


def _from_data(data: dict[str, Any], problems: _Problems) -> Config:
    """A Config from parsed TOML, or ConfigProblems listing everything wrong with it."""
    hints, known = typing.get_type_hints(Config), {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    for key in (k for k in data if k not in known):
        problems.add((key,), _unknown(key, known))
    for name in (f.name for f in fields(Config) if f.name in data):
        if name == "sinks":
            values[name] = _build_sinks(data[name], problems)
        else:
            values[name] = _build(hints[name], data[name], (name,), problems)
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
    return _from_data(data, _Problems(source, text))


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
    """A ``--sink`` spec as the TOML table it stands for."""
    kind, sep, rest = spec.partition(":")
    if kind == "jsonl":
        return {"type": "jsonl", "path": rest if sep else "-"}
    if kind in ("http", "https"):
        return {"type": "webhook", "url": spec}
    if kind not in ("mqtt", "mqtts"):
        raise ConfigError(
            f"--sink {_show(spec)}: expected jsonl:PATH, jsonl:-, mqtt://[USER@]HOST[:PORT] "
            "or http(s)://URL"
        )
    try:
        url = urlsplit(spec)
        password, port = url.password, url.port
    except ValueError as err:
        raise ConfigError(f"--sink {_show(spec)}: not a valid URL ({err})") from None
    if password is not None:
        raise ConfigError(
            "--sink: a password in the URL shows in `ps` and the journal: describe the sink in "
            "the config file with password_file, or pass it with systemd LoadCredential"
        )
    tls = kind == "mqtts"
    data = {
        "type": "mqtt",
        "host": url.hostname or "",
        "tls": tls,
        "port": (8883 if tls else 1883) if port is None else port,
    }
    if url.username:
        data["username"] = unquote(url.username)
    if url.path.strip("/"):
        data["prefix"] = url.path.strip("/")
    return data


def parse_sink(spec: str) -> SinkConfig:
    """One sink from a ``--sink`` spec: jsonl:PATH, jsonl:-, mqtt://[USER@]HOST[:PORT], URL."""
    problems = _Problems("--sink", flags={"sinks[0]": f"--sink {_show(spec)}"})
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
        ("gallery", "path", "--gallery"): gallery,
    }
    data, flags = dataclasses.asdict(config), {}
    for (table, key, flag), value in given.items():
        if value is not None:
            data[table][key], flags[f"{table}.{key}"] = value, flag
    if sinks is not None:
        data["sinks"] = [_sink_data(spec) for spec in sinks]
        flags.update({f"sinks[{i}]": f"--sink {_show(s)}" for i, s in enumerate(sinks)})
    return _from_data(data, _Problems("command line", flags=flags))


def resolve_paths(config: Config, home: Path) -> Config:
    """``config`` with the empty gallery and snapshot paths placed in ``home``."""
    gallery = config.gallery.path or str(home / "gallery.db")
    snapshots = config.snapshots.dir or str(home / "snapshots")
    return dataclasses.replace(
        config,
        gallery=dataclasses.replace(config.gallery, path=gallery),
        snapshots=dataclasses.replace(config.snapshots, dir=snapshots),
    )


def _type_name(hint: Any) -> str:
    """A field's type in TOML words."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        return _type_name(args[0]) + " (optional)"
    if typing.get_origin(hint) is tuple:
        return f"list of {len(args)} numbers"
    return {bool: "boolean", int: "integer", float: "number"}.get(hint, "string")


def explain() -> list[tuple[str, str, str, str, str]]:
    """Every key as (key, type, default, accepted values, description), for ``--explain``."""
    hints, tables = typing.get_type_hints(Config), []
    for f in fields(Config):
        if f.name == "sinks":
            tables += [(f"sinks[type={name}]", cls) for name, cls in SINK_TYPES.items()]
        else:
            tables.append((f.name, hints[f.name]))
    rows = []
    for table, cls in tables:
        types_ = typing.get_type_hints(cls)
        for f in fields(cls):
            spec, value = f.metadata["spec"], f.default
            shown = (
                "(required)" if value is MISSING else "(unset)" if value is None else _show(value)
            )
            rows.append(
                (f"{table}.{f.name}", _type_name(types_[f.name]), shown, spec.words(), spec.doc)
            )
    return rows
