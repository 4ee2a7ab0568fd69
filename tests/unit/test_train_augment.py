"""Border fill: only the alignment's black border is replaced, from real images, reproducibly;
the targets of a filled view must come from the online teacher; the flag and the clip are checked
with one clear line."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.cli.training import add_common_args
from facegate.converters.train import augment, faces
from facegate.errors import FacegateError

SIDE = augment.SIDE


def _crop() -> np.ndarray:
    """A grey face-like crop with black top corners and a dark pupil inside the face."""
    crop = np.full((SIDE, SIDE, 3), 140, np.uint8)
    crop[:30, :25] = 0  # border left by alignment, touching two edges
    crop[:20, -18:] = 3  # near-black JPEG border
    crop[50:56, 40:46] = 0  # a pupil: dark, but not border
    return crop


def test_border_mask_is_the_dark_region_touching_the_edge() -> None:
    mask = augment.border_mask(_crop())
    assert mask[:30, :25].all() and mask[:20, -18:].all()
    assert not mask[50:56, 40:46].any()
    assert mask.sum() == 30 * 25 + 20 * 18
    assert not augment.border_mask(np.full((SIDE, SIDE, 3), 90, np.uint8)).any()


def test_fill_replaces_only_the_border_with_background() -> None:
    crop = _crop()
    background = np.zeros((200, 300, 3), np.uint8)
    background[...] = (200, 40, 90)
    out = augment.fill_border(crop, np.random.default_rng(0), [background])
    mask = augment.border_mask(crop)
    assert (out[mask] == (200, 40, 90)).all()
    assert (out[~mask] == crop[~mask]).all()  # face and pupil untouched
    assert (crop[:30, :25] == 0).all()  # the input is not modified


def test_filled_views_are_seeded_and_fill_zero_draws_nothing_extra() -> None:
    crops = np.stack([_crop()] * 6)
    bgs = (np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8),)
    aug = augment.Augment(fill=1.0)
    a, _ = augment.batch(crops, np.random.default_rng(3), aug, bgs)
    b, _ = augment.batch(crops, np.random.default_rng(3), aug, bgs)
    assert (a == b).all()
    assert not any(augment.border_mask(v)[:20, :15].all() for v in a)  # corners were filled
    # off: the same random draws as a run made before the option existed
    plain = augment.Augment()
    c, _ = augment.batch(crops, np.random.default_rng(3), plain, bgs)
    d, _ = augment.batch(crops, np.random.default_rng(3), plain)
    assert (c == d).all() and (c[:, :30, :25] == 0).any()


def test_fill_without_any_image_to_fill_from_is_refused() -> None:
    with pytest.raises(ValueError, match="background"):
        augment.view(_crop(), np.random.default_rng(0), augment.Augment(fill=1.0))


def test_filled_views_need_the_online_teacher() -> None:
    pytest.importorskip("torch", reason="optional extra: [train] (torch) is not installed")
    from torch import nn

    from facegate.converters.train.distill import DistillConfig, distill
    from facegate.converters.train.teacher import Targets

    t = np.zeros((2, 4), np.float32)
    cfg = DistillConfig(augment=augment.Augment(fill=0.5), progress=False)
    with pytest.raises(ValueError, match="online teacher"):
        distill(nn.Linear(1, 1), np.zeros((2, SIDE, SIDE, 3), np.uint8), Targets(t, t), cfg)


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="prune")
    add_common_args(p)
    return p.parse_args(["--out", "x.npz", *argv])


def test_fill_borders_takes_a_probability(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse().fill_borders == 0.0
    assert _parse("--fill-borders", "0.7").fill_borders == 0.7
    for bad in ("1.5", "-0.1", "often"):
        with pytest.raises(SystemExit) as exit_:
            _parse("--fill-borders", bad)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("prune: error: argument --fill-borders")


def test_background_images_are_every_third_frame_at_half_size(tmp_path: Path) -> None:
    clip = tmp_path / "street.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(7):
        writer.write(np.full((120, 160, 3), 30 * i, np.uint8))
    writer.release()
    frames = faces.background_images(clip)
    assert len(frames) == 3 and frames[0].shape == (60, 80, 3)
    means = [float(f.mean()) for f in frames]  # frames 0, 3 and 6 (MJPEG shifts levels a little)
    assert np.allclose(means, [0, 90, 180], atol=8), means
    with pytest.raises(FacegateError, match="no background clip"):
        faces.background_images(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(FacegateError, match="no frame"):
        faces.background_images(broken)
