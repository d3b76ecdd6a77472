"""The quality gate: one clear hint key for each thing wrong with a frame."""
from __future__ import annotations

import numpy as np
import pytest
from face_scenes import FRAME_SIZE, blur, camera_frame, darken, side_by_side

from kiosk.face import check_quality
from kiosk.face.detect import detect
from kiosk.face.quality import (
    HINT_CENTRE,
    HINT_CLOSER,
    HINT_FARTHER,
    HINT_LIGHT,
    HINT_NO_FACE,
    HINT_ONE_PERSON,
    HINT_STILL,
)


def judge(frame: np.ndarray):
    return check_quality(frame, detect(frame))


@pytest.mark.parametrize("name", ["obama", "astronaut"])
def test_a_good_frame_passes(photos, name):
    result = judge(camera_frame(photos[name]))
    assert result.ok and result.hint is None, result.measures
    assert result.face is not None


def test_blank_frame_asks_to_face_the_camera():
    result = judge(np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 128, np.uint8))
    assert not result.ok and result.hint == HINT_NO_FACE


def test_two_people_side_by_side(photos):
    frame = side_by_side(photos["obama"], photos["biden"])
    assert len(detect(frame)) == 2
    assert judge(frame).hint == HINT_ONE_PERSON


def test_small_face_asks_to_come_closer(photos):
    result = judge(camera_frame(photos["obama"], face_width=0.12))
    assert result.hint == HINT_CLOSER, result.measures


def test_huge_face_asks_to_step_back(photos):
    result = judge(camera_frame(photos["astronaut"], face_width=0.8))
    assert result.hint in (HINT_FARTHER, HINT_CENTRE), result.measures  # a face that big is cut by the frame too
    assert judge(camera_frame(photos["astronaut"], face_width=0.7)).hint == HINT_FARTHER


def test_face_at_the_edge_asks_to_move_to_the_middle(photos):
    result = judge(camera_frame(photos["obama"], offset=(0.33, 0.0)))
    assert result.hint == HINT_CENTRE, result.measures


def test_dark_frame_asks_for_light(photos):
    frame = darken(camera_frame(photos["obama"]))
    assert detect(frame), "the darkened face must still be found for the hint to be about light"
    result = judge(frame)
    assert result.hint == HINT_LIGHT, result.measures


def test_blurred_frame_asks_to_hold_still(photos):
    frame = blur(camera_frame(photos["obama"]))
    assert detect(frame), "the blurred face must still be found for the hint to be about blur"
    result = judge(frame)
    assert result.hint == HINT_STILL, result.measures
