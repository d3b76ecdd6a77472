"""The face the live camera is compared with: the ID card's photo, or a photo from the platform.

The card reader hands over the chip's photo decoded to a BMP of 102x126 pixels; the chip
squeezes it into about 1 KB, so it is small and blocky (STACK.md: same-person scores fall
to about 0.4 at that size, hence the separate, lower ID-photo threshold in the verifier).
Any other image bytes OpenCV decodes (JPEG, PNG, WebP) work the same, e.g. a reference
photo the platform holds. Detection runs at the image's own size (kiosk.face.detect pads
small images; nothing is upscaled).

The decoded pixels are zeroed once the embedding exists; only the 128 numbers are kept,
and `Reference.wipe()` zeroes those at the end of the visit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.face.detect import Face, detect
from kiosk.face.embed import embed

log = logging.getLogger(__name__)

CARD_PHOTO = "card_photo"
REFERENCE_PHOTO = "reference_photo"
METHODS = {CARD_PHOTO: "card_photo_1to1", REFERENCE_PHOTO: "reference_photo_1to1"}
MAX_REFERENCE_BYTES = 20 * 1024 * 1024  # far above any photo; refuses a runaway buffer


class ReferenceError(ValueError):
    """The reference photo cannot be used for face verification."""


class ReferenceUnreadable(ReferenceError):
    """The bytes are not an image OpenCV can decode (or are empty / absurdly large)."""


class NoFaceInReference(ReferenceError):
    """The image decodes but no face is found in it (e.g. the emulator's drawn test portrait)."""


@dataclass
class Reference:
    """The reference face as an embedding, where it came from, and how confidently it was found."""

    embedding: np.ndarray
    source: str  # CARD_PHOTO or REFERENCE_PHOTO
    detection_score: float
    size: tuple[int, int]  # width, height of the reference image

    @property
    def method(self) -> str:
        """The evidence's `method`: card_photo_1to1 or reference_photo_1to1."""
        return METHODS[self.source]

    def wipe(self) -> None:
        self.embedding.fill(0)


def decode_image(data: bytes) -> np.ndarray:
    """BMP/JPEG/PNG/WebP bytes to a BGR image; ReferenceUnreadable if they are not one."""
    if not data:
        raise ReferenceUnreadable("the reference photo is empty")
    if len(data) > MAX_REFERENCE_BYTES:
        raise ReferenceUnreadable(f"the reference photo is {len(data)} bytes, over {MAX_REFERENCE_BYTES}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # a header claiming a picture over OpenCV's size limits (CV_IO_MAX_IMAGE_*)
        raise ReferenceUnreadable(f"the reference photo ({len(data)} bytes) claims a size OpenCV refuses "
                                  "to decode: a damaged card photo") from None
    if image is None or image.size == 0:
        raise ReferenceUnreadable(f"the reference photo ({len(data)} bytes) is not an image OpenCV can decode")
    return image


def reference_from_image(image: np.ndarray, source: str = CARD_PHOTO) -> Reference:
    """The embedding of the largest face in `image`; NoFaceInReference if there is none."""
    if source not in METHODS:
        raise ValueError(f"unknown reference source {source!r}; use {CARD_PHOTO!r} or {REFERENCE_PHOTO!r}")
    faces: list[Face] = detect(image)
    if not faces:
        raise NoFaceInReference(f"no face found in the {source.replace('_', ' ')} "
                                f"({image.shape[1]}x{image.shape[0]})")
    face = faces[0]
    vector = embed(image, face)
    log.info("reference face from %s: %dx%d, detection score %.2f", source, image.shape[1], image.shape[0], face.score)
    return Reference(vector, source, face.score, (image.shape[1], image.shape[0]))


def reference_from_bytes(data: bytes, source: str = CARD_PHOTO) -> Reference:
    """The reference from image bytes (the card reader's BMP, or any photo); the decoded
    pixels are zeroed before returning, whatever happens."""
    image = decode_image(data)
    try:
        return reference_from_image(image, source)
    finally:
        image.fill(0)
