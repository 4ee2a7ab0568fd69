"""Enrolment: turn photos into gallery templates, refusing poor ones with a reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.errors import ImageError
from facegate.gallery.store import Template
from facegate.text import display_path
from facegate.types import Face
from facegate.vision.image import load_image
from facegate.vision.quality import sharpness
from facegate.vision.recognizer import Recognizer

log = logging.getLogger(__name__)

MIN_ENROL_FACE_PX = 40  # the detector's default min face; smaller faces embed poorly
# Variance of the Laplacian of the aligned 112x112 grey crop. Measured on the 123 labelled
# photos of ../shared/faces: sharp photos 187 minimum (5th percentile 606, median 1406); the same
# photos blurred with a Gaussian of sigma = 2, 3, 5 px per 500 px of image side: median 86, 37,
# 14. 100 accepts every real photo with a margin of ~2x and refuses most visibly blurred ones.
MIN_SHARPNESS = 100.0


@dataclass(frozen=True, slots=True)
class EnrolOutcome:
    """What became of one photo: a template, or the reason it was refused."""

    source: str
    template: Template | None
    reason: str | None = None


def _pick(faces: list[Face], largest: bool) -> tuple[Face | None, str | None]:
    if not faces:
        return None, "no face found"
    if len(faces) > 1 and not largest:
        return None, f"{len(faces)} faces found (use --largest to take the largest)"
    face = max(faces, key=lambda f: f.width * f.height)
    if face.size < MIN_ENROL_FACE_PX:
        return None, f"face too small ({face.size:.0f} px < {MIN_ENROL_FACE_PX} px)"
    return face, None


def template_from_image(
    rec: Recognizer, image: np.ndarray, source: str, largest: bool = False
) -> EnrolOutcome:
    """Detect one face in ``image`` and make its template, or say why not."""
    face, reason = _pick(rec.detect(image), largest)
    if face is None:
        return EnrolOutcome(source, None, reason)
    aligned, emb = rec.embed(image, [face])
    sharp = sharpness(aligned[0].crop)
    if sharp < MIN_SHARPNESS:
        return EnrolOutcome(
            source, None, f"too blurry (sharpness {sharp:.0f} < {MIN_SHARPNESS:.0f})"
        )
    return EnrolOutcome(source, Template(emb[0], aligned[0].crop, source))


def template_from_file(rec: Recognizer, path: Path, largest: bool = False) -> EnrolOutcome:
    """Like :func:`template_from_image` for a file; unreadable files are refused, not raised."""
    source = display_path(path)  # stored and printed: undecodable bytes escaped
    try:
        image = load_image(path)
    except ImageError as err:
        return EnrolOutcome(source, None, str(err).removeprefix(f"{source}: "))
    return template_from_image(rec, image, source, largest)
