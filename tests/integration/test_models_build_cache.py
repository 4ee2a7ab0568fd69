"""``facegate models build`` installs a finished cached build without the converter extra."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from facegate.converters import recipe as recipes

# Runs the CLI with the converter extra's modules made unimportable, as on a device.
WITHOUT_CONVERT = (
    "import sys; sys.modules.update(dict.fromkeys("
    "['onnx', 'tensorflow', 'tflite', 'lz4', 'joblib']));"
    "from facegate.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _build(home: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "FACEGATE_HOME": str(home), "FACEGATE_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_CONVERT, "models", "build", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_cached_build_installs_without_the_convert_extra(bundle_dir: Path, tmp_path: Path) -> None:
    key = recipes.load("default").build_key()
    cached = tmp_path / "cache" / "bundles" / f"default-{key}"
    shutil.copytree(bundle_dir, cached)
    manifest = json.loads((cached / "manifest.json").read_text())
    manifest["build_key"] = key  # this copy stands for a finished build of this checkout
    (cached / "manifest.json").write_text(json.dumps(manifest))
    proc = _build(tmp_path / "home", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    target = tmp_path / "home" / "models" / "default"
    assert out["state"] == "cached" and out["path"] == str(target)
    assert json.loads((target / "manifest.json").read_text())["build_key"] == key
    assert stat.S_IMODE((target / "manifest.json").stat().st_mode) == 0o600


def test_an_actual_build_without_the_extra_says_so_in_one_line(tmp_path: Path) -> None:
    proc = _build(tmp_path / "home", tmp_path / "cache")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "needs the converter extra (onnx is missing)" in lines[0]
    assert "pip install 'facegate[convert]'" in lines[0]
    assert "facegate models install" in lines[0]
    assert not (tmp_path / "home" / "models" / "default").exists()
