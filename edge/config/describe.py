"""``check-config --explain``: every key with its type, default, rule and description."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from facegate.config.fields import show
from facegate.config.schema import CameraConfig, Config

Row = tuple[str, str, str, str, str]


def _type_name(hint: Any) -> str:
    """A field's type in TOML words."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        return _type_name(args[0]) + " (optional)"
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"list of {_type_name(args[0])}s"
    if typing.get_origin(hint) is tuple:
        return f"list of {len(args)} numbers"
    return {bool: "boolean", int: "integer", float: "number"}.get(hint, "string")


def explain() -> list[Row]:
    """Every key as (key, type, default, accepted values, description), for ``--explain``."""
    hints, tables = typing.get_type_hints(Config), []
    for f in fields(Config):
        if f.name == "sinks":
            from facegate.sinks import SINK_KINDS

            tables += [(f"sinks[type={n}]", k.config) for n, k in SINK_KINDS.items()]
        elif f.name == "cameras":
            tables.append(("cameras[]", CameraConfig))
        else:
            tables.append((f.name, hints[f.name]))
    return [row for table, cls in tables for row in table_rows(table, cls)]


def table_rows(table: str, cls: type) -> list[Row]:
    """The rows of one table; a nested table (a dataclass field) adds its own rows."""
    rows, types_ = [], typing.get_type_hints(cls)
    for f in fields(cls):
        nested = _table_type(types_[f.name])
        if nested is not None:
            rows += table_rows(f"{table}.{f.name}", nested)
            continue
        spec, value = f.metadata["spec"], f.default
        shown = "(required)" if value is MISSING else "(unset)" if value is None else show(value)
        rows.append(
            (f"{table}.{f.name}", _type_name(types_[f.name]), shown, spec.words(), spec.doc)
        )
    return rows


def _table_type(hint: Any) -> type | None:
    """The dataclass a field holds as a nested table (``X`` or ``X | None``), else None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    candidate = args[0] if isinstance(hint, types.UnionType) and len(args) == 1 else hint
    return candidate if dataclasses.is_dataclass(candidate) else None
