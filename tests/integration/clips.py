"""Playing a clip through an in-process pipeline, frame by frame, as the daemon would."""

from __future__ import annotations

from pathlib import Path

import cv2

from facegate.service.pipeline import Pipeline
from facegate.types import Event, Frame


def play_clip(pipe: Pipeline, clip: Path, camera: str = "test") -> list[Event]:
    """Every event ``pipe`` gives on ``clip`` (frame times from its frame rate), then its end."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    events, index = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index / fps, index, camera)
        events.extend(pipe.process(frame))
        index += 1
    cap.release()
    return events + pipe.finish(index / fps)
