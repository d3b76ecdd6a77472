"""Fixtures of the face tests: the test photos (real images, never committed) and what is
made from them once per session. Helpers live in `face_scenes.py` (a unique module name:
several conftest.py files exist in this repository)."""
from __future__ import annotations

import numpy as np
import pytest
from face_scenes import (
    FACES_DIR,
    PHOTOS,
    MissingFaces,
    camera_frame,
    card_photo_bmp,
    card_photo_jpeg,
    load_photo,
    main_face,
)

from kiosk.face.embed import embed


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Every test photo by name; a failure (not a skip) if scripts/setup.sh has not fetched them."""
    try:
        return {name: load_photo(name) for name in PHOTOS}
    except MissingFaces as exc:
        pytest.fail(f"{exc} (face photos expected in {FACES_DIR})")


@pytest.fixture(scope="session")
def live_embeddings(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each photo framed as a 640x480 camera frame, embedded."""
    out = {}
    for name, photo in photos.items():
        frame = camera_frame(photo)
        out[name] = embed(frame, main_face(frame))
    return out


@pytest.fixture(scope="session")
def card_jpegs(photos: dict[str, np.ndarray]) -> dict[str, bytes]:
    """Each photo as the emulated ID card carries it: 102x126, JPEG of about 1 KB."""
    return {name: card_photo_jpeg(photo) for name, photo in photos.items()}


@pytest.fixture(scope="session")
def card_bmps(photos: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The same card photos decoded to BMP, as the card reader hands them over."""
    return {name: card_photo_bmp(photo) for name, photo in photos.items()}
