"""The suite's data rules: tests/data is complete and small; strict fails missing tools only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.data import DATA, REPO

MAX_DATA_BYTES = 10 * 1024 * 1024  # the fixtures travel with every clone
NOT_FIXTURES = {"__init__.py", "make_data.py", "NOTICE.md"}

PROBE = """
from tests.data import needs_tool, shared

def test_tool():
    needs_tool("no-such-program-on-any-path")

def test_optional_data():
    shared("faces")

def test_runs():
    pass
"""


def _fixtures() -> list[Path]:
    return [
        p
        for p in DATA.rglob("*")
        if p.is_file() and p.name not in NOT_FIXTURES and "__pycache__" not in p.parts
    ]


def test_every_fixture_is_named_in_the_notice_and_the_set_is_small() -> None:
    notice = (DATA / "NOTICE.md").read_text()
    files = _fixtures()
    assert len(files) > 50  # photos, crops, liveness samples and the clip
    missing = [str(p.relative_to(DATA)) for p in files if p.name not in notice]
    assert missing == [], "add them to tests/data/NOTICE.md with origin and licence"
    assert sum(p.stat().st_size for p in files) <= MAX_DATA_BYTES


def _probe(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess:
    """Run PROBE under pytest with tests/conftest.py's hooks and no ../shared."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "FACEGATE_SHARED": str(tmp_path / "no-shared-here")}
    env.pop("FACEGATE_STRICT", None)
    if strict:
        env["FACEGATE_STRICT"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    cmd += ["-p", "tests.conftest", "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")]
    return subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_strict_mode_fails_a_missing_tool_but_skips_missing_optional_data(tmp_path: Path) -> None:
    strict = _probe(tmp_path, strict=True)
    assert "1 failed, 1 passed, 1 skipped" in strict.stdout, strict.stdout
    assert "required for the full suite: missing tool: no-such-program" in strict.stdout
    assert "optional data:" in strict.stdout and "no-shared-here is not present" in strict.stdout
    relaxed = _probe(tmp_path, strict=False)
    assert "1 passed, 2 skipped" in relaxed.stdout, relaxed.stdout
    assert "missing tool: no-such-program-on-any-path is not installed" in relaxed.stdout
