"""Liveness end to end: NUAA's printed photos of an enrolled person never open the gate.

NUAA's data is for research use only, so none of it ships in tests/data: these tests need
../shared/liveness/nuaa and skip without it. Subject s0012 is one of the subjects the shipped
model never saw in training (docs/liveness.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.gallery.enroll import template_from_file
from facegate.gallery.store import GalleryStore
from facegate.service.liveness import LivenessGate, LivenessSettings
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Event, Frame
from facegate.vision.image import load_image
from facegate.vision.liveness import LivenessModel
from facegate.vision.recognizer import Recognizer
from tests.conftest import run_cli
from tests.data import data, shared

SUBJECT = "s0012"  # a held-out subject: in neither the model's training nor its threshold choice
FPS = 10.0
FRAME_SIDE = 240


def _frames(paths: list[Path]) -> list[Frame]:
    """NUAA's crops of one sitting, in order, as frames of one video."""
    frames = []
    for i, path in enumerate(paths):
        image = cv2.resize(load_image(path), (FRAME_SIDE, FRAME_SIDE))
        frames.append(Frame(np.ascontiguousarray(image), i / FPS, i, "nuaa"))
    return frames


def _play(rec: Recognizer, frames: list[Frame], gate: LivenessGate | None) -> list[Event]:
    pipe = Pipeline(rec, PipelineSettings(camera="door"), liveness=gate)
    events = [e for f in frames for e in pipe.process(f)]
    return events + pipe.finish(frames[-1].timestamp + 1)


@pytest.fixture()
def enrolled(recognizer: Recognizer, tmp_path: Path) -> Recognizer:
    real = sorted(shared(f"liveness/nuaa/real/{SUBJECT}").iterdir())[::6]
    with GalleryStore.open(tmp_path / "g.db", recognizer.model_id, recognizer.embedder.size) as g:
        templates = [
            t for p in real if (t := template_from_file(recognizer, p).template) is not None
        ]
        assert templates
        g.enroll(SUBJECT, templates)
        recognizer.set_gallery(g.snapshot())
    yield recognizer
    recognizer.set_gallery(None)


@pytest.fixture()
def gate(liveness_model: LivenessModel) -> LivenessGate:
    """A fresh gate on the bundle's liveness stage at its shipped threshold."""
    return LivenessGate(liveness_model, LivenessSettings(threshold=liveness_model.spec.threshold))


def test_printed_photos_of_an_enrolled_person_give_spoof_and_never_recognized(
    enrolled: Recognizer, gate: LivenessGate
) -> None:
    frames = _frames(sorted(shared(f"liveness/nuaa/print_attack/{SUBJECT}").iterdir()))
    without = _play(enrolled, frames, None)
    assert SUBJECT in [e.person for e in without if e.kind == "recognized"]  # the photo fools it
    events = _play(enrolled, frames, gate)
    assert [e for e in events if e.kind == "recognized"] == []
    spoofs = [e for e in events if e.kind == "spoof"]
    assert spoofs and all(e.camera == "door" for e in spoofs)


def test_the_live_person_is_still_recognized_with_liveness_on(
    enrolled: Recognizer, gate: LivenessGate
) -> None:
    frames = _frames(sorted(shared(f"liveness/nuaa/real/{SUBJECT}").iterdir()))
    events = _play(enrolled, frames, gate)
    assert SUBJECT in [e.person for e in events if e.kind == "recognized"]
    assert [e for e in events if e.kind == "spoof"] == []


def test_eval_liveness_prints_the_table_and_writes_json_and_plot(tmp_path: Path) -> None:
    nuaa = shared("liveness/nuaa")
    for kind in ("real", "print_attack"):
        (tmp_path / "set" / kind).mkdir(parents=True)
        for p in sorted((nuaa / kind / SUBJECT).iterdir())[::4]:
            (tmp_path / "set" / kind / p.name).symlink_to(p)
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    res = run_cli("eval-liveness", str(tmp_path / "set"), "--json", str(out), "--plot", str(plot))
    assert res.returncode == 0, res.stderr
    assert "APCER" in res.stdout and "print_attack" in res.stdout
    report = json.loads(out.read_text())
    assert report["bpcer"] <= 0.05 and report["attacks"][0]["kind"] == "print_attack"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_liveness_command_judges_a_real_photo_live_and_rejects_a_bad_dir(tmp_path: Path) -> None:
    photo = next(p for p in sorted(data("faces").rglob("*.jpg")))
    res = run_cli("liveness", str(photo), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["faces"]
    bad = run_cli("eval-liveness", str(tmp_path))
    assert bad.returncode == 1 and bad.stderr.startswith("facegate: error:")
    assert "Traceback" not in bad.stderr


def test_identify_liveness_withholds_the_name_of_a_printed_photo(tmp_path: Path) -> None:
    attack = sorted(shared(f"liveness/nuaa/print_attack/{SUBJECT}").iterdir())[0]
    photo = data("faces/face_recognition/obama/obama.jpg")
    res = run_cli("identify", str(photo), str(attack), "--liveness", "--json",
                  "--gallery", str(tmp_path / "none.db"))
    assert res.returncode == 0, res.stderr
    (real,), (fake,) = (it["faces"][:1] for it in json.loads(res.stdout))
    assert real["live"] is True and 0 <= real["attack_score"] < 1
    assert fake["live"] is False and fake["name"] is None
