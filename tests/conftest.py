"""Shared fixtures: the built bundle, the photo folders (tests/data, ../shared), a state dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data import REPO, SHARED, data, is_missing_tool, shared

__all__ = ["REPO", "SHARED", "run_cli"]


def _default_bundle() -> Path:
    env = os.environ.get("FACEGATE_TEST_BUNDLE")
    if env:
        return Path(env)
    from facegate.host.paths import models_dir

    return models_dir() / "default"


BUNDLE_DIR = _default_bundle()  # resolved before any test changes FACEGATE_HOME


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The built default bundle (scripts/test.sh builds it before pytest runs)."""
    if not (BUNDLE_DIR / "manifest.json").exists():
        pytest.fail(f"no built bundle at {BUNDLE_DIR}: run `facegate models build` first")
    return BUNDLE_DIR


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path):
    """The loaded default bundle."""
    from facegate.bundle import Bundle

    return Bundle.load(bundle_dir)


@pytest.fixture(scope="session")
def recognizer(bundle):
    """A default recognizer on the ONNX backend (one thread)."""
    from facegate.vision.recognizer import Recognizer, RecognizerConfig

    return Recognizer.from_bundle(bundle, RecognizerConfig(backend="onnxruntime"))


@pytest.fixture(scope="session")
def liveness_model(bundle):
    """The bundle's liveness stage on the ONNX backend (FP32, one thread)."""
    from facegate.vision.liveness import LivenessModel
    from facegate.vision.recognizer import RecognizerConfig

    if not bundle.has("liveness"):
        pytest.fail(f"the bundle at {BUNDLE_DIR} predates the liveness stage: rebuild it")
    return LivenessModel.from_bundle(bundle, RecognizerConfig(backend="onnxruntime"))


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """tests/data/faces: a few identities of face_recognition/ and bbt/, in the shared layout."""
    return data("faces")


@pytest.fixture(scope="session")
def shared_faces_dir() -> Path:
    """../shared/faces (every identity), or skip: it is optional data."""
    return shared("faces")


@pytest.fixture(scope="session")
def hamilton_clip() -> Path:
    """The Hamilton clip (640x360, 275 frames, Lin-Manuel Miranda speaking) from tests/data."""
    return data("video/face_recognition_short_hamilton_clip.mp4")


@pytest.fixture()
def state(home: Path, bundle_dir: Path) -> Path:
    """A private FACEGATE_HOME whose default bundle is the built one."""
    (home / "models").mkdir(parents=True)
    (home / "models" / "default").symlink_to(bundle_dir)
    return home


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty FACEGATE_HOME for the test."""
    path = tmp_path / "home"
    monkeypatch.setenv("FACEGATE_HOME", str(path))
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``facegate ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "facegate.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        check=False,
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under scripts/test.sh a skip for a missing tool is a failure: CI must not hide it.

    Optional data (``../shared``, see tests/data) stays a skip with its reason: a bare clone
    passes without it.
    """
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("FACEGATE_STRICT") == "1" and report.skipped and call.excinfo is not None:
        reason = str(call.excinfo.value)
        if is_missing_tool(reason):
            report.outcome = "failed"
            report.longrepr = f"required for the full suite: {reason}"
