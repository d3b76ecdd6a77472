"""Finding faces in one image with YuNet: box, five landmarks, confidence.

The detector's input size is set to each image's own size, so nothing is resized and
the landmarks come back in the image's pixels. Small images (the ID-card photo is 102x126,
the face filling most of it) get a border before detection: YuNet misses faces that touch
the image edge, and upscaling would only invent pixels (STACK.md: detect at native size).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.face import models

# Landmark order as YuNet gives it. "Right eye" is the eye on the image's left in an
# unmirrored picture (the subject's right); the names follow YuNet, not the screen.
RIGHT_EYE, LEFT_EYE, NOSE_TIP, RIGHT_MOUTH, LEFT_MOUTH = range(5)
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")

SMALL_IMAGE_SIDE = 240  # images with a shorter side than this get a border before detection
SMALL_IMAGE_PAD = 0.3  # border on each side, as a fraction of that side's length


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: np.ndarray  # 5x2 float32, in YuNet's order (see LANDMARK_NAMES)
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2

    @property
    def inter_ocular(self) -> float:
        """Distance between the eye centres: the face's scale, steadier than the box."""
        return float(np.linalg.norm(self.landmarks[LEFT_EYE] - self.landmarks[RIGHT_EYE]))

    def as_yunet_row(self) -> np.ndarray:
        """The 15-number row FaceRecognizerSF.alignCrop expects (box, landmarks, score)."""
        return np.concatenate([np.asarray(self.box, np.float32), self.landmarks.reshape(-1),
                               np.asarray([self.score], np.float32)]).astype(np.float32)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a BGR image (HxWx3), got shape {image.shape}")


def detect(image: np.ndarray) -> list[Face]:
    """Every face in a BGR uint8 image, largest first."""
    image = _as_bgr(image)
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        return []
    pad_x = pad_y = 0
    if min(height, width) < SMALL_IMAGE_SIDE:
        pad_x, pad_y = round(width * SMALL_IMAGE_PAD), round(height * SMALL_IMAGE_PAD)
        image = cv2.copyMakeBorder(image, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
    m = models.load()
    with m.detector_lock:
        m.detector.setInputSize((image.shape[1], image.shape[0]))
        _, rows = m.detector.detect(image)
    if rows is None:
        return []
    faces = []
    for row in rows:
        box = (float(row[0]) - pad_x, float(row[1]) - pad_y, float(row[2]), float(row[3]))
        landmarks = row[4:14].reshape(5, 2).astype(np.float32) - np.array([pad_x, pad_y], np.float32)
        faces.append(Face(box, landmarks, float(row[14])))
    faces.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
    return faces


POSE_CROP_SIDE = 160  # the levelled crops faces are re-detected in for pose measurement
POSE_CROP_EYES = (0.25, 0.30, 0.35)  # eye distance as a fraction of the crop's side, one crop each


def refine_for_pose(image: np.ndarray, face: Face) -> Face:
    """The same face with landmarks for measuring pose: re-detected in three crops that are
    levelled (eyes horizontal), centred on the eyes and scaled to eye distances of 40, 48
    and 56 px, mapped back to the image and averaged.

    YuNet's landmarks wander with how a face sits against its anchor grid: a flat photo
    merely shifted, scaled or rotated by hand moves the nose's pose coordinates
    (kiosk.face.geometry) by 0.02-0.04 (standard deviation), up to 0.08 in a 5-frame
    median over 4 s. In a levelled crop of fixed scale every frame sits the same way, and
    the three scales' errors are largely independent, so the average wanders 2-3 times
    less (measured on the test photos: up to 0.036 for yaw and 0.023 for pitch over the
    same sequences). Costs three detections on 160x160 crops (about 6 ms). For measuring
    pose (liveness); embeddings keep the original landmarks. Returns `face` itself if no
    crop shows a face.
    """
    image = _as_bgr(image)
    marks = face.landmarks.astype(np.float64)
    eyes = (marks[RIGHT_EYE] + marks[LEFT_EYE]) / 2
    dx, dy = marks[LEFT_EYE] - marks[RIGHT_EYE]
    distance = float(np.hypot(dx, dy))
    if distance < 4:
        return face
    angle = float(np.degrees(np.arctan2(dy, dx)))
    found = [p for p in (_landmarks_in_levelled_crop(image, eyes, angle, fraction * POSE_CROP_SIDE / distance)
                         for fraction in POSE_CROP_EYES) if p is not None]
    if not found:
        return face
    return Face(face.box, np.mean(found, axis=0).astype(np.float32), face.score)


def _landmarks_in_levelled_crop(image: np.ndarray, eyes: np.ndarray, angle: float, scale: float) -> np.ndarray | None:
    side = POSE_CROP_SIDE
    matrix = cv2.getRotationMatrix2D((float(eyes[0]), float(eyes[1])), angle, scale)
    matrix[0, 2] += side / 2 - eyes[0]
    matrix[1, 2] += 0.42 * side - eyes[1]
    crop = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    try:
        m = models.load()
        with m.detector_lock:
            m.detector.setInputSize((side, side))
            _, rows = m.detector.detect(crop)
    finally:
        crop.fill(0)
    if rows is None:
        return None
    row = max(rows, key=lambda r: r[2] * r[3])
    inverse = cv2.invertAffineTransform(matrix)
    return row[4:14].reshape(5, 2).astype(np.float64) @ inverse[:, :2].T + inverse[:, 2]
