"""Fuzzing the photo bytes a card hands over for the face check: the social security card's
JPEG, the ID-card reader's decoded BMP, or any photo the platform holds, read by
kiosk/face/reference.py through OpenCV's decoders (native code: a crash there would take the
kiosk down, not raise).

Inputs are real encodings of a portrait-sized picture (JPEG, PNG, BMP, WebP) with bits
flipped, bytes cut off or spliced, and plain noise. The documented outcome: a picture, or
ReferenceUnreadable / NoFaceInReference (ReferenceError), which the face check turns into
"use another way"; the decoded pixels are zeroed whatever happens.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from fuzzing import fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st
from terminal_config import write_config

from config.loader import load_config
from kiosk.face.reference import ReferenceError, ReferenceUnreadable, decode_image, reference_from_bytes
from kiosk.face_check import REASON_NO_REFERENCE, FaceCheck


@functools.cache
def _encoded(ext: str) -> bytes:
    """A 102x126 portrait-like test picture (the ID photo's size), encoded as `ext`."""
    rng = np.random.default_rng(7)
    image = np.full((126, 102, 3), 200, np.uint8)
    cv2.ellipse(image, (51, 60), (30, 40), 0, 0, 360, (120, 150, 190), -1)
    image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@st.composite
def photo_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(_encoded(draw(st.sampled_from([".jpg", ".png", ".bmp", ".webp"]))))
    for _ in range(draw(st.integers(0, 6))):
        edit = draw(st.sampled_from(["flip", "flip", "cut", "splice", "zero"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if edit == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "cut":
            del data[at:]
        elif edit == "splice":
            data[at:at] = draw(st.binary(max_size=16))
        else:
            data[at:at + 8] = bytes(min(8, len(data) - at))
    return bytes(data)


photos = st.one_of(photo_bytes(), photo_bytes(), st.binary(max_size=200))


def _huge_bmp() -> bytes:
    """The reproducer the fuzzer found: a BMP header whose width was flipped to 1,048,678."""
    data = bytearray(_encoded(".bmp"))
    data[18:22] = (0x100066).to_bytes(4, "little")
    return bytes(data)


@example(_huge_bmp())
@fuzz(100)
@given(photo_bytes().map(lambda b: b[:18] + (0x100066).to_bytes(4, "little") + b[22:] if b[:2] == b"BM" else b))
def test_a_picture_claiming_a_huge_size_is_unreadable(data: bytes) -> None:
    """OpenCV refuses such a header with cv2.error: an unreadable card photo, never cv2.error (the
    face check would report the camera broken instead of "use another way")."""
    if data[:2] != b"BM":
        try:
            decode_image(data)
        except ReferenceUnreadable:
            pass
        return
    with pytest.raises(ReferenceUnreadable):
        decode_image(data)


@fuzz(300)
@given(photos)
def test_any_photo_bytes_decode_to_a_picture_or_are_unreadable(data: bytes) -> None:
    try:
        image = decode_image(data)
    except ReferenceUnreadable:
        event("unreadable")
        return
    event("decoded")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


@fuzz(40)
@given(photos)
def test_a_reference_face_comes_from_any_photo_or_a_reference_error(data: bytes) -> None:
    """The whole path the face check takes with a card's photo (detector and embedder included)."""
    try:
        reference = reference_from_bytes(data)
    except ReferenceError as exc:
        event(type(exc).__name__)
        return
    event("a face")
    assert reference.embedding.shape == (128,) and np.isfinite(reference.embedding).all()


class _Visit:
    """What FaceCheck needs of the visit: a view to subscribe to, and where a failure goes."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def subscribe(self, callback: object) -> None:
        pass

    def face_failed(self, reason_key: str) -> None:
        self.failed.append(reason_key)


def test_the_face_check_says_no_reference_for_a_card_photo_claiming_a_huge_size() -> None:
    """The finding's consequence, end to end: the citizen is told the card photo cannot be used
    (use another way), not that the camera is broken."""
    with tempfile.TemporaryDirectory(prefix="fuzz-face-") as tmp:
        cfg = load_config(write_config(Path(tmp), {}), environ={})
    visit = _Visit()
    check = FaceCheck(visit, cfg.face, camera=lambda: None)  # type: ignore[arg-type]
    check._run(SimpleNamespace(identity=SimpleNamespace(photo_bmp=_huge_bmp())))
    assert visit.failed == [REASON_NO_REFERENCE]
