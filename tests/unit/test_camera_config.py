"""[[cameras]] in the config, the round-robin worker, per-camera metrics, reload pairing."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from facegate import config as cfg
from facegate.config.fields import Problems, build, opt
from facegate.errors import CameraError, ConfigError
from facegate.service.cameras import CameraRunner, RoundRobin
from facegate.service.capture import Capture
from facegate.service.daemon import pair_cameras
from facegate.service.health import render_metrics
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.service.prom import collect
from facegate.sources.base import FrameSource
from facegate.types import Frame

TWO = """
[[cameras]]
name = "door"
source = "rtsp://cam1/stream"
max_fps = 5

[[cameras]]
name = "yard"
source = "0"
detect_every = 2
"""


def test_cameras_tables_give_one_view_per_camera() -> None:
    config = cfg.parse(TWO)
    assert [c.name for c in cfg.camera_list(config)] == ["door", "yard"]
    views = cfg.camera_views(config)
    assert [(v.camera.name, v.camera.max_fps, v.camera.detect_every) for v in views] == [
        ("door", 5.0, 1),
        ("yard", None, 2),
    ]
    assert all(v.cameras == () and v.models == config.models for v in views)


def test_one_camera_table_is_todays_config() -> None:
    config = cfg.parse('[camera]\nname = "hall"\nsource = "0"\n')
    assert cfg.camera_views(config) == (config,)
    assert [c.name for c in cfg.camera_list(config)] == ["hall"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[camera]\nsource = "0"\n' + TWO,
            "site.toml:1: camera: give one [camera] table or [[cameras]]",
        ),
        (TWO.replace('"yard"', '"door"'), "cameras[1].name: 'door' is already cameras[0]'s name"),
        (TWO.replace('"yard"', '"Front Door"'), "cameras[1].name: must be lowercase letters"),
        ("cameras = []\n", "cameras: expected one or more tables"),
        (TWO.replace("max_fps = 5", "max_fps = 0"), "cameras[0].max_fps: must be > 0"),
        (TWO.replace("detect_every = 2", "colour = 2"), "cameras[1].colour: unknown key"),
    ],
)
def test_bad_cameras_tables_are_one_located_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg.parse(text, "site.toml")
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert lines[0].startswith("site.toml:")


def test_command_line_flags_with_cameras() -> None:
    config = cfg.apply_overrides(cfg.parse(TWO), max_fps=2.0, realtime=True, votes=4)
    assert [(c.max_fps, c.realtime) for c in config.cameras] == [(2.0, True), (2.0, True)]
    assert config.recognition.votes == 4
    with pytest.raises(ConfigError, match=r"--source: the config has \[\[cameras\]\]"):
        cfg.apply_overrides(cfg.parse(TWO), source="1")
    single = cfg.apply_overrides(cfg.default(), source="0", camera="hall")
    assert single.camera.name == "hall" and single.cameras == ()


def test_explain_lists_the_cameras_keys() -> None:
    keys = [row[0] for row in cfg.explain()]
    assert {"cameras[].name", "cameras[].source", "cameras[].max_fps"} <= set(keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    """A sub-table, as [cameras.detection] would be."""

    every: int = opt(1, "every Nth", ">=1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outer:
    """A table holding a sub-table."""

    name: str = opt("x", "a name", "slug")
    inner: Inner | None = field(default=None)


def test_a_sub_table_is_built_as_its_own_dataclass() -> None:
    """Room for per-camera sub-tables such as [cameras.detection]: nested dataclasses build."""
    problems = Problems("t.toml")
    assert build(Outer, {"inner": {"every": 3}}, ("cam",), problems) == Outer(inner=Inner(every=3))
    build(Outer, {"inner": {"every": 0}}, ("cam",), problems)
    assert [p.key for p in problems.found] == ["cam.inner.every"]


# ---- the round robin ---------------------------------------------------------------------


class _Clip(FrameSource):
    """A finite source of ``count`` small frames (a stand-in for a video file)."""

    finite = True

    def __init__(self, name: str, count: int) -> None:
        self.name, self.count, self.index = name, count, 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.index >= self.count:
            return None
        self.index += 1
        return Frame(np.zeros((32, 32, 3), np.uint8), float(self.index), self.index, self.name)

    def close(self) -> None:
        pass


def _runner(name: str, capture: Capture, recognizer) -> CameraRunner:
    view = cfg.parse(f'[camera]\nname = "{name}"\n')
    metrics = Metrics()
    pipe = Pipeline(recognizer, PipelineSettings(camera=name), metrics=metrics)
    return CameraRunner(view, capture, pipe, metrics)


def _drain(rota: RoundRobin, deadline_s: float = 30.0) -> list[list[str]]:
    """Run turns until every camera ended; the camera names served in each turn."""
    turns, deadline = [], time.monotonic() + deadline_s
    while not rota.done:
        assert time.monotonic() < deadline, "the round robin never finished"
        served = []
        for runner, frame in rota.turn():
            if frame is None:
                runner.ended = True
            else:
                served.append(runner.name)
        if served:
            turns.append(served)
        else:
            rota.wait(0.5)
    return turns


def test_round_robin_serves_each_camera_once_per_turn(recognizer) -> None:
    counts = {"a": 30, "b": 5, "c": 12}
    runners = [
        _runner(n, Capture(lambda n=n, k=k: _Clip(n, k), name=n), recognizer)
        for n, k in counts.items()
    ]
    rota = RoundRobin(runners)
    for runner in runners:
        runner.start_capture(runner.capture, rota.ring)
    deadline = time.monotonic() + 30
    while any(len(r.capture.queue) < 2 for r in runners):  # each file fills its queue of two
        assert time.monotonic() < deadline, "the captures never filled their queues"
        rota.wait(0.1)
    first = [r.name for r, _ in rota.turn()]
    second = [r.name for r, _ in rota.turn()]
    assert (first, second) == (["a", "b", "c"], ["b", "c", "a"])  # the first served rotates
    turns = [first, second, *_drain(rota)]
    assert all(len(turn) == len(set(turn)) for turn in turns)  # one frame per camera per turn
    assert Counter(name for turn in turns for name in turn) == counts  # nothing lost or starved


class _Dead(FrameSource):
    """A camera that is gone: every open fails."""

    finite = False
    name = "dead"

    def open(self) -> None:
        raise CameraError("dead: no such device")

    def read(self) -> Frame | None:
        raise AssertionError("never opened")

    def close(self) -> None:
        pass


def test_a_dead_camera_does_not_hold_up_the_others(recognizer) -> None:
    dead = Capture(_Dead, name="dead", backoff_initial=0.01, backoff_max=0.05)
    runners = [
        _runner("live", Capture(lambda: _Clip("live", 20), name="live"), recognizer),
        _runner("dead", dead, recognizer),
    ]
    rota = RoundRobin(runners)
    for runner in runners:
        runner.start_capture(runner.capture, rota.ring)
    served: list[str] = []
    deadline = time.monotonic() + 30
    while not runners[0].ended:
        assert time.monotonic() < deadline
        for runner, frame in rota.turn():
            if frame is None:
                runner.ended = True
            else:
                served.append(runner.name)
        rota.wait(0.5)
    dead.stop()
    assert served == ["live"] * 20
    assert runners[1].health(time.time())["status"] == "down"
    assert "no such device" in runners[1].health(time.time())["last_error"]


# ---- metrics ---------------------------------------------------------------------------


def test_camera_metrics_add_to_the_totals_and_render_with_labels(recognizer) -> None:
    totals = Metrics()
    runners = []
    for name in ("door", "yard"):
        runner = _runner(name, Capture(lambda n=name: _Clip(n, 1), name=name), recognizer)
        runner.metrics = Metrics(parent=totals)
        runners.append(runner)
    runners[0].metrics.inc("faces", 2)
    runners[1].metrics.inc("faces", 3)
    runners[0].metrics.inc("events_recognized")
    runners[1].metrics.add_stage("detect", 0.02)
    runners[0].metrics.frame_done()
    assert totals.counters["faces"] == 5 and totals.counters["frames_processed"] == 1
    text = render_metrics(collect(totals, None, [], runners))
    assert "facegate_faces_total 5" in text
    assert 'facegate_camera_faces_total{camera="door"} 2' in text
    assert 'facegate_camera_faces_total{camera="yard"} 3' in text
    assert 'facegate_camera_events_total{camera="door",kind="recognized"} 1' in text
    assert 'facegate_camera_stage_latency_ms{camera="yard",stage="detect"} 20' in text
    assert 'facegate_camera_up{camera="door"} 0' in text  # never started


# ---- reload ----------------------------------------------------------------------------


def test_reload_pairs_cameras_by_name_and_refuses_a_changed_set(recognizer) -> None:
    config = cfg.parse(TWO)
    runners = [
        _runner(v.camera.name, Capture(lambda: _Clip("x", 1)), recognizer)
        for v in cfg.camera_views(config)
    ]
    swapped = cfg.parse(TWO.replace("door", "tmp").replace("yard", "door").replace("tmp", "yard"))
    pairs = pair_cameras(runners, cfg.camera_views(swapped))
    assert [(r.name, v.camera.name) for r, v in pairs] == [("door", "door"), ("yard", "yard")]
    with pytest.raises(ConfigError, match=r"added porch; removed yard\): restart the service"):
        pair_cameras(runners, cfg.camera_views(cfg.parse(TWO.replace("yard", "porch"))))
    one = [_runner("hall", Capture(lambda: _Clip("x", 1)), recognizer)]
    renamed = cfg.camera_views(cfg.parse('[camera]\nname = "lobby"\n'))
    assert pair_cameras(one, renamed)[0][1].camera.name == "lobby"  # one camera: a rename


def test_check_config_summarises_each_camera(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    path = tmp_path / "site.toml"
    path.write_text(TWO.replace('"0"', '"rtsp://u:pw@cam2/s"') + "[http]\nenabled = false\n")
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "camera door: rtsp://cam1/stream, at most 5 fps" in proc.stdout
    assert "camera yard: rtsp://***@cam2/s" in proc.stdout and "pw" not in proc.stdout


def test_check_config_warns_of_an_absent_file_among_several(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    path = tmp_path / "site.toml"
    missing = tmp_path / "gone.mp4"
    path.write_text(TWO.replace('"0"', f'"{missing}"') + "[http]\nenabled = false\n")
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "warning: camera yard: no such file" in proc.stderr
    assert "retried until it appears" in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(TWO.replace('"0"', '"nonsense"') + "[http]\nenabled = false\n")
    proc = run_cli("check-config", str(bad))
    assert proc.returncode == 1 and "camera yard: unknown source" in proc.stderr
