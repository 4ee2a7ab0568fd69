"""deploy/check-arm64.sh: shellcheck clean, usable help, and the Pi constraints it installs.

The emulated run itself takes minutes and needs root, debootstrap and qemu-user-static: it is run
by hand (docs/tested-where.md), never here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "check-arm64.sh"
INSTALL_PI = REPO / "deploy" / "install-pi.sh"


def bash(*args: str) -> subprocess.CompletedProcess:
    """Run bash with ``args`` and capture its output as text."""
    return subprocess.run(
        ["bash", *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


def test_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt install shellcheck)")
    result = subprocess.run(
        ["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout


def test_script_is_strict_bash() -> None:
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert bash("-n", str(SCRIPT)).returncode == 0


def test_help_works_without_root_and_names_every_option() -> None:
    result = bash(str(SCRIPT), "--help")
    assert result.returncode == 0, result.stderr
    options = set(re.findall(r"^\s+(--[a-z0-9-]+)\)", SCRIPT.read_text(), re.MULTILINE))
    assert {"--bundle", "--bundle-dir", "--cache", "--start", "--frames"} <= options
    for option in options - {"--help"}:
        assert option in result.stdout, option
    assert "Idempotent" in result.stdout


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["--frames", "0"], ["--start", "x"], ["--backend", "cuda"], ["--cache"]],
    ids=lambda a: " ".join(a),
)
def test_bad_arguments_fail_before_anything_runs(args: list[str]) -> None:
    # --shared points nowhere, so even a script that let a bad argument through stops early.
    result = bash(str(SCRIPT), "--shared", "/nonexistent", *args)
    assert result.returncode != 0
    assert args[0] in result.stderr, result.stderr


def test_installs_the_constraints_install_pi_uses_on_bookworm() -> None:
    result = bash("-c", f"source {SCRIPT} && pi_constraints")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert any(line.startswith("numpy") for line in lines), result.stdout
    pi = INSTALL_PI.read_text()
    assert "deploy/constraints-pi-${CODENAME:-bookworm}.txt" in pi  # the file install-pi reads
    wanted = (INSTALL_PI.parent / "constraints-pi-bookworm.txt").read_text().splitlines()
    assert lines == [line for line in wanted if line.strip() and not line.startswith("#")]
