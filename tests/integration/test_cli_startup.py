"""``facegate identify`` loads only what answering needs: no daemon, config, sinks or crypto.

Structural, not timed: a real one-image ``identify --json`` runs in a fresh interpreter, which
then reports every module in ``sys.modules``; the test checks what is absent from that list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Packages the identify path must never import, with the reason.
NOT_ON_IDENTIFY = {
    "cryptography": "only the gallery export encrypts",
    "paho": "the MQTT sink",
    "rich": "tables for people; --json prints none",
    "facegate.service": "the daemon",
    "facegate.config": "the daemon's config schema",
    "facegate.sinks": "event sinks",
    "facegate.evaluate": "facegate eval",
    "facegate.gallery.exchange": "export and import",
    "facegate.web": "the daemon's web page",
    "flask": "the web page",
    "flask_wtf": "the web page's CSRF checks",
    "wtforms": "the web page's CSRF checks",
    "werkzeug": "the web page",
    "jinja2": "the web page's templates",
    "waitress": "the daemon's health and metrics server",
    "matplotlib": "the benchmark's plots",
    "PIL": "images decode through OpenCV",
    "requests": "an HTTP client: the webhook sink",
    "urllib3": "an HTTP client: the webhook sink",
    "facegate.converters": "the offline model build",
    "subprocess": "finding libc with ctypes.util spawned ldconfig: ~20 ms of the answer",
}
NEEDED = ("facegate.vision.recognizer", "facegate.cli.recognise")  # proves the list is real
MARK = "MODULES "
# facegate's own entry point, then the module list on the last stderr line.
RUN = (
    "import json, sys\n"
    "from facegate.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    f"print({MARK!r} + json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def modules_after(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``facegate ARGS`` in a fresh interpreter; its result and the modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        check=False,
    )
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith(MARK)]
    return done, set(json.loads(lines[-1][len(MARK) :])) if lines else set()


@pytest.mark.slow
def test_identify_json_imports_no_daemon_config_sink_or_crypto(
    state: Path, faces_dir: Path
) -> None:
    photo = faces_dir / "face_recognition" / "obama" / "obama.jpg"
    done, modules = modules_after("identify", "--json", str(photo))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads(done.stdout)[0]["faces"]) == 1  # it really answered
    assert set(NEEDED) <= modules
    loaded = {pkg: sorted(m for m in modules if _under(m, pkg)) for pkg in NOT_ON_IDENTIFY}
    assert {pkg: mods for pkg, mods in loaded.items() if mods} == {}


def test_help_still_lists_every_command(home: Path) -> None:
    done, _ = modules_after("--help")
    assert done.returncode == 0
    for command in ("models", "gallery", "identify", "verify", "demo", "eval", "run"):
        assert command in done.stdout
    assert "check-config" in done.stdout


def test_fleet_bridge_config_imports_no_crypto_mqtt_or_vision() -> None:
    done, modules = modules_after("fleet", "bridge-config", "--central", "c.example:8883")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "topic facegate/# out 1" in done.stdout
    assert "facegate.fleet.bridge" in modules  # proves the list is real
    heavy = ("cryptography", "paho", "cv2", "numpy", "onnxruntime", "facegate.gallery")
    assert sorted(m for m in modules if any(_under(m, pkg) for pkg in heavy)) == []
