"""What YuNet's five landmarks say about head pose, in quantities a flat photo cannot change.

The nose tip is written in the affine frame the face spans: origin at the eyes' midpoint E,
first axis the eye-to-eye vector (right eye to left eye), second axis E to the mouth
corners' midpoint M:

    nose = E + yaw * (left_eye - right_eye) + pitch * (M - E)

An affine map (any move, turn, tilt or zoom of a flat picture; a perspective view of it
to within about 0.01) maps every landmark and the frame alike, so a photo's `yaw`/`pitch`
never change. A real head is not flat: the nose tip stands about half an eye distance in
front of the eyes and mouth. With an average head (tests/face/face_scenes.HEAD_MODEL),
turning by 10/15/20/30 degrees moves `yaw` by 0.08/0.12/0.16/0.25, and nodding by 10/15/20
degrees moves `pitch` by 0.07/0.10/0.14. A frontal face has yaw near 0 and pitch near
0.55-0.6 (0.45-0.64 on the test photos).
"""
from __future__ import annotations

import math

import numpy as np

from kiosk.face.detect import LEFT_EYE, LEFT_MOUTH, NOSE_TIP, RIGHT_EYE, RIGHT_MOUTH


def nose_coordinates(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch): the nose tip in the face's own affine frame (see the module docstring)."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes = (p[RIGHT_EYE] + p[LEFT_EYE]) / 2
    mouth = (p[RIGHT_MOUTH] + p[LEFT_MOUTH]) / 2
    basis = np.column_stack([p[LEFT_EYE] - p[RIGHT_EYE], mouth - eyes])
    if abs(np.linalg.det(basis)) < 1e-6:
        return 0.0, 0.0
    yaw, pitch = np.linalg.solve(basis, p[NOSE_TIP] - eyes)
    return float(yaw), float(pitch)


def roll_degrees(landmarks: np.ndarray) -> float:
    """Angle of the eye line from horizontal (head tilted towards a shoulder)."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    dx, dy = p[LEFT_EYE] - p[RIGHT_EYE]
    return math.degrees(math.atan2(dy, dx))


def inter_ocular(landmarks: np.ndarray) -> float:
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    return float(np.linalg.norm(p[LEFT_EYE] - p[RIGHT_EYE]))
