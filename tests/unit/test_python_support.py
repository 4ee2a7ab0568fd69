"""Python 3.10 to 3.13: the declared floor, and no syntax or stdlib newer than it (vermin)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.data import REPO, needs_tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

FLOOR = "3.10"  # JetPack 6's Python; Debian 13 (Raspberry Pi OS trixie) has 3.13
CHECKED = ("edge", "converters", "benchmarks", "tests")
VERMIN = "import sys, vermin; sys.exit(vermin.main())"  # its console script; it has no __main__


def test_the_floor_is_declared_everywhere() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == f">={FLOOR}"
    assert project["tool"]["ruff"]["target-version"] == "py" + FLOOR.replace(".", "")
    assert "tomli>=2.0; python_version < '3.11'" in project["project"]["dependencies"]
    dev = project["project"]["optional-dependencies"]["dev"]
    assert any(dep.startswith("vermin") for dep in dev)  # so CI has the check below


def test_no_code_needs_a_python_newer_than_the_floor() -> None:
    """vermin reads every module and names any syntax, module or call newer than 3.10."""
    needs_tool("vermin", importlib.util.find_spec("vermin"), "pip install -e '.[dev]'")
    done = subprocess.run(
        [sys.executable, "-c", VERMIN, f"--target={FLOOR}-", "--violations", "--no-tips"]
        + ["--eval-annotations", *CHECKED],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
