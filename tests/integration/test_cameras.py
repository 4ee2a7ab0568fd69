"""Several cameras in one `facegate run`: events, /metrics and /health per camera, a lost camera.

One config, four cameras on four clips (the Hamilton clip three times and the street clip; in a
bare clone, without ../shared, the Hamilton clip a fourth time) and a fifth camera whose file is
missing at start. The four give their events, each under its own name, while the fifth retries;
when its file appears it streams and recognizes too.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.data import SHARED
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import free_port
from tests.integration.test_daemon import ENROLLED, HAMILTON, STREET, _clip, _enrol, _get

DEADLINE_S = 900.0  # waits end as soon as their condition holds; this only catches a hang
HAMILTON_CAMERAS = ("door1", "door2", "door3")
PERSON = "lin_manuel_miranda"


def _fourth_clip() -> tuple[str, Path]:
    """The street clip (../shared), or in a bare clone the Hamilton clip once more."""
    street = SHARED / "video" / STREET.name
    return ("street", street) if street.is_file() else ("door4", _clip(HAMILTON))


def _config(state: Path, cameras: dict[str, Path], port: int) -> Path:
    tables = "".join(
        f'[[cameras]]\nname = "{name}"\nsource = "{clip}"\n\n' for name, clip in cameras.items()
    )
    path = state / "cameras.toml"
    path.write_text(
        f"{tables}[http]\nport = {port}\n\n[snapshots]\nenabled = false\n\n"
        f'[[sinks]]\ntype = "jsonl"\npath = "{state / "events.jsonl"}"\n'
    )
    return path


def _health(port: int) -> dict:
    import json

    code, body = _get(f"http://127.0.0.1:{port}/health")
    return json.loads(body) if code in (200, 503) else {}


def _metrics(port: int) -> dict[str, float]:
    from benchmarks.soak import parse_metrics

    code, text = _get(f"http://127.0.0.1:{port}/metrics")
    return parse_metrics(text) if code == 200 else {}


def _per_camera(events: list[dict], kind: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for event in events:
        if event["event"] == kind:
            out.setdefault(event["camera"], []).append(event.get("person"))
    return out


def _ended(port: int, names: list[str]) -> bool:
    """Each camera's file ended, and the frames still queued then went through the pipeline."""
    cameras, metrics = _health(port).get("cameras", {}), _metrics(port)
    return all(
        cameras.get(name, {}).get("source") == "ended"
        and metrics.get(f'facegate_camera_frames_processed_total{{camera="{name}"}}')
        == metrics.get(f'facegate_camera_frames_captured_total{{camera="{name}"}}')
        for name in names
    )


def test_four_cameras_and_one_missing_in_one_daemon(state: Path, faces_dir: Path) -> None:
    _enrol(state, faces_dir, *ENROLLED)
    fourth, fourth_clip = _fourth_clip()
    late = state / "late.mp4"  # absent at start: that camera retries, the others run
    cameras = {name: _clip(HAMILTON) for name in HAMILTON_CAMERAS}
    cameras |= {fourth: fourth_clip, "late": late}
    port = free_port()
    with DaemonProcess(state, "--config", str(_config(state, cameras, port))) as daemon:
        clips = [*HAMILTON_CAMERAS, fourth]
        daemon.wait_for(lambda: _ended(port, clips), DEADLINE_S, "the four clips to end")
        health, metrics = _health(port), _metrics(port)
        shutil.copy(_clip(HAMILTON), state / "copying.mp4")
        os.replace(state / "copying.mp4", late)  # the lost camera comes back, whole
        # every source has ended then: the daemon exits by itself
        assert daemon.wait(DEADLINE_S) == 0, daemon.log()[-3000:]
    events = daemon.events()
    recognized = _per_camera(events, "recognized")
    hamilton = [*HAMILTON_CAMERAS, "late"] + ([fourth] if fourth == "door4" else [])
    assert {name: recognized.get(name) for name in hamilton} == {n: [PERSON] for n in hamilton}
    assert fourth == "door4" or fourth not in recognized, recognized  # no false names
    assert set(_per_camera(events, "left")) >= set(hamilton)

    assert health["status"] == "degraded"  # the late camera is down, the clips have ended
    late_health = health["cameras"]["late"]
    assert late_health["status"] == "down" and late_health["source"] in ("backoff", "connecting")
    assert "no such" in late_health["last_error"]
    for name in clips:
        assert health["cameras"][name]["source"] == "ended"
        assert health["cameras"][name]["frames"] > 0
    assert set(health["cameras"]) == set(cameras)

    for name in HAMILTON_CAMERAS:
        assert metrics[f'facegate_camera_frames_processed_total{{camera="{name}"}}'] == 275
        assert metrics[f'facegate_camera_events_total{{camera="{name}",kind="recognized"}}'] == 1
        assert metrics[f'facegate_camera_faces_total{{camera="{name}"}}'] > 0
        assert f'facegate_camera_stage_latency_ms{{camera="{name}",stage="detect"}}' in metrics
    assert metrics[f'facegate_camera_events_total{{camera="{fourth}",kind="recognized"}}'] == (
        1 if fourth == "door4" else 0
    )
    assert metrics['facegate_camera_up{camera="late"}'] == 0
    assert metrics["facegate_frames_processed_total"] == sum(
        metrics[f'facegate_camera_frames_processed_total{{camera="{name}"}}'] for name in cameras
    )
    log = daemon.log()
    assert "late.mp4 is absent: retried until it appears" in log
    assert "Traceback" not in log


def _reload_config(
    path: Path, state: Path, port: int, names: list[str], fps: str, sink: str
) -> None:
    tables = "".join(
        f'[[cameras]]\nname = "{name}"\nsource = "{_clip(HAMILTON)}"\nrealtime = true\n{fps}\n'
        for name in names
    )
    path.write_text(
        f"{tables}[http]\nport = {port}\n\n[snapshots]\nenabled = false\n\n"
        f'[[sinks]]\ntype = "jsonl"\npath = "{state / sink}"\n'
    )


def test_sighup_reloads_each_camera_and_refuses_a_new_one(state: Path, faces_dir: Path) -> None:
    _enrol(state, faces_dir, PERSON)
    path, port = state / "cameras.toml", free_port()
    _reload_config(path, state, port, ["a", "b"], "", "events.jsonl")
    with DaemonProcess(state, "--config", str(path)) as daemon:
        daemon.wait_for(lambda: _health(port).get("status") == "ok", DEADLINE_S, "both streaming")
        _reload_config(path, state, port, ["a", "b", "c"], "", "events.jsonl")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda: "added c): restart the service" in daemon.log(), 60, "refusal")
        # the cameras in another order, each with a new max_fps, and a new sink file
        _reload_config(path, state, port, ["b", "a"], "max_fps = 15", "after.jsonl")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(
            lambda: "configuration reloaded: source, sinks changed" in daemon.log(),
            DEADLINE_S,
            "the reload",
        )
        assert set(_health(port)["cameras"]) == {"a", "b"}
        assert daemon.wait(DEADLINE_S) == 0, daemon.log()[-3000:]
    events = daemon.events() + daemon.events(state / "after.jsonl")
    assert _per_camera(events, "recognized") == {"a": [PERSON], "b": [PERSON]}
    assert sorted(_per_camera(daemon.events(state / "after.jsonl"), "left")) == ["a", "b"]
    assert "Traceback" not in daemon.log()


def _processed(port: int, name: str) -> float:
    return _metrics(port).get(f'facegate_camera_frames_processed_total{{camera="{name}"}}', 0.0)


def test_an_rtsp_camera_that_dies_does_not_stop_the_other(state: Path, faces_dir: Path) -> None:
    """Two live RTSP cameras; one loses power mid-stream: the other streams and recognizes on."""
    from tests.integration.rtsp_server import RtspServer

    _enrol(state, faces_dir, PERSON)
    port = free_port()
    with RtspServer(_clip(HAMILTON)) as front, RtspServer(_clip(HAMILTON)) as back:
        config = _config(state, {"front": front.url, "back": back.url}, port)
        with DaemonProcess(state, "--config", str(config)) as daemon:
            daemon.wait_for(
                lambda: min(_processed(port, "front"), _processed(port, "back")) > 0,
                DEADLINE_S,
                "frames from both cameras",
            )
            back.kill()  # a camera losing power
            daemon.wait_for(
                lambda: _health(port)["cameras"]["back"]["status"] == "down",
                DEADLINE_S,
                "the lost camera to show as down",
            )
            health, since = _health(port), _processed(port, "front")
            daemon.wait_for(
                lambda: _processed(port, "front") > since + 30, DEADLINE_S, "front going on"
            )
            daemon.wait_for(
                lambda: "front" in _per_camera(daemon.events(), "recognized"),
                DEADLINE_S,
                "front's recognition",
            )
            assert _health(port)["cameras"]["back"]["status"] == "down"
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(60) == 0, daemon.log()[-3000:]
    assert health["status"] == "degraded" and health["cameras"]["front"]["status"] == "ok"
    assert health["cameras"]["back"]["source"] in ("backoff", "connecting", "streaming")
    assert "Traceback" not in daemon.log()
