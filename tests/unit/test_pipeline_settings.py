"""The pipeline's settings from the config: folder sources vote once a photo unless told."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate import config as cfg
from facegate.errors import ConfigError
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.vision.planner import PlannerSettings
from facegate.vision.recognizer import Recognizer


def settings(text: str, **overrides: object) -> PipelineSettings:
    return PipelineSettings.from_config(cfg.apply_overrides(cfg.parse(text), **overrides))


def test_a_folder_source_defaults_to_one_vote_and_one_miss(tmp_path: Path) -> None:
    s = settings("", source=str(tmp_path))
    assert (s.stills, s.votes, s.unknown_after) == (True, 1, 1)


def test_votes_the_user_sets_win_over_the_folder_default(tmp_path: Path) -> None:
    assert settings("[recognition]\nvotes = 3\n", source=str(tmp_path)).votes == 3
    assert settings("", source=str(tmp_path), votes=2).votes == 2


def test_video_keeps_three_votes_and_five_misses(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    s = settings("", source=str(clip))
    assert (s.stills, s.votes, s.unknown_after) == (False, 3, 5)


def test_leave_after_s_and_pose_limits_come_from_the_config() -> None:
    text = "[tracker]\nleave_after_s = 12.5\n[recognition]\nmax_yaw = 30\nmax_pitch = 20\n"
    s = settings(text)
    assert (s.leave_after_s, s.max_yaw, s.max_pitch) == (12.5, 30.0, 20.0)
    assert PipelineSettings.from_config(cfg.default()).leave_after_s == 5.0


def test_a_bad_votes_flag_is_one_line_naming_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        settings("", votes=0)
    assert "--votes" in str(info.value) and "\n" not in str(info.value).strip()


def test_detection_planning_comes_from_the_detection_table_and_never_plans_photos(
    tmp_path: Path,
) -> None:
    text = "[detection]\nfull_scan_every = 4\nregion_margin = 0.8\nmin_face = 64\n"
    d = settings(text).detection
    assert (d.enabled, d.full_scan_every, d.region_margin, d.min_face) == (True, 4, 0.8, 64.0)
    assert settings("").detection == PlannerSettings()  # the documented defaults
    assert not settings("[detection]\nenabled = false\n").detection.enabled
    assert not settings(text, source=str(tmp_path)).detection.enabled  # a folder of photos


def test_a_pipeline_builds_its_planner_from_its_settings_and_a_reload(
    recognizer: Recognizer,
) -> None:
    pipe = Pipeline(recognizer, PipelineSettings())
    assert pipe.planner is not None and pipe.planner.settings == PlannerSettings()
    off = PipelineSettings(detection=PlannerSettings(enabled=False))
    assert Pipeline(recognizer, off).planner is None
    assert Pipeline(recognizer, PipelineSettings(stills=True)).planner is None
    pipe.reconfigure(recognizer, off, None)
    assert pipe.planner is None
    other = PipelineSettings(detection=PlannerSettings(full_scan_every=3))
    pipe.reconfigure(recognizer, other, None)
    assert pipe.planner is not None and pipe.planner.settings.full_scan_every == 3


def test_each_camera_can_start_the_pyramid_at_its_own_smallest_face() -> None:
    text = (
        "[detection]\nmin_face = 64\n"
        '[[cameras]]\nname = "door"\nsource = "rtsp://a/1"\nmin_face = 30\n'
        '[[cameras]]\nname = "yard"\nsource = "rtsp://a/2"\n'
    )
    door, yard = cfg.camera_views(cfg.parse(text))
    assert PipelineSettings.from_config(door).detection.min_face == 30.0
    assert PipelineSettings.from_config(yard).detection.min_face == 64.0
