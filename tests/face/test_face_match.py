"""Detection, embeddings and the match thresholds, on real photos with the shipped models."""
from __future__ import annotations

import itertools
import re

import cv2
import numpy as np
import pytest
from face_scenes import CARD_SIZE, DISTINCT_A, PHOTOS, camera_frame, person_of

from kiosk.face import Settings, model_versions, reference_from_bytes, similarity
from kiosk.face import models as face_models
from kiosk.face.detect import LEFT_EYE, NOSE_TIP, RIGHT_EYE, detect
from kiosk.face.reference import NoFaceInReference, ReferenceUnreadable


@pytest.mark.parametrize("name", PHOTOS)
def test_every_test_photo_has_one_face_with_landmarks_in_yunet_order(photos, name):
    faces = detect(photos[name])
    assert len(faces) == 1
    face = faces[0]
    _x, _y, w, h = face.box
    assert w > 50 and h > 50 and 0.5 <= face.score <= 1.0
    assert face.landmarks.shape == (5, 2)
    # YuNet's "right eye" (the subject's) is the one on the image's left; the nose lies between
    assert face.landmarks[RIGHT_EYE][0] < face.landmarks[NOSE_TIP][0] < face.landmarks[LEFT_EYE][0]
    assert face.inter_ocular > 20


@pytest.mark.parametrize("name", PHOTOS)
def test_card_sized_photo_is_detected_at_native_size(card_jpegs, name):
    image = cv2.imdecode(np.frombuffer(card_jpegs[name], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (CARD_SIZE[1], CARD_SIZE[0])
    assert 700 <= len(card_jpegs[name]) <= 1018  # about 1 KB, as the card's photo block holds
    faces = detect(image)
    assert len(faces) == 1
    x, _y, w, _h = faces[0].box
    assert 0 <= x and x + w <= CARD_SIZE[0] + 2  # coordinates are the card photo's, not the padded image's


def test_embeddings_are_unit_length_128_numbers(live_embeddings):
    for vector in live_embeddings.values():
        assert vector.shape == (128,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    a = live_embeddings["obama"]
    assert similarity(a, a) == pytest.approx(1.0, abs=1e-5)


def _pairs(scores_for):
    same, different = [], []
    for a, b in itertools.permutations(PHOTOS, 2):
        (same if person_of(a) == person_of(b) else different).append((a, b, scores_for(a, b)))
    return same, different


def test_live_vs_live_threshold_separates_people(live_embeddings):
    settings = Settings()
    same, different = _pairs(lambda a, b: similarity(live_embeddings[a], live_embeddings[b]))
    assert min(s for *_, s in same) >= settings.live_threshold, same
    assert max(s for *_, s in different) < settings.live_threshold, different


def test_one_kilobyte_card_photo_vs_live_threshold_separates_people(card_bmps, live_embeddings):
    """The card photo (102x126, ~1 KB JPEG, handed over as BMP) against full-size camera frames."""
    settings = Settings()
    references = {name: reference_from_bytes(data) for name, data in card_bmps.items()}
    same, different = _pairs(lambda a, b: similarity(references[a].embedding, live_embeddings[b]))
    assert min(s for *_, s in same) >= settings.id_photo_threshold, same
    assert max(s for *_, s in different) < settings.id_photo_threshold, different
    # distinct shots of the same person, not just crops of one photo
    distinct = [s for a, b, s in same if a in DISTINCT_A and b in DISTINCT_A]
    assert len(distinct) == 6 and min(distinct) >= settings.id_photo_threshold
    assert references["obama"].method == "card_photo_1to1"


def test_reference_photo_from_the_platform_is_any_image_bytes(photos):
    _ok, png = cv2.imencode(".png", camera_frame(photos["obama2"]))
    reference = reference_from_bytes(png.tobytes(), source="reference_photo")
    assert reference.method == "reference_photo_1to1" and reference.size == (640, 480)


def test_reference_without_a_face_or_unreadable_is_refused_with_a_specific_error():
    blank = np.full((126, 102, 3), 200, np.uint8)
    _ok, bmp = cv2.imencode(".bmp", blank)
    with pytest.raises(NoFaceInReference, match="no face found in the card photo"):
        reference_from_bytes(bmp.tobytes())
    with pytest.raises(ReferenceUnreadable):
        reference_from_bytes(b"WLT\x00 not an image")
    with pytest.raises(ReferenceUnreadable):
        reference_from_bytes(b"")


def test_model_versions_name_each_file_with_its_sha256_prefix():
    versions = model_versions()
    assert set(versions) == {face_models.DETECTOR_FILE, face_models.EMBEDDER_FILE, "opencv"}
    for name in (face_models.DETECTOR_FILE, face_models.EMBEDDER_FILE):
        assert re.fullmatch(r"[0-9a-f]{12}", versions[name])


def test_missing_model_file_says_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.setattr(face_models, "model_dir", lambda: tmp_path)
    with pytest.raises(face_models.FaceModelMissing, match=r"reinstall: \.venv/bin/pip install"):
        face_models.model_path(face_models.EMBEDDER_FILE)
