"""Is this frame good enough to compare with the card photo? If not, what should the citizen do?

One check at a time, in the order a person can act on: find a face, only one, the right
size, in the middle, looking straight, in usable light, held still. The first failure
becomes a hint KEY (the words live in config/texts.toml), so the screen and the voice
say one clear thing instead of a list.

Sharpness and lighting are measured on the face alone, scaled to a fixed width, so the
same thresholds hold for a face near or far and for a bright or dark background.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from kiosk.face.detect import Face
from kiosk.face.geometry import nose_coordinates, roll_degrees

HINT_NO_FACE = "face.hint.no_face"
HINT_ONE_PERSON = "face.hint.one_person"
HINT_CLOSER = "face.hint.closer"
HINT_FARTHER = "face.hint.farther"
HINT_CENTRE = "face.hint.centre"
HINT_FRONTAL = "face.hint.frontal"
HINT_STILL = "face.hint.still"
HINT_LIGHT = "face.hint.light"
HINT_KEYS = (HINT_NO_FACE, HINT_ONE_PERSON, HINT_CLOSER, HINT_FARTHER, HINT_CENTRE, HINT_FRONTAL,
             HINT_STILL, HINT_LIGHT)

PATCH_WIDTH = 128  # the face is scaled to this width before sharpness and light are measured


@dataclass(frozen=True)
class QualityThresholds:
    """Limits for a usable frame; defaults measured on 640x480 frames of the test photos."""

    # Another face at least this fraction of the main face's width means someone stands
    # beside the citizen (one_person); smaller faces far behind are passers-by and ignored.
    other_face_ratio: float = 0.5
    # Face box width as a fraction of the frame width. 0.18 of 640 px is an eye distance of
    # about 50 px, below which SFace's scores drop; above 0.65 the chin or forehead is cut.
    min_face_width: float = 0.18
    max_face_width: float = 0.65
    # Face centre distance from the frame centre, as a fraction of the frame's width
    # (horizontal) and height (vertical); and how much of the box may lie outside the frame.
    max_offset_x: float = 0.22
    max_offset_y: float = 0.28
    max_outside: float = 0.08
    # Pose from the landmarks (kiosk.face.geometry): |yaw| 0.2 is about 30 degrees of head
    # turn (two test photos turned slightly give 0.16-0.18); frontal pitch is about 0.57
    # (0.45-0.64 on the test photos); roll in degrees.
    max_yaw: float = 0.2
    min_pitch: float = 0.42
    max_pitch: float = 0.72
    max_roll_degrees: float = 20.0
    # Face brightness (mean grey 0-255 of the face patch) and contrast (its standard deviation).
    min_brightness: float = 55.0
    max_brightness: float = 215.0
    min_contrast: float = 16.0
    # Backlight: the face much darker than the whole frame (a window behind the citizen).
    min_face_to_frame_brightness: float = 0.5
    # Variance of the Laplacian of the face patch (PATCH_WIDTH wide, see `sharpness`). Faces
    # of the test photos in 640x480 frames give 280-690, softened like a webcam 140-600; a
    # Gaussian blur of 3 px on a face 130 px wide gives 23-47, of 4 px 16-30.
    min_sharpness: float = 40.0


@dataclass(frozen=True)
class QualityResult:
    """The verdict on one frame: ok, or the one hint that would fix it, plus what was measured."""

    ok: bool
    hint: str | None
    face: Face | None
    measures: dict[str, float] = field(default_factory=dict)


def face_patch(image: np.ndarray, face: Face, width: int = PATCH_WIDTH, colour: bool = False) -> np.ndarray:
    """The face box cut from the image (clipped to it) and scaled to `width` pixels wide.
    Grey unless `colour`. Empty (0x0) if the box lies outside the image."""
    height_img, width_img = image.shape[:2]
    x, y, w, h = face.box
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width_img, round(x + w)), min(height_img, round(y + h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.zeros((0, 0) if not colour else (0, 0, 3), np.uint8)
    crop = image[y0:y1, x0:x1]
    if not colour and crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    out_h = max(4, round(width * (y1 - y0) / (x1 - x0)))
    interpolation = cv2.INTER_AREA if (x1 - x0) > width else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, out_h), interpolation=interpolation)


def sharpness(patch: np.ndarray) -> float:
    """Variance of the Laplacian: edges and fine texture; blur (motion, focus) lowers it.

    The patch is smoothed a little first (Gaussian, sigma 1 px) so that sensor noise, which
    the Laplacian would amplify, does not pass for detail."""
    if patch.size == 0:
        return 0.0
    smoothed = cv2.GaussianBlur(patch, (0, 0), 1.0)
    return float(cv2.Laplacian(smoothed, cv2.CV_64F, ksize=3).var())


def significant_faces(faces: list[Face], other_face_ratio: float) -> list[Face]:
    """The main (largest) face and any other face big enough to be someone beside it."""
    if not faces:
        return []
    main_width = faces[0].box[2]
    return [faces[0]] + [f for f in faces[1:] if f.box[2] >= other_face_ratio * main_width]


def check_quality(image: np.ndarray, faces: list[Face],
                  thresholds: QualityThresholds | None = None) -> QualityResult:
    """The first thing wrong with this frame for verification, as a hint key, or ok."""
    t = thresholds or QualityThresholds()
    if not faces:
        return QualityResult(False, HINT_NO_FACE, None)
    present = significant_faces(faces, t.other_face_ratio)
    face = present[0]
    measures: dict[str, float] = {"faces": float(len(present))}
    if len(present) > 1:
        return QualityResult(False, HINT_ONE_PERSON, face, measures)

    frame_h, frame_w = image.shape[:2]
    x, y, w, h = face.box
    measures["face_width"] = w / frame_w
    if measures["face_width"] < t.min_face_width:
        return QualityResult(False, HINT_CLOSER, face, measures)
    if measures["face_width"] > t.max_face_width:
        return QualityResult(False, HINT_FARTHER, face, measures)

    cx, cy = face.centre
    measures["offset_x"] = (cx - frame_w / 2) / frame_w
    measures["offset_y"] = (cy - frame_h / 2) / frame_h
    inside_w = max(0.0, min(x + w, frame_w) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, frame_h) - max(y, 0.0))
    measures["outside"] = 1.0 - (inside_w * inside_h) / max(w * h, 1e-6)
    if (abs(measures["offset_x"]) > t.max_offset_x or abs(measures["offset_y"]) > t.max_offset_y
            or measures["outside"] > t.max_outside):
        return QualityResult(False, HINT_CENTRE, face, measures)

    measures["yaw"], measures["pitch"] = nose_coordinates(face.landmarks)
    measures["roll"] = roll_degrees(face.landmarks)
    if (abs(measures["yaw"]) > t.max_yaw or not t.min_pitch <= measures["pitch"] <= t.max_pitch
            or abs(measures["roll"]) > t.max_roll_degrees):
        return QualityResult(False, HINT_FRONTAL, face, measures)

    patch = face_patch(image, face)
    try:
        frame_grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        measures["brightness"] = float(patch.mean())
        measures["contrast"] = float(patch.std())
        measures["frame_brightness"] = float(frame_grey.mean())
        measures["sharpness"] = sharpness(patch)
    finally:
        patch.fill(0)
    backlit = measures["brightness"] < t.min_face_to_frame_brightness * measures["frame_brightness"]
    if (not t.min_brightness <= measures["brightness"] <= t.max_brightness
            or measures["contrast"] < t.min_contrast or backlit):
        return QualityResult(False, HINT_LIGHT, face, measures)
    if measures["sharpness"] < t.min_sharpness:
        return QualityResult(False, HINT_STILL, face, measures)
    return QualityResult(True, None, face, measures)
