"""The validation framework behind the config schema: typed keys with rules, located problems.

A schema is frozen dataclasses whose fields are made by :func:`opt`; :func:`build` turns one TOML
table into one of them, collecting every problem (``FILE:LINE: section.key: problem``).
"""

from __future__ import annotations

import difflib
import math
import re
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from facegate.errors import ConfigError

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
        return None if self._ok(value) else f"must be {self.words()}, got {show(value)}"

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


def show(value: Any) -> str:
    """A value as the user wrote it, for messages (URLs lose their user info)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(show, value)) + "]"
    text = repr(re.sub(r"//[^/@\s]*@", "//***@", value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def key_name(path: KeyPath) -> str:
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


class Problems:
    """Collects problems, locating each in the source text or on the command line."""

    def __init__(self, source: str, text: str = "", flags: dict[str, str] | None = None) -> None:
        self.source, self.flags = source, flags or {}
        self.found: list[Problem] = []
        self.lines = _lines(text) if text else {}

    def add(self, path: KeyPath, message: str) -> None:
        """Record ``message`` about the key at ``path``."""
        key = key_name(path)
        flag = self.flags.get(key) or self.flags.get(key_name(path[:2]))
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


def unknown_key(key: str, known: typing.Iterable[str]) -> str:
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
        return value, None if value in args else f"must be {args[0]!r}, got {show(value)}"
    if typing.get_origin(hint) is tuple:
        return _convert_list(value, args, spec)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str and spec.from_int and number and isinstance(value, int):
        value = str(value)
    ok = {bool: isinstance(value, bool), int: number and isinstance(value, int), float: number}
    if not ok.get(hint, isinstance(value, str)):
        return value, f"expected {EXPECTED[hint]}, got {show(value)}"
    if hint is not float:
        return value, None
    if abs(value) > sys.float_info.max or not math.isfinite(value):
        return value, f"expected a finite number, got {show(value)}"
    return float(value), None


def _convert_list(value: Any, args: tuple[Any, ...], spec: Spec) -> tuple[Any, str | None]:
    """A list as a tuple (fixed length, or any length for ``tuple[X, ...]``), or why not."""
    if len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            return value, f"expected a list, got {show(value)}"
        args = (args[0],) * len(value)
    if not isinstance(value, list | tuple) or len(value) != len(args):
        return value, f"expected a list of {len(args)} numbers, got {show(value)}"
    items = [_convert(v, a, spec) for v, a in zip(value, args, strict=True)]
    problem = next((f"item {i}: {p}" for i, (_, p) in enumerate(items, 1) if p), None)
    return tuple(v for v, _ in items), problem


def _nested_table(hint: Any) -> type | None:
    """The dataclass a key holds as a sub-table (``X`` or ``X | None``), else None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    candidate = args[0] if isinstance(hint, types.UnionType) and len(args) == 1 else hint
    return candidate if isinstance(candidate, type) and is_dataclass(candidate) else None


def build(cls: type, data: Any, path: KeyPath, problems: Problems) -> Any:
    """One dataclass from a TOML table, or None after recording its problems."""
    if not isinstance(data, dict):
        problems.add(path, f"expected a table, got {show(data)}")
        return None
    hints, known = typing.get_type_hints(cls), {f.name: f for f in fields(cls)}
    before, kwargs = len(problems.found), {}
    for key, value in data.items():
        if key not in known:
            problems.add((*path, key), unknown_key(key, known))
            continue
        nested = _nested_table(hints[key])
        if nested is not None and isinstance(value, dict):  # a sub-table, e.g. [cameras.x]
            kwargs[key] = build(nested, value, (*path, key), problems)
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
