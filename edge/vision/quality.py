"""Face quality: sharpness of the aligned crop and head pose from the five landmarks.

Enrolment refuses blurred photos with :func:`sharpness`; the pipeline decides "unknown" only from
faces that are frontal enough (:func:`head_pose`), sharp enough and large enough.

Head pose, closed form (orthographic camera, roll removed by the eye axis). A generic head is
modelled with the eyes at (±a, 0, 0), the mouth corners in the same plane and the nose tip ``p`` in
front of it. Turning the head by yaw θ moves the nose tip across the face's midline by p·sin θ
while the eyes close in to ±a·cos θ, so with ``D`` the eye distance seen in the image and ``h`` the
nose tip's offset from the midpoint of the eye and mouth centres along the eye axis::

    yaw = atan(h / (D / 2) · a / p)

Nodding by pitch φ moves the nose tip along the face's vertical axis: with ``t`` the nose tip's
height between the eye line (0) and the mouth line (1), and ``t0`` its frontal value::

    pitch = atan((t0 - t) · m / p)       (positive: chin up)

``a / p`` = 1.37 and ``m / p`` = 3.2 come from a generic 3D face (63 mm between the pupils, the
eye-mouth plane ~23 mm behind the nose tip, 73 mm from the eye line to the mouth line: the
ArcFace template's proportions scaled to that eye distance). ``t0`` = 0.59 is measured: the
median nose height of MTCNN's landmarks on the 151 faces of 60 px or more in ../shared/faces
(bbt 0.600, deepface 0.580, face_recognition 0.592; the ArcFace template's own 0.495 sits
higher, so the template is not the frontal reference for MTCNN's points).

Measured with these constants (MTCNN on the ONNX backend): those 151 photo faces have a median
|yaw| of 7.6 deg (95th percentile 32.8, max 50.5) and a median pitch of 0.0 (5th..95th
percentile -22.9..27.3); Lin-Manuel Miranda's profile frames in the Hamilton clip (frames 20-45)
have |yaw| 48.5..74.2 (median 69). The angles are estimates (a real head is no such model;
MTCNN guesses the hidden eye of a profile), good for telling frontal from turned faces, not for
measuring degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

EYE_HALF_OVER_NOSE_DEPTH = 1.37  # a / p: half the pupil distance over the nose tip's protrusion
EYE_MOUTH_OVER_NOSE_DEPTH = 3.2  # m / p: eye line to mouth line over the nose tip's protrusion
FRONTAL_NOSE_HEIGHT = 0.59  # t0: the nose tip between eye line (0) and mouth line (1), frontal

# Faces turned further than these are not frontal enough to embed (nor to call unknown).
# 40 deg of yaw keeps 96% of the photo faces above (with the pitch limit) and none of the 20
# Hamilton profile frames (48.5 deg and more); 35 deg of pitch is the photos' 99th percentile.
MAX_YAW_DEG = 40.0
MAX_PITCH_DEG = 35.0


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in degrees: yaw (positive: the nose towards image right), pitch (chin up)."""

    yaw: float
    pitch: float

    def within(self, max_yaw: float, max_pitch: float) -> bool:
        """Whether the head is turned and nodded by no more than these angles."""
        return abs(self.yaw) <= max_yaw and abs(self.pitch) <= max_pitch


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """What decides whether a face is good enough to call unknown: size, sharpness, pose."""

    size: float  # the shorter side of the detection box, pixels
    sharpness: float  # variance of the Laplacian of the aligned crop
    pose: Pose


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of an RGB crop turned grey: low means blurred."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def head_pose(landmarks: np.ndarray) -> Pose:
    """Yaw and pitch (degrees) of a face from its five landmarks (see the module docstring)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, left_mouth, right_mouth = pts
    across = right_eye - left_eye
    eye_distance = float(np.hypot(*across))
    if not math.isfinite(eye_distance) or eye_distance < 1e-6:
        return Pose(90.0, 90.0)  # collapsed landmarks: treat as fully turned
    u = across / eye_distance  # the eye axis (roll removed)
    v = np.array([-u[1], u[0]])  # the face's vertical axis, pointing down the face
    eyes, mouth = (left_eye + right_eye) / 2, (left_mouth + right_mouth) / 2
    offset = float((nose - (eyes + mouth) / 2) @ u)
    yaw = math.atan(offset / (eye_distance / 2) * EYE_HALF_OVER_NOSE_DEPTH)
    eye_to_mouth = float((mouth - eyes) @ v)
    if eye_to_mouth < 1e-6:
        return Pose(math.degrees(yaw), 90.0)
    height = float((nose - eyes) @ v) / eye_to_mouth
    pitch = math.atan((FRONTAL_NOSE_HEIGHT - height) * EYE_MOUTH_OVER_NOSE_DEPTH)
    return Pose(math.degrees(yaw), math.degrees(pitch))
