"""``check-config --explain``: every key with its type, default, rule and description."""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from facegate.config.fields import show
from facegate.config.schema import Config


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


def explain() -> list[tuple[str, str, str, str, str]]:
    """Every key as (key, type, default, accepted values, description), for ``--explain``."""
    hints, tables = typing.get_type_hints(Config), []
    for f in fields(Config):
        if f.name == "sinks":
            from facegate.sinks import SINK_KINDS

            tables += [(f"sinks[type={n}]", k.config) for n, k in SINK_KINDS.items()]
        else:
            tables.append((f.name, hints[f.name]))
    rows = []
    for table, cls in tables:
        types_ = typing.get_type_hints(cls)
        for f in fields(cls):
            spec, value = f.metadata["spec"], f.default
            shown = (
                "(required)" if value is MISSING else "(unset)" if value is None else show(value)
            )
            rows.append(
                (f"{table}.{f.name}", _type_name(types_[f.name]), shown, spec.words(), spec.doc)
            )
    return rows
