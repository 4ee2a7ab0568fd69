"""Deployment files: the unit verifies and is hardened, scripts parse, the example config passes."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facegate.cli import check_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "facegate.service"
TEMPLATE = DEPLOY / "facegate@.service"  # one daemon per /etc/facegate/NAME.toml
SCRIPTS = [DEPLOY / "install-pi.sh", DEPLOY / "install-jetson.sh"]
MAX_EXPOSURE = 3.0  # systemd-analyze security: <= 3.0 is rated "OK"
INSTALLED_FACEGATE = "/opt/facegate/.venv/bin/facegate"


def run(*cmd: str | Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` and capture its output as text."""
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=120, check=False
    )


def systemd_analyze() -> str:
    """The systemd-analyze binary, or skip."""
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed")
    return path


def unit_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    """The unit's settings: name -> every value given (comments and sections dropped)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            name, _, value = line.partition("=")
            found.setdefault(name.strip(), []).append(value.strip())
    return found


@pytest.fixture()
def local_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart is this checkout's facegate (verify checks it exists)."""
    facegate = Path(sys.executable).with_name("facegate")
    if not facegate.exists():
        pytest.skip(f"{facegate} is missing: install the package into the venv")
    text = UNIT.read_text()
    assert INSTALLED_FACEGATE in text
    copy = tmp_path / "facegate.service"
    copy.write_text(text.replace(INSTALLED_FACEGATE, str(facegate)))
    return copy


@pytest.fixture()
def local_instance(tmp_path: Path) -> Path:
    """The template unit as instance ``door``, its ExecStart this checkout's facegate."""
    facegate = Path(sys.executable).with_name("facegate")
    if not facegate.exists():
        pytest.skip(f"{facegate} is missing: install the package into the venv")
    copy = tmp_path / "facegate@door.service"
    copy.write_text(TEMPLATE.read_text().replace(INSTALLED_FACEGATE, str(facegate)))
    return copy


# what differs between facegate.service and an instance of facegate@.service, and nothing else
PER_INSTANCE = {
    "Description": "facegate face recognition (%i)",
    "ExecStart": INSTALLED_FACEGATE + " run --config /etc/facegate/%i.toml",
    "Environment": "FACEGATE_HOME=/var/lib/facegate/%i",
    "StateDirectory": "facegate/%i",
    "ReadWritePaths": "/var/lib/facegate/%i",
    "LoadCredential": "http-token:facegate-%i-http-token",
}


def test_template_unit_is_the_unit_per_instance() -> None:
    """Same hardening and service contract as facegate.service; config and state per instance."""
    single, template = unit_settings(UNIT), unit_settings(TEMPLATE)
    for name, value in PER_INSTANCE.items():
        assert template.pop(name) == [value], name
        single.pop(name)
    assert template == single


def test_template_instance_verifies(local_instance: Path) -> None:
    result = run(systemd_analyze(), "verify", "--man=no", "--generators=no", local_instance)
    assert result.returncode == 0, result.stderr
    assert "facegate@door.service" not in result.stderr, result.stderr


def test_template_instance_exposure_is_at_most_3(local_instance: Path) -> None:
    result = run(systemd_analyze(), "security", "--offline=yes", "--no-pager", local_instance)
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot assess unit files offline: {result.stderr}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_declares_the_service_contract() -> None:
    settings = unit_settings()
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "User": "facegate",
        "StateDirectory": "facegate",
        "StateDirectoryMode": "0700",
        "Environment": "FACEGATE_HOME=/var/lib/facegate",
        "UMask": "0077",
        "DevicePolicy": "closed",
        "CapabilityBoundingSet": "",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    for name, value in expected.items():
        assert settings.get(name) == [value], name
    assert "char-video4linux rw" in settings["DeviceAllow"]
    assert settings["ExecStart"][0].startswith(INSTALLED_FACEGATE + " run --config ")


def test_unit_verifies(local_unit: Path) -> None:
    result = run(systemd_analyze(), "verify", "--man=no", "--generators=no", local_unit)
    assert result.returncode == 0, result.stderr
    assert "facegate.service" not in result.stderr, result.stderr


def test_unit_exposure_is_at_most_3(local_unit: Path) -> None:
    result = run(systemd_analyze(), "security", "--offline=yes", "--no-pager", local_unit)
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot assess unit files offline: {result.stderr}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_install_scripts_parse(script: Path) -> None:
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()
    result = run("bash", "-n", script)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_install_scripts_are_shellcheck_clean(script: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt install shellcheck)")
    result = run("shellcheck", script)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_install_scripts_show_help_without_root(script: Path) -> None:
    result = run("bash", script, "--help")
    assert result.returncode == 0 and "Idempotent" in result.stdout


def test_example_config_passes_check_config(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid as written; its camera (/dev/video0) is checked on the host, like the daemon does."""
    parser = argparse.ArgumentParser()
    check_config.register(parser.add_subparsers())
    example = DEPLOY / "config.example.toml"
    args = parser.parse_args(["check-config", str(example)])
    if not Path("/dev/video0").exists():  # no camera here: refused for that alone
        assert args.func(args) == 1
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"{example}: no such camera: /dev/video0 does not exist")
        copy = tmp_path / "config.toml"
        copy.write_text(example.read_text().replace('source = "0"', f'source = "{tmp_path}"'))
        args = parser.parse_args(["check-config", str(copy)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{args.file}: ok\n")
