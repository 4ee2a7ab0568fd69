"""``facegate unknowns``: every action on a small real gallery; bad input is one line, exit 1."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from facegate.cli import main
from facegate.gallery.unknowns import UnknownFace, UnknownStore

MODEL, DIM = "mobilefacenet-test", 128


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A gallery with two clusters of two unknown faces each."""
    path = tmp_path / "gallery.db"
    rng = np.random.default_rng(5)
    with UnknownStore.open(path, MODEL, DIM) as store:
        for who in range(2):
            centre = rng.normal(size=DIM).astype(np.float32)
            for k in range(2):
                crop = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
                vector = centre + rng.normal(scale=0.05, size=DIM).astype(np.float32)
                store.add(UnknownFace(vector, crop, 0.3 + k / 10, 1.7e9 + who * 10 + k, "door", k))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_show_label_ignore(db: Path, tmp_path: Path, capsys) -> None:
    g = ("--gallery", str(db))
    code, out, _ = run(capsys, "unknowns", "list", "--json", *g)
    clusters = json.loads(out)
    assert code == 0 and [c["size"] for c in clusters] == [2, 2]
    first, second = clusters[0]["id"], clusters[1]["id"]
    crops = tmp_path / "crops"
    code, out, _ = run(capsys, "unknowns", "show", str(first), "--export", str(crops), *g)
    assert code == 0 and "door" in out
    files = sorted(crops.iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert files[0].read_bytes().startswith(b"\xff\xd8\xff")
    assert run(capsys, "unknowns", "label", str(first), "Ann", *g)[0] == 0
    assert run(capsys, "unknowns", "ignore", str(second), *g)[0] == 0
    code, out, _ = run(capsys, "unknowns", "list", *g)
    assert "labelled Ann" in out and "ignored" not in out
    code, out, _ = run(capsys, "unknowns", "list", "--all", "--json", *g)
    assert {c["state"] for c in json.loads(out)} == {"labelled", "ignored"}
    assert run(capsys, "unknowns", "purge", "--all", "--yes", *g)[0] == 0
    assert json.loads(run(capsys, "unknowns", "list", "--all", "--json", *g)[1]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "99"), "no unknown cluster 99"),
        (("label", "1", "bad\nname"), "name"),
        (("label", "77", "Ann"), "no unknown cluster 77"),
        (("ignore", "42"), "no unknown cluster 42"),
        (("purge", "--older-than", "-1", "--yes"), "--older-than must be"),
        (("purge", "--all"), "refusing to delete without confirmation"),
        (("correct", "nosuchvisit"), "no recent match with visit id 'nosuchvisit'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(db: Path, capsys, args: tuple, message: str) -> None:
    code, _, err = run(capsys, "unknowns", *args, "--gallery", str(db))
    assert code == 1 and err.startswith("facegate: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_gallery_and_export_onto_a_file(db: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "unknowns", "list", "--gallery", str(tmp_path / "none.db"))
    assert code == 1 and "no gallery at" in err and not (tmp_path / "none.db").exists()
    target = tmp_path / "a-file"
    target.write_text("mine")
    code, _, err = run(
        capsys, "unknowns", "show", "1", "--export", str(target), "--gallery", str(db)
    )
    assert code == 1 and "is not a folder" in err and target.read_text() == "mine"
