"""Presence end to end: `facegate run` over the sample photos, events to a real MQTT broker.

Every photo of a folder is its own track, so the pipeline names obama on one track and says he
left on another (the demo prints `recognized ... track_id 2` and `left ... track_id 6`): his
Home Assistant presence must still go ON, then OFF.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facegate.gallery.enroll import template_from_file
from facegate.gallery.store import GalleryStore
from facegate.sinks.mqtt import default_instance
from facegate.vision.recognizer import Recognizer
from tests.conftest import run_cli
from tests.integration.mosquitto import Mosquitto, mosquitto_binary
from tests.integration.test_sinks import Subscriber, wait_until

HOST = default_instance()  # the instance of a daemon whose config is facegate.toml
CONFIG = """
[camera]
name = "door"
[http]
enabled = false
[snapshots]
enabled = false
"""


@pytest.fixture()
def sample_gallery(recognizer: Recognizer, bundle_dir: Path, tmp_path: Path) -> Path:
    """obama and biden enrolled from one sample photo each, as `facegate demo` does."""
    db = tmp_path / "gallery.db"
    with GalleryStore.open(db, recognizer.model_id, recognizer.embedder.size) as store:
        for name in ("obama", "biden"):
            outcome = template_from_file(recognizer, bundle_dir / "samples" / f"{name}.jpg")
            assert outcome.template is not None, outcome.reason
            store.enroll(name, [outcome.template])
    return db


def run_over_samples(
    state: Path, bundle_dir: Path, gallery: Path, *extra: str
) -> tuple[list[dict], str]:
    """`facegate run` over the sample photos; (events written to JSONL, stderr)."""
    config, out = state / "facegate.toml", state / "events.jsonl"
    config.write_text(CONFIG)
    proc = run_cli(
        "run", "--config", str(config), "--source", str(bundle_dir / "samples"),
        "--gallery", str(gallery), "--backend", "onnxruntime", "--sink", f"jsonl:{out}", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in out.read_text().splitlines()], proc.stderr


def test_a_folder_of_photos_gives_recognized_events_with_one_vote(
    state: Path, bundle_dir: Path, sample_gallery: Path
) -> None:
    events, _ = run_over_samples(state, bundle_dir, sample_gallery)
    named = sorted({e["person"] for e in events if e["event"] == "recognized"})
    assert named == ["biden", "obama"]
    assert sorted(e["person"] for e in events if e["event"] == "left") == ["biden", "obama"]


def test_votes_flag_overrides_the_folder_default(
    state: Path, bundle_dir: Path, sample_gallery: Path
) -> None:
    events, _ = run_over_samples(state, bundle_dir, sample_gallery, "--votes", "3")
    assert [e for e in events if e["event"] == "recognized"] == []  # a photo is one frame


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")
def test_presence_goes_off_when_the_visit_leaves_on_another_track(
    state: Path, bundle_dir: Path, sample_gallery: Path
) -> None:
    with Mosquitto() as broker:
        sub = Subscriber(broker, ("facegate/#",))
        sink = f"mqtt://{broker.host}:{broker.port}"
        events, _ = run_over_samples(state, bundle_dir, sample_gallery, "--sink", sink)
        obama = [e for e in events if e["person"] == "obama"]
        assert [e["event"] for e in obama] == ["recognized", "left"]
        assert obama[0]["track_id"] != obama[1]["track_id"]  # the case that kept it ON
        assert obama[0]["visit_id"] == obama[1]["visit_id"]
        topic = f"facegate/{HOST}/door/person/obama/state"
        wait_until(lambda: sub.last(topic) == "OFF", what="obama's presence OFF")
        assert "ON" in sub.payloads(topic)
        wait_until(
            lambda: sub.last(f"facegate/{HOST}/door/person/biden/state") == "OFF", what="biden"
        )
        sub.close()
