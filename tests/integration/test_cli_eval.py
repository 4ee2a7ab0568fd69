"""`facegate eval` on the shared photos: accuracy targets, JSON, plot, any precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def all_people(shared_faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every labelled identity of ../shared/faces in one folder-per-identity tree (symlinks)."""
    root = tmp_path_factory.mktemp("allfaces")
    for group in ("face_recognition", "bbt", "deepface"):
        for folder in sorted((shared_faces_dir / group).iterdir()):
            if folder.is_dir() and not folder.name.startswith("_"):
                (root / f"{group}-{folder.name}").symlink_to(folder)
    return root


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_rank1_on_every_shared_identity(
    all_people: Path, bundle_dir: Path, tmp_path: Path, home: Path, precision: str
) -> None:
    out, plot = tmp_path / "eval.json", tmp_path / "roc.png"
    proc = run_cli(
        "eval",
        str(all_people),
        "--exclude",
        "face_recognition-obama_resolution_variants",
        "--json",
        str(out),
        "--plot",
        str(plot),
        "--bundle",
        str(bundle_dir),
        "--backend",
        "onnxruntime",
        "--precision",
        precision,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    text = json.dumps(report)
    assert "NaN" not in text and "Infinity" not in text
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    ident = report["identification"]
    assert ident["rank1"] >= 0.95, ident
    verification = report["verification"]
    assert verification["accuracy"] >= 0.97, verification


def test_eval_refuses_a_missing_folder_in_one_line(home: Path, bundle_dir: Path) -> None:
    proc = run_cli("eval", "/nonexistent/faces", "--bundle", str(bundle_dir))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
