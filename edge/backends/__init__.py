"""Inference backends: one interface, one implementation per model file format."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from facegate.backends.base import Backend
from facegate.errors import ModelError

if TYPE_CHECKING:
    from facegate.backends.onnxruntime import Providers

FORMATS = ("onnx", "tflite")


def open_backend(
    path: Path,
    fmt: str,
    threads: int = 1,
    output_names: list[str] | None = None,
    providers: Providers | None = None,
) -> Backend:
    """Open ``path`` with the runtime for ``fmt`` (onnx: onnxruntime, tflite: LiteRT)."""
    if fmt == "onnx":
        from facegate.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads, output_names, providers)
    if fmt == "tflite":
        from facegate.backends.litert import LiteRTBackend

        return LiteRTBackend(path, threads, output_names)
    raise ModelError(f"unknown model format {fmt!r} (expected one of {', '.join(FORMATS)})")


__all__ = ["FORMATS", "Backend", "open_backend"]
