"""Which face of a photo with several eval uses: centre in an LFW-layout folder, else largest."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from facegate.evaluate.embed import centre_face, embed_images, largest_face, layout_rule
from facegate.types import Face

NO_LANDMARKS = np.zeros((5, 2), np.float32)
SMALL_CENTRED = Face((100, 100, 150, 150), 0.99, NO_LANDMARKS)
LARGE_CORNER = Face((170, 170, 250, 250), 0.99, NO_LANDMARKS)


class TwoFaces:
    """Every image shows a small centred face and a large one in the corner; the embedding
    says which one was embedded."""

    def __init__(self) -> None:
        self.embedder = SimpleNamespace(size=2)

    def detect(self, image: np.ndarray) -> list[Face]:
        return [LARGE_CORNER, SMALL_CENTRED]

    def embed(self, image: np.ndarray, faces: list[Face]) -> tuple[list, np.ndarray]:
        return [], np.array([[1, 0] if f is SMALL_CENTRED else [0, 1] for f in faces], np.float32)


def _images(root: Path, side: int, count: int = 3) -> tuple[Path, ...]:
    root.mkdir()
    for k in range(count):
        cv2.imwrite(str(root / f"{k}.png"), np.full((side, side, 3), 90, np.uint8))
    return tuple(sorted(root.iterdir()))


def test_the_rules_pick_different_faces() -> None:
    faces = [LARGE_CORNER, SMALL_CENTRED]
    assert largest_face(faces) == 0 and centre_face(faces, (250, 250, 3)) == 1


def test_layout_rule_is_centre_only_when_every_image_is_250x250() -> None:
    assert layout_rule([(250, 250, 3)] * 4)[0] == "centre"
    assert layout_rule([(250, 250, 3), (251, 250, 3)])[0] == "largest"
    assert layout_rule([])[0] == "largest"


def test_an_lfw_layout_folder_embeds_the_centre_face_and_counts_the_change(tmp_path: Path) -> None:
    emb = embed_images(TwoFaces(), _images(tmp_path / "lfw", 250), progress=False)
    assert (emb.face, emb.face_differs, emb.multi_face) == ("centre", 3, 3)
    assert emb.vectors.tolist() == [[1, 0]] * 3
    forced = embed_images(TwoFaces(), _images(tmp_path / "f", 250), progress=False, face="largest")
    assert forced.face == "largest" and forced.vectors.tolist() == [[0, 1]] * 3


def test_other_folders_embed_the_largest_face(tmp_path: Path) -> None:
    emb = embed_images(TwoFaces(), _images(tmp_path / "photos", 300), progress=False)
    assert (emb.face, emb.face_differs) == ("largest", 3)
    assert emb.vectors.tolist() == [[0, 1]] * 3
    with pytest.raises(ValueError):
        embed_images(TwoFaces(), (), progress=False, face="left")
