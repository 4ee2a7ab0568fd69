"""What a valid configuration still needs from this host: the one check the daemon and
``facegate check-config`` share, so that one never passes what the other refuses.

The schema (:mod:`facegate.config`) checks types and ranges; this checks what exists here: the
model bundle and its files for the chosen runtime, a source that can work, JSONL files that
can be written, a readable, non-empty HTTP token. Nothing is opened for writing, no model is
loaded and no port is bound: it is cheap enough for every start and every reload.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from facegate.backends.onnxruntime import DEFAULT_PROVIDERS, unavailable
from facegate.bundle import Bundle
from facegate.bundle.manifest import ROLES
from facegate.config.schema import Config
from facegate.errors import ConfigError, FacegateError
from facegate.service import assemble
from facegate.sinks.jsonl import STDOUT, JsonlSinkConfig
from facegate.vision.liveness import is_spec_file
from facegate.vision.recognizer import resolve_format

Found = tuple[list[str], list[str]]  # (problems, warnings)


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the checks found: problems refuse the configuration, warnings are logged."""

    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def check_models(config: Config) -> Found:
    """The bundle exists and has every model for the runtime; say which precision falls back."""
    m = config.models
    try:
        bundle = Bundle.load(assemble.bundle_dir(m.bundle))
        fmt = resolve_format(m.backend)
    except FacegateError as err:
        return [f"models.bundle {m.bundle!r}: {err}"], []
    have = {(e.role, e.precision) for e in bundle.entries if e.format == fmt}
    missing = [role for role in ROLES if (role, "fp32") not in have]
    if missing:
        return [f"models.bundle {m.bundle!r} has no {fmt} model for {', '.join(missing)}"], []
    stage = liveness_problem(config, bundle, fmt)
    if stage:
        return [stage], []
    fallback = [role for role in ROLES if (role, m.precision) not in have]
    if m.precision == "fp32" or not fallback:
        return [], []
    roles = "all four models" if len(fallback) == len(ROLES) else ", ".join(fallback)
    return [], [
        f"models.precision = {m.precision}: bundle {m.bundle!r} has no {m.precision} {fmt} "
        f"file for {', '.join(fallback)}; {roles} run fp32"
    ]


def liveness_problem(config: Config, bundle: Bundle, fmt: str) -> str | None:
    """With ``[liveness] enabled`` on the bundle's model, the bundle must hold that stage."""
    cfg = config.liveness
    if not cfg.enabled or is_spec_file(cfg.model):
        return None
    ids = [e.model_id for e in bundle.entries if e.role == "liveness" and e.format == fmt]
    if not ids:
        return (
            f"[liveness] enabled, but models.bundle {config.models.bundle!r} has no {fmt} "
            "liveness model: rebuild it with `facegate models build` (or set [liveness] model "
            "to a .json spec)"
        )
    if not ids[0].startswith(cfg.model + "-"):
        return f"[liveness] model {cfg.model!r}: models.bundle holds {ids[0]} instead"
    return None


def check_providers(config: Config) -> Found:
    """Every execution provider ``[runtime] providers`` names is in this onnxruntime."""
    names = config.runtime.providers
    if names == DEFAULT_PROVIDERS:
        return [], []
    if config.models.backend == "litert":  # "auto" picks ONNX Runtime for such providers
        return ["runtime.providers: execution providers need models.backend onnxruntime"], []
    import onnxruntime as ort

    problem = unavailable(names, ort.get_available_providers())
    return ([f"runtime.providers: {problem}"] if problem else []), []


def writable_file(path: Path) -> str | None:
    """Why ``path`` cannot be opened for appending (created if missing), or None."""
    if path.is_dir():
        return "is a folder"
    if path.exists():
        return None if os.access(path, os.W_OK) else "is not writable"
    parent = path.parent
    if not parent.is_dir():
        return f"its folder {parent} does not exist"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"its folder {parent} is not writable"


def check_sinks(config: Config) -> Found:
    """Every JSONL sink's file can be appended to."""
    problems = []
    for i, sink in enumerate(config.sinks):
        if isinstance(sink, JsonlSinkConfig) and sink.path != STDOUT:
            reason = writable_file(Path(sink.path).expanduser())
            if reason:
                problems.append(f"sinks[{i}].path {sink.path}: {reason}")
    return problems, []


def check_http(config: Config) -> Found:
    """The HTTP token (when one is set or given by systemd) is readable and not empty."""
    if not config.http.enabled:
        return [], []
    try:
        assemble.http_token(config)
    except ConfigError as err:
        return [str(err)], []
    return [], []


def check_fleet(config: Config) -> Found:
    """With ``[fleet]`` enabled: an MQTT sink to use, the pinned public key, the passphrase."""
    if not config.fleet.enabled:
        return [], []
    from facegate.fleet.device import settings_problem  # loads cryptography: only when enabled

    problem = settings_problem(config)
    return ([f"fleet: {problem}"] if problem else []), []


CHECKS: dict[str, Callable[[Config], Found]] = {
    "source": assemble.check_source,
    "models": check_models,
    "providers": check_providers,
    "sinks": check_sinks,
    "http": check_http,
    "fleet": check_fleet,
}


def check(config: Config, sections: Iterable[str] = tuple(CHECKS)) -> Preflight:
    """Run the named checks (default: all) and gather what they found."""
    problems: list[str] = []
    warnings: list[str] = []
    for name in sections:
        found, warned = CHECKS[name](config)
        problems += found
        warnings += warned
    return Preflight(tuple(problems), tuple(warnings))


# the daemon checks its source in assemble.capture
DAEMON_CHECKS = ("models", "providers", "sinks", "http", "fleet")


def require(config: Config, sections: Iterable[str] = tuple(CHECKS)) -> Preflight:
    """:func:`check`, raising ConfigError with every problem (one per line) if there is one."""
    result = check(config, sections)
    if result.problems:
        raise ConfigError("\n".join(result.problems))
    return result
