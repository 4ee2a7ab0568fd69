"""Evaluation data (folders, labels.csv, pairs files, pair lists) and evaluate() with a stub."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from facegate.errors import FacegateError
from facegate.evaluate import dataset as ds
from facegate.evaluate.run import evaluate, plot_roc
from facegate.types import Face

COLOURS = {
    "Ada_Lovelace": (200, 40, 40),
    "Alan_Turing": (40, 200, 40),
    "Grace_Hopper": (40, 40, 200),
}


def write_jpeg(path: Path, colour: tuple[int, int, int], shade: int = 0) -> None:
    """A small solid-colour JPEG (BGR on disk, as cv2 writes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((24, 24, 3), [max(0, c - shade) for c in colour[::-1]], np.uint8)
    assert cv2.imwrite(str(path), image)


@pytest.fixture()
def lfw(tmp_path: Path) -> Path:
    """An LFW-layout folder: 3, 2 and 1 images, a skipped folder and a stray text file."""
    root = tmp_path / "lfw"
    for (name, colour), count in zip(COLOURS.items(), (3, 2, 1), strict=True):
        for n in range(1, count + 1):
            write_jpeg(root / name / f"{name}_{n:04d}.jpg", colour, shade=10 * n)
    write_jpeg(root / "_unlabelled" / "crowd.jpg", (9, 9, 9))
    (root / "Ada_Lovelace" / "notes.txt").write_text("not an image")
    return root


def test_scan_folders_skips_underscore_folders_and_non_images(lfw: Path) -> None:
    data = ds.scan(lfw)
    assert data.source == "folders"
    assert [p.name for p in data.paths][:3] == [f"Ada_Lovelace_000{n}.jpg" for n in (1, 2, 3)]
    assert data.labels == ("Ada_Lovelace",) * 3 + ("Alan_Turing",) * 2 + ("Grace_Hopper",)
    assert (data.identities, data.ignored) == (3, 1)
    assert data.label_ids().tolist() == [0, 0, 0, 1, 1, 2]


def test_scan_refuses_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(FacegateError, match="no such folder"):
        ds.scan(tmp_path / "nope")
    (tmp_path / "empty" / "_x").mkdir(parents=True)
    with pytest.raises(FacegateError, match="no images found"):
        ds.scan(tmp_path / "empty")


def test_labels_csv_maps_files_at_root_or_in_identity_folders(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "id01" / "img1.jpg", (200, 0, 0))
    write_jpeg(tmp_path / "img2.jpg", (0, 200, 0))
    (tmp_path / "labels.csv").write_text("identity,file\nid01,img1.jpg\nid02,img2.jpg\n")
    data = ds.scan(tmp_path)
    assert data.source == "labels.csv"
    assert data.paths == (tmp_path / "id01" / "img1.jpg", tmp_path / "img2.jpg")
    assert data.labels == ("id01", "id02")
    (tmp_path / "labels.csv").write_text("identity,file\nid01,img1.jpg\nid03,gone.jpg\n")
    with pytest.raises(FacegateError, match=r"1 listed file.*gone\.jpg"):
        ds.scan(tmp_path)
    (tmp_path / "labels.csv").write_text("who,what\na,b\n")
    with pytest.raises(FacegateError, match="identity,file"):
        ds.scan(tmp_path)


def test_pairs_with_header_give_lfw_folds(lfw: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(
        "2\t1\nAda_Lovelace\t1\t2\nAda_Lovelace\t1\tAlan_Turing\t2\n"
        "Alan_Turing 1 2\nGrace_Hopper 1 Ada_Lovelace 3\n"
    )
    parsed = ds.parse_pairs(pairs, lfw)
    assert [(p.same, p.fold) for p in parsed] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert parsed[1].first == lfw / "Ada_Lovelace" / "Ada_Lovelace_0001.jpg"
    assert parsed[1].second == lfw / "Alan_Turing" / "Alan_Turing_0002.jpg"


def test_pairs_without_header_are_split_per_class(lfw: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(
        "Ada_Lovelace 1 2\nAda_Lovelace 2 3\nAda_Lovelace 1 Alan_Turing 1\n"
        "Alan_Turing 2 Grace_Hopper 1\n\n"
    )
    parsed = ds.parse_pairs(pairs, lfw)
    assert [p.same for p in parsed] == [True, True, False, False]
    assert [p.fold for p in parsed] == [0, 1, 0, 1]  # as many folds as the smaller class allows
    pairs.write_text(
        "2\nAda_Lovelace 1 2\nAda_Lovelace 2 3\nAda_Lovelace 1 Alan_Turing 1\n"
        "Alan_Turing 2 Grace_Hopper 1\n"
    )  # pairsDevTrain.txt style: one number
    assert [p.fold for p in ds.parse_pairs(pairs, lfw)] == [0, 1, 0, 1]


def test_pairs_errors_are_one_clear_line(lfw: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("Ada_Lovelace 1 2\nAda_Lovelace 1 7\nNobody 1 Ada_Lovelace 9\n")
    with pytest.raises(FacegateError, match=r"3 image\(s\).*Ada_Lovelace_0007.jpg \(line 2\)"):
        ds.parse_pairs(pairs, lfw)
    pairs.write_text("Ada_Lovelace 1 2\nAda_Lovelace one 2\n")
    with pytest.raises(FacegateError, match="line 2: expected"):
        ds.parse_pairs(pairs, lfw)
    pairs.write_text("10 300\nAda_Lovelace 1 2\nAda_Lovelace 1 Alan_Turing 1\n")
    with pytest.raises(FacegateError, match="header says 10 folds"):
        ds.parse_pairs(pairs, lfw)
    with pytest.raises(FacegateError, match="no such pairs file"):
        ds.parse_pairs(tmp_path / "missing.txt", lfw)


def test_with_pair_images_indexes_into_the_dataset(lfw: Path, tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text("Ada_Lovelace 1 3\nAda_Lovelace 2 Grace_Hopper 1\n")
    data, pairs = ds.with_pair_images(ds.scan(lfw), ds.parse_pairs(tmp_path / "pairs.txt", lfw))
    assert len(data.paths) == 6
    assert [data.paths[i].name for i in (*pairs.a, *pairs.b)] == [
        "Ada_Lovelace_0001.jpg",
        "Ada_Lovelace_0002.jpg",
        "Ada_Lovelace_0003.jpg",
        "Grace_Hopper_0001.jpg",
    ]
    assert pairs.same.tolist() == [True, False]


def brute_pairs(labels, same):
    n = len(labels)
    return {(i, j) for i in range(n) for j in range(i + 1, n) if (labels[i] == labels[j]) == same}


def test_all_pairs_match_brute_force() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2, 3, 1])
    a, b, sampled = ds.genuine_pairs(labels)
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == brute_pairs(labels, True)
    assert len(a) == len(brute_pairs(labels, True)) and not sampled
    a, b, sampled = ds.impostor_pairs(labels)
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == brute_pairs(labels, False)
    assert len(a) == len(brute_pairs(labels, False)) and not sampled


def test_pairs_above_the_limit_are_a_seeded_sample() -> None:
    labels = np.arange(200) % 7
    a, b, sampled = ds.impostor_pairs(labels, limit=500)
    assert sampled and len(a) == 500
    assert np.all(a < b) and np.all(labels[a] != labels[b])
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == 500
    again = ds.impostor_pairs(labels, limit=500)
    assert np.array_equal(a, again[0]) and np.array_equal(b, again[1])
    a, b, sampled = ds.genuine_pairs(labels, limit=300)
    assert sampled and 250 <= len(a) <= 350
    assert np.all(a < b) and np.all(labels[a] == labels[b])


def test_balanced_pairs_and_folds() -> None:
    labels = np.arange(60) % 6
    gen, imp = ds.genuine_pairs(labels)[:2], ds.impostor_pairs(labels)[:2]
    pairs = ds.balanced_pairs(gen, imp, per_class=100)
    assert pairs.same.sum() == 100 and (~pairs.same).sum() == 100
    assert np.all((labels[pairs.a] == labels[pairs.b]) == pairs.same)
    for f in range(10):
        assert pairs.same[pairs.folds == f].sum() == 10 == (~pairs.same[pairs.folds == f]).sum()
    assert ds.assign_folds(np.array([True, True, False, False, False])).tolist() == [0, 1, 0, 0, 1]


class StubRecognizer:
    """Colour is identity: the embedding is the image's mean colour; black images have no face."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(threshold=0.9, precision="fp32", flip=False)
        self.embedder = SimpleNamespace(
            size=3, entry=SimpleNamespace(format="onnx", precision="fp32")
        )
        self.model_id = "stub-colour"

    def detect(self, image: np.ndarray) -> list[Face]:
        if image.mean() < 5:
            return []
        return [
            Face((0, 0, 10, 10), 0.99, np.zeros((5, 2), np.float32)),
            Face((0, 0, 20, 20), 0.99, np.zeros((5, 2), np.float32)),
        ]

    def embed(self, image: np.ndarray, faces: list[Face]) -> tuple[list, np.ndarray]:
        v = image.reshape(-1, 3).mean(axis=0) - 60
        return [], (v / np.linalg.norm(v))[None].astype(np.float32)


def test_evaluate_reports_failures_and_figures(lfw: Path, tmp_path: Path) -> None:
    write_jpeg(lfw / "Grace_Hopper" / "Grace_Hopper_0002.jpg", (0, 0, 0))  # no face
    (lfw / "Alan_Turing" / "Alan_Turing_0003.jpg").write_bytes(b"\xff\xd8garbage")
    (tmp_path / "pairs.txt").write_text(
        "Grace_Hopper 1 2\nAda_Lovelace 1 2\nAda_Lovelace 2 3\n"
        "Ada_Lovelace 1 Alan_Turing 1\nAda_Lovelace 3 Alan_Turing 2\n"
    )
    report = evaluate(StubRecognizer(), lfw, tmp_path / "pairs.txt", far=0.1, progress=False)
    assert (report.images, report.embedded, report.multi_face) == (8, 6, 6)
    assert [Path(p).name for p, _ in report.unreadable] == ["Alan_Turing_0003.jpg"]
    assert [Path(p).name for p in report.no_face] == ["Grace_Hopper_0002.jpg"]
    s = report.scores
    assert (s.genuine, s.impostor, s.failed_genuine, s.failed_impostor) == (4, 11, 3, 10)
    assert s.auc == 1.0 and s.best_accuracy == 1.0
    assert [p.tar for p in s.far_points] == [1.0, None, None, None]  # 11 impostors: only 0.1
    assert "not reachable: 11 impostor pairs, at least 100 needed" in s.far_points[1].note
    v = report.verification
    assert (v.pairs, v.failed_pairs, v.folds) == (5, 1, 2)  # fold 0: the failed pair + 2 good
    assert v.accuracy == 1.0 and v.accuracy_with_failures == pytest.approx((2 / 3 + 1) / 2)
    i = report.identification
    assert (i.gallery, i.probes, i.failed_probes, i.distractors) == (3, 3, 2, 1)
    assert i.rank1 == 1.0 and i.rank1_with_failures == 0.6
    assert i.dir is None and "not reachable" in i.note
    text = json.dumps(report.as_dict(), allow_nan=False)
    assert json.loads(text)["scores"]["far_points"][1]["tar"] is None
    plot_roc(report, tmp_path / "roc.png")
    assert cv2.imread(str(tmp_path / "roc.png")) is not None
