"""ONNX Runtime backend: execution providers (CPU by default), spinning off for small boards."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.backends.base import Backend
from facegate.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

# The execution providers facegate can ask onnxruntime for, by short name (config, --providers).
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
}
DEFAULT_PROVIDERS = ("cpu",)
TENSORRT_CACHE = "tensorrt"  # engine cache folder in the state dir (engines take minutes to build)


@dataclass(frozen=True, slots=True)
class Providers:
    """The execution providers to use, in order of preference, and TensorRT's options."""

    names: tuple[str, ...] = DEFAULT_PROVIDERS
    tensorrt_fp16: bool = True  # FP16 engines: the Jetson GPUs' fast path
    engine_cache: Path | None = None  # TensorRT engine cache (None: $FACEGATE_HOME/tensorrt)

    def resolve(self) -> list[str | tuple[str, dict[str, str]]]:
        """The session's providers, checked against this onnxruntime's (one line if missing)."""
        import onnxruntime as ort

        return self.session_providers(ort.get_available_providers())

    def session_providers(self, available: list[str]) -> list[str | tuple[str, dict[str, str]]]:
        """The ``providers`` argument for an InferenceSession, or one line on what is missing."""
        problem = unavailable(self.names, available)
        if problem:
            raise ConfigError(problem)
        wanted = [provider_name(n) for n in self.names]
        return [self._options(w) if w == PROVIDERS["tensorrt"] else w for w in wanted]

    def _options(self, name: str) -> tuple[str, dict[str, str]]:
        from facegate.host.paths import ensure_private_dir, state_dir

        cache = ensure_private_dir(self.engine_cache or state_dir() / TENSORRT_CACHE)
        options = {
            "trt_fp16_enable": str(self.tensorrt_fp16),
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
        }
        return name, options


def unavailable(names: tuple[str, ...], available: list[str]) -> str | None:
    """One line on the first of ``names`` this onnxruntime lacks, or None when it has them all."""
    missing = [n for n in names if provider_name(n) not in available]
    if not missing:
        return None
    usable = [short for short, full in PROVIDERS.items() if full in available]
    return (
        f"execution provider {missing[0]!r} ({provider_name(missing[0])}) is not "
        f"available in this onnxruntime; available: {', '.join(usable) or 'none'}"
    )


def provider_name(name: str) -> str:
    """onnxruntime's name for a short provider name (``cuda`` -> ``CUDAExecutionProvider``)."""
    try:
        return PROVIDERS[name.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown execution provider {name!r} (use {', '.join(PROVIDERS)})"
        ) from None


def parse_providers(text: str) -> tuple[str, ...]:
    """A ``--providers`` value (``tensorrt,cuda,cpu``) as validated short names."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if not names:
        raise ConfigError("--providers needs at least one provider, e.g. cpu or cuda,cpu")
    for name in names:
        provider_name(name)
    return names


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with onnxruntime on the chosen execution providers (default CPU)."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        threads: int = 1,
        output_names: list[str] | None = None,
        providers: Providers | None = None,
    ) -> None:
        super().__init__(path, threads, output_names)
        import onnxruntime as ort

        chosen = (providers or Providers()).resolve()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        # P-Net sees a new input size per pyramid level: memory patterns and the growing arena
        # only pay for fixed shapes (measured: daemon RSS 200 MB with them, 174 MB without).
        opts.enable_mem_pattern = False
        opts.enable_cpu_mem_arena = False
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=chosen)
        except Exception as err:  # onnxruntime raises several private exception types
            raise ModelError(
                f"{path.name}: onnxruntime cannot load it ({_first_line(err)})"
            ) from err
        self.provider: str = self.session.get_providers()[0]
        asked = chosen[0] if isinstance(chosen[0], str) else chosen[0][0]
        if self.provider != asked:
            log.warning(
                "%s: asked for %s, onnxruntime runs it on %s", path.name, asked, self.provider
            )
        log.debug("%s: onnxruntime provider %s", path.name, self.provider)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path.name}: expected one input, found {len(inputs)}")
        self.input_name = inputs[0].name
        self._shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        names = [o.name for o in self.session.get_outputs()]
        if output_names is not None and sorted(names) != sorted(output_names):
            raise ModelError(
                f"{path.name}: outputs {names} differ from the manifest's {output_names}"
            )
        self._outputs = output_names or names

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Declared input shape; ``None`` where dynamic."""
        return self._shape

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return the outputs in manifest order."""
        return self.session.run(self._outputs, {self.input_name: batch})

    def close(self) -> None:
        """Drop the session."""
        self.session = None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
