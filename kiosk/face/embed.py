"""Turning a detected face into a 128-number SFace embedding, and comparing two of them.

The face is aligned by its landmarks (FaceRecognizerSF.alignCrop, 112x112), fed to SFace
through cv2.dnn as RGB (BGR lowers same-person scores noticeably; STACK.md) and the output
is scaled to unit length, so the cosine similarity is a plain dot product. OpenCV 5's
FaceRecognizerSF.feature() asserts on the shipped SFace file, hence the separate network.
The aligned crop is zeroed as soon as the embedding exists: it is a face image.
"""
from __future__ import annotations

import cv2
import numpy as np

from kiosk.face import models
from kiosk.face.detect import Face, _as_bgr

EMBEDDING_SIZE = 128
INPUT_NAME = "data"


def embed(image: np.ndarray, face: Face) -> np.ndarray:
    """The unit-length float32 embedding of `face` as found in `image` (BGR uint8)."""
    image = _as_bgr(image)
    m = models.load()
    crop = m.aligner.alignCrop(image, face.as_yunet_row())
    try:
        blob = cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True)
        with m.embedder_lock:
            m.embedder.setInput(blob, INPUT_NAME)
            out = m.embedder.forward()
        vector = np.asarray(out, np.float32).reshape(-1).copy()
        blob.fill(0)
    finally:
        crop.fill(0)
    if vector.size != EMBEDDING_SIZE:
        raise RuntimeError(f"SFace returned {vector.size} numbers, expected {EMBEDDING_SIZE}")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise RuntimeError("SFace returned an empty embedding")
    vector /= norm
    return vector


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1 = same direction, about 0 = unrelated faces)."""
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denominator == 0.0:
        return 0.0
    return float(np.dot(a, b) / denominator)
