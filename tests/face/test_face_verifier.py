"""The per-visit face check end to end, fed synthetic camera frames in simulated time."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import random

import numpy as np
import pytest
from face_scenes import FRAME_SIZE, CooperativeUser, PhotoAttack, camera_frame

from kiosk.face import FaceVerifier, Settings, reference_from_bytes
from kiosk.face.liveness import PROMPT_KEYS
from kiosk.face.quality import HINT_KEYS, HINT_NO_FACE
from kiosk.face.verifier import (
    CHALLENGE,
    FAILED,
    KEY_MATCHING,
    MATCHING,
    PASSED,
    POSITIONING,
    REASON_KEYS,
    REASON_LIVENESS,
    REASON_MISMATCH,
    REASON_TIMEOUT,
)

FPS = 15.0
ALLOWED_KEYS = {None, KEY_MATCHING, *HINT_KEYS, *PROMPT_KEYS.values(), *REASON_KEYS}


def run(verifier: FaceVerifier, reference, frame_for, fps: float = FPS, max_frames: int = 2000):
    """Feed frames until the check ends; returns the final Progress and every Progress seen."""
    now = 100.0
    progress = verifier.start(reference.embedding, now, reference.method)
    seen = [progress]
    for _ in range(max_frames):
        progress = verifier.feed(frame_for(progress, now), now)
        seen.append(progress)
        assert progress.key in ALLOWED_KEYS, progress
        if progress.done:
            return progress, seen
        now += 1 / fps
    raise AssertionError(f"the check did not end within {max_frames} frames: {progress}")


@pytest.fixture()
def card_reference(card_bmps):
    """The card photo of person A (obama3), as the card reader delivers it (BMP of a ~1 KB JPEG)."""
    return reference_from_bytes(card_bmps["obama3"])


# The synthetic citizen's turns are what YuNet registers from a warped photo; its nod is not
# (see test_face_liveness.py), so the end-to-end checks draw from the turns.
TURNS = Settings(challenges=("turn_left", "turn_right"))


@pytest.mark.parametrize("seed", [1, 2])
def test_cooperative_card_holder_passes(photos, card_reference, seed, caplog):
    user = CooperativeUser(photos["obama"], mirrored=True, seed=seed)
    verifier = FaceVerifier(TURNS, rng=random.Random(seed))
    with caplog.at_level(logging.DEBUG, logger="kiosk.face"):
        final, seen = run(verifier, card_reference, lambda p, now: user.frame(p.key, now))
    assert final.stage == PASSED and final.key is None, [p for p in seen if p.stage != CHALLENGE]
    assert final.attempts_left >= 1
    assert any(p.stage == CHALLENGE and p.key in PROMPT_KEYS.values() for p in seen)
    assert final.score is not None and final.score >= Settings().id_photo_threshold
    evidence = verifier.evidence()
    assert evidence.passed and evidence.liveness is True and evidence.method == "card_photo_1to1"
    # the log tells stages and scores, never pixels or embeddings
    assert "matched the reference" in caplog.text and "array" not in caplog.text


def test_another_person_fails_as_a_mismatch_within_the_attempts(photos, card_reference):
    user = CooperativeUser(photos["biden"], seed=4)
    verifier = FaceVerifier(Settings(), rng=random.Random(4))
    final, seen = run(verifier, card_reference, lambda p, now: user.frame(p.key, now))
    assert final.stage == FAILED and final.key == REASON_MISMATCH and final.attempts_left == 0
    assert not any(p.stage == CHALLENGE for p in seen)  # never matched, so never challenged
    assert [p.last_failure for p in seen if p.last_failure][:1] == [REASON_MISMATCH]
    assert any(p.stage == MATCHING for p in seen)
    evidence = verifier.evidence()
    assert not evidence.passed and evidence.liveness is None and evidence.score < Settings().id_photo_threshold


def test_held_up_photo_of_the_holder_matches_but_fails_liveness(photos, card_reference):
    attack = PhotoAttack(photos["obama"], seed=5)
    settings = Settings(challenge_time_s=2.5)  # shorter than the default, to keep the test quick
    verifier = FaceVerifier(settings, rng=random.Random(5))
    final, seen = run(verifier, card_reference, lambda p, now: attack.frame(), fps=10.0)
    assert final.stage == FAILED and final.key == REASON_LIVENESS and final.attempts_left == 0
    challenges = [p for p in seen if p.stage == CHALLENGE]
    assert challenges, "the photo of the holder should match the card photo"
    starts = sum(1 for before, after in itertools.pairwise(seen) if after.stage == CHALLENGE != before.stage)
    assert starts == settings.attempts  # one challenge per attempt, then it ends
    evidence = verifier.evidence()
    assert not evidence.passed and evidence.liveness is False and evidence.score >= settings.id_photo_threshold


def test_nobody_in_front_of_the_camera_times_out(card_reference):
    empty = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 90, np.uint8)
    verifier = FaceVerifier(Settings(time_limit_s=2.0))
    final, seen = run(verifier, card_reference, lambda p, now: empty)
    assert {p.stage for p in seen[:-1]} == {POSITIONING} and {p.key for p in seen[:-1]} == {HINT_NO_FACE}
    assert final.stage == FAILED and final.key == REASON_TIMEOUT
    assert len(seen) <= 2 * FPS + 3
    assert verifier.evidence().score is None


def test_frames_after_the_end_change_nothing_and_wipe_zeroes_what_it_held(photos, card_reference):
    user = CooperativeUser(photos["obama"], seed=6)
    verifier = FaceVerifier(TURNS, rng=random.Random(6))
    final, _ = run(verifier, card_reference, lambda p, now: user.frame(p.key, now))
    assert final.stage == PASSED
    assert verifier.feed(camera_frame(photos["biden"]), 1e6) is final
    held = verifier._reference  # the verifier's own copy of the reference embedding
    assert held is not None and not held.any()  # zeroed as soon as the check ended
    assert card_reference.embedding.any()  # the caller's embedding is the caller's to wipe
    verifier.wipe()
    assert verifier.progress is None and verifier._reference is None and verifier._a.anchor is None
    with pytest.raises(RuntimeError):
        verifier.feed(camera_frame(photos["obama"]), 0.0)
    card_reference.wipe()
    assert not card_reference.embedding.any()


def test_wipe_mid_challenge_zeroes_the_live_embedding(photos, card_reference):
    verifier = FaceVerifier(Settings(), rng=random.Random(7))
    verifier.start(card_reference.embedding, 0.0)
    frame = camera_frame(photos["obama"])
    progress = verifier.feed(frame, 0.0)
    assert progress.stage == CHALLENGE
    anchor = verifier._a.anchor
    assert anchor is not None and anchor.any()
    verifier.wipe()
    assert not anchor.any()


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError):
        Settings(attempts=0)
    with pytest.raises(ValueError):
        Settings(id_photo_threshold=1.5)
    assert Settings(challenges=["nod"]).challenges == ("nod",)


@pytest.mark.parametrize("swapper", ["astronaut", "biden"])
def test_photo_that_matched_cannot_hand_over_to_another_live_person(photos, card_reference, swapper):
    """The holder's photo is shown until it matches; then someone else performs the challenge."""
    attack = PhotoAttack(photos["obama"], seed=8)
    other = CooperativeUser(photos[swapper], seed=9)

    def frame_for(progress, now):
        return other.frame(progress.key, now) if progress.stage == CHALLENGE else attack.frame()

    settings = dataclasses.replace(TURNS, confirm_time_s=1.5)  # shorter than the default, to keep the test quick
    verifier = FaceVerifier(settings, rng=random.Random(8))
    final, seen = run(verifier, card_reference, frame_for)
    assert final.stage == FAILED and not verifier.evidence().passed
    assert final.key in (REASON_MISMATCH, REASON_LIVENESS)
    starts = sum(1 for before, after in itertools.pairwise(seen) if after.stage == CHALLENGE != before.stage)
    assert starts == Settings().attempts  # every attempt matched the photo, and every one was refused
