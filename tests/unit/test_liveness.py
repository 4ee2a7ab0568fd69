"""Liveness: ISO/IEC 30107-3 figures, the crop, the rigid-motion cue, track verdicts, the spec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facegate.config import ConfigProblems, parse
from facegate.errors import FacegateError, ModelError
from facegate.evaluate.liveness import pad_report, rates, scan_pad, threshold_for_bpcer
from facegate.vision.liveness import (
    DEFAULT_MODEL,
    LivenessModel,
    LivenessSpec,
    TrackLiveness,
    crop_face,
    load_spec,
    rigid_residual,
    weights_dir,
)

LANDMARKS = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)


def _similarity(points: np.ndarray, angle: float, scale: float, shift: tuple) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return points @ np.array([[c, s], [-s, c]], np.float32) + np.asarray(shift, np.float32)


def test_threshold_for_bpcer_refuses_at_most_the_stated_share_of_real_people() -> None:
    real = np.arange(1, 21) / 100.0  # 0.01 .. 0.20
    t = threshold_for_bpcer(real, 0.05)  # one real presentation in 20 may be refused
    assert rates(real, np.zeros(0), t)[1] == pytest.approx(0.05)
    assert 0.19 < t <= 0.20 + 1e-9
    assert rates(real, np.zeros(0), threshold_for_bpcer(real, 0.0))[1] == 0.0


def test_pad_report_gives_apcer_bpcer_and_acer_per_attack_type() -> None:
    scores = {
        "real": np.array([0.1, 0.2, 0.3, 0.9]),
        "print": np.array([0.95, 0.85, 0.25, 0.99]),
        "screen": np.array([0.1, 0.1]),
    }
    r = pad_report(scores, {"real": 0}, 0.25, ("d", "m", 1.2), threshold=0.5)
    by = {a.kind: a for a in r.attacks}
    assert r.bpcer == 0.25
    assert by["print"].apcer == 0.25 and by["print"].acer == 0.25
    assert by["screen"].apcer == 1.0
    assert r.acer == pytest.approx((1.0 + 0.25) / 2)  # the worst attack type counts
    out = json.loads(json.dumps(r.as_dict()))
    assert out["acer"] == pytest.approx(0.625) and out["frames"] == 1
    assert out["real_scores"]["median"] == pytest.approx(0.25)  # a summary, never per image


def test_scan_pad_needs_a_real_folder(tmp_path: Path) -> None:
    (tmp_path / "print").mkdir()
    with pytest.raises(FacegateError, match="no real/ folder"):
        scan_pad(tmp_path)


def test_crop_face_centres_the_box_with_context() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    image[90:110, 90:110] = 255  # a 20 px square at the centre of a box 40 px wide
    crop = crop_face(image, (80, 80, 120, 120), 2.0, 80)  # 80 px of image at 1 px per px
    assert crop.shape == (80, 80, 3)
    assert crop[30:50, 30:50].min() == 255 and crop[:25].max() == 0


def test_rigid_residual_is_zero_for_a_photo_and_large_for_a_changing_face() -> None:
    moved = _similarity(LANDMARKS, 0.2, 1.1, (5, -3))
    assert rigid_residual(LANDMARKS, moved) < 1e-3
    smiling = moved.copy()
    smiling[3:] += [[-4, 3], [4, 3]]  # mouth corners move against the eyes
    assert rigid_residual(LANDMARKS, smiling) > 0.03
    assert rigid_residual(LANDMARKS / 10, moved / 10) is None  # too small to tell


def test_track_verdict_waits_for_its_frames_then_uses_the_mean_score() -> None:
    track = TrackLiveness()
    for score in (0.9, 0.2):
        track.add(score, LANDMARKS)
        assert track.verdict(3, 0.5, 0.0) is None
    track.add(0.7, LANDMARKS)
    assert track.verdict(3, 0.5, 0.0) is True  # mean 0.6
    live = TrackLiveness()
    for i in range(3):
        live.add(0.1, _similarity(LANDMARKS, 0.05 * i, 1.0, (i, 0)))
    assert live.verdict(3, 0.5, 0.0) is False
    assert live.verdict(3, 0.5, 0.01) is True  # rigid motion throughout: a photo


def test_spec_validation_is_one_clear_error() -> None:
    with pytest.raises(ModelError, match="bad score"):
        LivenessSpec.from_dict({"name": "x", "size": 64, "crop_scale": 9, "threshold": 0.5})
    with pytest.raises(ModelError, match="missing or bad key"):
        LivenessSpec.from_dict({"name": "x"})


def test_a_spec_file_model_loads_scores_and_refuses_a_modified_file(tmp_path: Path) -> None:
    spec, path = load_spec(str(weights_dir() / f"{DEFAULT_MODEL}.json"))
    assert path.parent == weights_dir() and 0 < spec.threshold < 1
    with pytest.raises(ModelError, match=r"is a \.json file"):
        load_spec(DEFAULT_MODEL)  # a model name means the bundle's stage, not a side-loaded file
    model = LivenessModel.open(path, spec)
    batch = np.random.default_rng(0).uniform(0, 1, (3, spec.size, spec.size, 3))
    scores = model.score_crops(batch.astype(np.float32))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    with copy.open("r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(ModelError, match="sha256"):
        LivenessModel.open(copy, spec)


def test_liveness_table_defaults_off_and_checks_its_keys() -> None:
    assert parse("").liveness.enabled is False
    on = parse("[liveness]\nenabled = true\nframes = 5\nthreshold = 0.3\n").liveness
    assert (on.enabled, on.frames, on.threshold) == (True, 5, 0.3)
    with pytest.raises(ConfigProblems, match="frames"):
        parse("[liveness]\nframes = 0\n")


def test_assemble_builds_the_gate_only_when_enabled_with_the_models_threshold(
    state: Path, bundle_dir: Path
) -> None:
    from facegate.service import assemble

    assert assemble.liveness(parse("")) is None
    gate = assemble.liveness(parse("[liveness]\nenabled = true\n"))
    spec, _ = load_spec(str(weights_dir() / f"{DEFAULT_MODEL}.json"))
    assert gate is not None
    assert gate.model.backend.path.parent == bundle_dir.resolve()  # the bundle's stage
    spec_file = weights_dir() / f"{DEFAULT_MODEL}.json"  # a model of one's own: the spec file's
    own = assemble.liveness(parse(f'[liveness]\nenabled = true\nmodel = "{spec_file}"\n'))
    assert own is not None and own.model.backend.path.parent == weights_dir()
    assert (gate.settings.frames, gate.settings.threshold) == (3, spec.threshold)
    tuned = assemble.liveness(parse("[liveness]\nenabled = true\nframes = 5\nthreshold = 0.4\n"))
    assert (tuned.settings.frames, tuned.settings.threshold) == (5, 0.4)
