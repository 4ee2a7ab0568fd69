"""Execution providers: config and --providers reach onnxruntime; the one used is reported.

Only the CPU provider exists on this machine: CUDA and TensorRT are checked as far as the option
plumbing goes (the options a session would get, and a clean error where they are missing).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from facegate import config as cfg
from facegate.backends.onnxruntime import OnnxRuntimeBackend, Providers, parse_providers
from facegate.bundle import Bundle
from facegate.errors import ConfigError
from facegate.service.daemon import Control, Daemon
from facegate.vision.recognizer import Recognizer, RecognizerConfig
from tests.conftest import run_cli

EVERY_PROVIDER = [
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
]


def test_default_is_the_cpu() -> None:
    assert Providers().session_providers(EVERY_PROVIDER) == ["CPUExecutionProvider"]
    assert cfg.default().runtime.providers == ("cpu",)


def test_tensorrt_gets_fp16_and_an_engine_cache_in_the_state_dir(home: Path) -> None:
    chosen = Providers(("tensorrt", "cuda", "cpu")).session_providers(EVERY_PROVIDER)
    name, options = chosen[0]
    assert name == "TensorrtExecutionProvider" and chosen[1:] == EVERY_PROVIDER[1:]
    cache = home / "tensorrt"
    assert options == {
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
    }
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    no_fp16 = Providers(("tensorrt",), tensorrt_fp16=False).session_providers(EVERY_PROVIDER)
    assert no_fp16[0][1]["trt_fp16_enable"] == "False"


def test_an_unavailable_provider_is_one_line_listing_the_available() -> None:
    with pytest.raises(ConfigError) as err:
        Providers(("cuda", "cpu")).resolve()  # this onnxruntime is the CPU build
    assert str(err.value) == (
        "execution provider 'cuda' (CUDAExecutionProvider) is not available in this "
        "onnxruntime; available: cpu"
    )
    with pytest.raises(ConfigError, match="unknown execution provider 'warp'"):
        parse_providers("warp,cpu")
    assert parse_providers(" CUDA, cpu ") == ("cuda", "cpu")


def test_the_session_runs_on_the_provider_asked_for(bundle: Bundle) -> None:
    entry = bundle.entry("pnet", "onnx")
    backend = bundle.open(entry, providers=Providers(("cpu",)))
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.provider == "CPUExecutionProvider"
    with pytest.raises(ConfigError, match="'cuda'"):
        bundle.open(entry, providers=Providers(("cuda",)))


def test_recognizer_reports_its_provider_and_picks_onnx_for_providers(bundle: Bundle) -> None:
    rec = Recognizer.from_bundle(bundle, RecognizerConfig(providers=Providers(("cpu",))))
    assert rec.provider in ("CPUExecutionProvider", "litert")  # auto may pick LiteRT for cpu
    with pytest.raises(ConfigError, match="'cuda'"):
        Recognizer.from_bundle(bundle, RecognizerConfig(providers=Providers(("cuda", "cpu"))))
    with pytest.raises(ConfigError, match="onnxruntime's"):
        Recognizer.from_bundle(
            bundle, RecognizerConfig(backend="litert", providers=Providers(("cuda",)))
        )


def test_runtime_table_is_validated() -> None:
    config = cfg.parse('[runtime]\nproviders = ["tensorrt", "cuda", "cpu"]\ntensorrt_fp16 = false')
    assert config.runtime.providers == ("tensorrt", "cuda", "cpu")
    assert config.runtime.tensorrt_fp16 is False
    bad = {
        '[runtime]\nproviders = ["warp"]': "config.toml:2: runtime.providers: item 1 must be",
        "[runtime]\nproviders = []": "runtime.providers: must name at least one provider",
        '[runtime]\nproviders = "cuda"': "runtime.providers: expected a list, got 'cuda'",
        '[runtime]\nproviders = ["cpu", "cpu"]': "runtime.providers: names a provider twice",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError) as err:
            cfg.parse(text, "config.toml")
        assert message in str(err.value), text
    override = cfg.apply_overrides(cfg.default(), providers=("cuda", "cpu"))
    assert override.runtime.providers == ("cuda", "cpu")
    rows = {row[0]: row for row in cfg.explain()}
    assert rows["runtime.providers"][1] == "list of strings"


def test_cli_providers_flag(bundle_dir: Path, home: Path, tmp_path: Path) -> None:
    photo = next((bundle_dir / "samples").glob("*.jpg"))
    env = {"FACEGATE_HOME": str(home)}
    common = ("--bundle", str(bundle_dir))
    proc = run_cli("identify", str(photo), *common, "--providers", "cuda,cpu", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "facegate: error: execution provider 'cuda' (CUDAExecutionProvider) is not available "
        "in this onnxruntime; available: cpu"
    ]
    proc = run_cli("identify", str(photo), *common, "--providers", "cpu", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("models", "verify", *common, "--providers", "cpu", "--json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["provider"] == "CPUExecutionProvider"
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo.read_bytes())
    proc = run_cli(
        "run",
        "--source",
        str(folder),
        "--sink",
        "jsonl:-",
        *common,
        "--providers",
        "tensorrt",
        env=env,
    )
    assert proc.returncode == 1 and "'tensorrt' (TensorrtExecutionProvider)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_check_config_refuses_providers_this_onnxruntime_lacks(
    bundle_dir: Path, home: Path, tmp_path: Path
) -> None:
    """check-config runs the daemon's own check: a config it passes starts."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[camera]\nsource = "{tmp_path}"\n[models]\nbundle = "{bundle_dir}"\n'
        '[runtime]\nproviders = ["cuda", "cpu"]\n'
    )
    proc = run_cli("check-config", str(config), env={"FACEGATE_HOME": str(home)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "runtime.providers: execution provider 'cuda' (CUDAExecutionProvider)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_health_shows_the_provider(bundle_dir: Path, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(next((bundle_dir / "samples").glob("*.jpg")).read_bytes())
    text = (
        f"[camera]\nsource = '{folder}'\n[models]\nbundle = '{bundle_dir}'\n"
        "backend = 'onnxruntime'\n[runtime]\nproviders = ['cpu']\n[http]\nenabled = false\n"
        f"[[sinks]]\ntype = 'jsonl'\npath = '{tmp_path / 'events.jsonl'}'\n"
    )
    daemon = Daemon(cfg.parse(text), Control())
    assert daemon.health()["provider"] is None  # not known before the models load
    assert daemon.run() == "ended"
    assert daemon.health()["provider"] == "CPUExecutionProvider"
