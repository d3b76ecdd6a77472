"""One visit's face check as a state machine fed camera frames: is this the card's holder, alive?

    verifier = FaceVerifier(Settings())
    verifier.start(reference.embedding, now)          # after the card photo is read
    while ...: progress = verifier.feed(frame, now)   # every camera frame (BGR, as shown)
    evidence = verifier.evidence().sign(keypair)      # once passed or failed
    verifier.wipe()                                   # end of the visit

Stages (Progress.stage) and the key the screen and voice use (Progress.key):

    positioning  a hint: face.hint.no_face / one_person / closer / farther / centre /
                 frontal / light / still (face.matching right after a failed attempt
                 when the frame itself is fine; `last_failure` says why it failed)
    matching     face.matching: a good frame was compared with the reference, not yet decided
    challenge    the liveness prompt: face.challenge.turn_left / turn_right / nod / closer;
                 face.hint.one_person or face.hint.no_face while that is the problem;
                 face.hint.frontal once the movement is done, to look straight again
    passed       None
    failed       face.failed.mismatch / face.failed.liveness / face.failed.timeout

One attempt: quality gate -> up to `match_frames` good frames compared with the reference
(ID-photo threshold) -> a liveness check from the provider (default: a random challenge
plus passive cues) -> passed. During the challenge the face is re-embedded and compared
with the live face that matched (live threshold), on frames whose pose is near that
frame's (a turned head embeds less reliably), so a photo that matched cannot be swapped
for another person who performs the movement; after the movement, the same person must
be confirmed looking straight again (within `confirm_time_s`).

A failed attempt (mismatch, liveness) starts the next one from positioning, with
`Progress.last_failure` saying why; after `attempts` failures, or `time_limit_s` in all,
the check fails for good. It never loops forever. Not thread-safe for concurrent feeds;
feed/start/wipe hold a lock so a wipe from another thread waits for the frame in hand.

Privacy: no frame is stored; each frame's face crop is zeroed when its embedding is made;
embeddings are zeroed when dropped, and `wipe()` zeroes everything still held. Logs carry
stages, scores and cue values only.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from kiosk.face import models
from kiosk.face.detect import Face, detect, refine_for_pose
from kiosk.face.embed import embed, similarity
from kiosk.face.evidence import FaceEvidence, utc_timestamp
from kiosk.face.geometry import nose_coordinates
from kiosk.face.liveness import (
    DEFAULT_CHALLENGES,
    ChallengeLiveness,
    ChallengeThresholds,
    LivenessProvider,
    PassiveThresholds,
)
from kiosk.face.liveness import FAILED as LIVENESS_FAILED
from kiosk.face.liveness import PASSED as LIVENESS_PASSED
from kiosk.face.quality import (
    HINT_FRONTAL,
    HINT_NO_FACE,
    HINT_ONE_PERSON,
    QualityThresholds,
    check_quality,
    significant_faces,
)
from kiosk.face.reference import CARD_PHOTO, METHODS

log = logging.getLogger(__name__)

POSITIONING, MATCHING, CHALLENGE, PASSED, FAILED = "positioning", "matching", "challenge", "passed", "failed"
STAGES = (POSITIONING, MATCHING, CHALLENGE, PASSED, FAILED)
KEY_MATCHING = "face.matching"
REASON_MISMATCH = "face.failed.mismatch"
REASON_LIVENESS = "face.failed.liveness"
REASON_TIMEOUT = "face.failed.timeout"
REASON_KEYS = (REASON_MISMATCH, REASON_LIVENESS, REASON_TIMEOUT)


@dataclass(frozen=True)
class Settings:
    """How strict and how patient the face check is. Defaults are measured (see the notes)."""

    # Cosine score needed between the live face and the reference photo. Measured on the
    # test photos (bench/face_verify.py), card photo as a ~1 KB JPEG vs 640x480 frames: same
    # person 0.37-0.71 (distinct shots 0.40-0.62), different people at most 0.24 (0.28 live
    # vs live). 0.32 sits in that gap; STACK.md's 13-identity smoke test saw different
    # people up to 0.34 at full size, so do not go lower without more data.
    id_photo_threshold: float = 0.32
    # Cosine score needed between the live face now and the live face that matched, during
    # the challenge (the same person stays). Same person, different photos: 0.57-0.85 (the
    # same session scores higher still); different people: at most 0.28 (0.34 STACK.md).
    live_threshold: float = 0.50
    attempts: int = 3
    time_limit_s: float = 60.0  # the whole check, positioning included
    challenge_time_s: float = 8.0  # from the prompt to the movement
    confirm_time_s: float = 3.0  # after the movement, to be seen looking straight again
    challenges: tuple[str, ...] = DEFAULT_CHALLENGES
    # The frames are mirror images (a selfie-style preview). Decides which way "turn left"
    # moves the nose in the picture; must match the camera's mirror setting.
    mirrored: bool = True
    match_frames: int = 3  # good frames compared with the reference before an attempt is a mismatch
    identity_every: int = 2  # during the challenge, re-embed every n-th frame near the matched pose
    identity_strikes: int = 2  # consecutive re-embeddings below live_threshold that fail the attempt
    near_pose_yaw: float = 0.06  # "near the matched pose": yaw/pitch within these of it
    near_pose_pitch: float = 0.05
    jump: float = 0.6  # a face centre moving this many face widths in one frame is a new track
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    challenge: ChallengeThresholds = field(default_factory=ChallengeThresholds)
    passive: PassiveThresholds = field(default_factory=PassiveThresholds)

    def __post_init__(self) -> None:
        for name in ("id_photo_threshold", "live_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.attempts < 1 or self.match_frames < 1 or self.identity_every < 1 or self.identity_strikes < 1:
            raise ValueError("attempts, match_frames, identity_every and identity_strikes must be at least 1")
        if min(self.time_limit_s, self.challenge_time_s, self.confirm_time_s) <= 0:
            raise ValueError("time limits must be positive")
        object.__setattr__(self, "challenges", tuple(self.challenges))


@dataclass(frozen=True)
class Progress:
    """Where the check stands after a frame: what to show and say (`key`), how many tries remain."""

    stage: str
    key: str | None
    attempts_left: int
    score: float | None = None  # best live-vs-reference score so far; once passed, the passing attempt's
    challenge: str | None = None  # the current challenge, during the challenge stage
    last_failure: str | None = None  # why the previous attempt failed (a face.failed.* key)

    @property
    def done(self) -> bool:
        return self.stage in (PASSED, FAILED)


@dataclass
class _Attempt:
    """What one attempt holds; `wipe()` zeroes its arrays."""

    number: int = 1
    match_scores: list[float] = field(default_factory=list)
    before: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=5))  # pose before the prompt
    anchor: np.ndarray | None = None  # the live embedding that matched
    matched_score: float | None = None  # its score against the reference
    anchor_pose: tuple[float, float] = (0.0, 0.0)
    last_centre: tuple[tuple[float, float], float] = ((0.0, 0.0), 1.0)
    challenge_started: float = 0.0
    challenge_kind: str | None = None
    prompt: str | None = None
    liveness_done_at: float | None = None
    liveness_done_index: int = -1
    identity_ok_index: int = -1
    discontinuity: int = -1
    frame_index: int = 0
    near_frames: int = 0
    strikes: int = 0

    def wipe(self) -> None:
        if self.anchor is not None:
            self.anchor.fill(0)
        for marks in self.before:
            marks.fill(0)
        self.before.clear()
        self.match_scores.clear()


class FaceVerifier:
    """Feed frames, get Progress; see the module docstring for the flow and the keys."""

    def __init__(self, settings: Settings | None = None, liveness: LivenessProvider | None = None,
                 rng: random.Random | None = None) -> None:
        """`liveness`: another provider (e.g. a NIR camera's); default the built-in
        challenge, drawn with `rng` (default random.SystemRandom; tests pass a seeded one)."""
        self.settings = settings or Settings()
        s = self.settings
        self.liveness: LivenessProvider = liveness or ChallengeLiveness(
            challenges=s.challenges, mirrored=s.mirrored,
            challenge_thresholds=dataclasses.replace(s.challenge, time_limit_s=s.challenge_time_s),
            passive_thresholds=s.passive, rng=rng)
        self._lock = threading.RLock()
        self._reference: np.ndarray | None = None
        self._method = METHODS[CARD_PHOTO]
        self._started = 0.0
        self._progress: Progress | None = None
        self._best_score: float | None = None
        self._liveness_result: bool | None = None
        self._decided_at: dt.datetime | None = None
        self._attempts_left = 0
        self._a = _Attempt()

    # -- public -----------------------------------------------------------------------------
    @property
    def progress(self) -> Progress | None:
        return self._progress

    def start(self, reference_embedding: np.ndarray, now: float, method: str = METHODS[CARD_PHOTO]) -> Progress:
        """Begin a check against this reference embedding (copied; the caller keeps its own)."""
        with self._lock:
            self._wipe_state()
            vector = np.array(reference_embedding, np.float32, copy=True).reshape(-1)
            if vector.size == 0 or not np.isfinite(vector).all() or not vector.any():
                raise ValueError("the reference embedding is empty")
            self._reference = vector
            self._method = method
            self._started = now
            self._attempts_left = self.settings.attempts
            self._best_score = None
            self._liveness_result = None
            self._decided_at = None
            self._progress = Progress(POSITIONING, HINT_NO_FACE, self._attempts_left)
            models.load()  # a missing model fails here, at the start, not mid-check
            log.info("face check started (%s, %d attempts, %.0f s)", method, self._attempts_left,
                     self.settings.time_limit_s)
            return self._progress

    def feed(self, image: np.ndarray, now: float) -> Progress:
        """Judge one camera frame (BGR uint8, mirrored as configured) at time `now` (seconds)."""
        with self._lock:
            if self._progress is None or self._reference is None:
                raise RuntimeError("FaceVerifier.feed before start (or after wipe)")
            if self._progress.done:
                return self._progress
            if now - self._started > self.settings.time_limit_s:
                return self._finish(FAILED, REASON_TIMEOUT)
            faces = detect(image)
            if self._stage == CHALLENGE:
                return self._challenge_frame(image, faces, now)
            return self._positioning_frame(image, faces, now)

    @property
    def passed(self) -> bool:
        return self._progress is not None and self._progress.stage == PASSED

    def evidence(self) -> FaceEvidence:
        """The (unsigned) evidence of the finished check; sign it with the terminal's key."""
        with self._lock:
            if self._progress is None or not self._progress.done:
                raise RuntimeError("the face check has not finished")
            return FaceEvidence(method=self._method, passed=self.passed, score=self._best_score,
                                liveness=self._liveness_result, model_versions=models.model_versions(),
                                timestamp=utc_timestamp(self._decided_at))

    def wipe(self) -> None:
        """Zero and drop every embedding, landmark and cue held; the verifier needs start() again."""
        with self._lock:
            self._wipe_state()
            self._progress = None
            self._best_score = None
            self._liveness_result = None

    # -- stages -----------------------------------------------------------------------------
    def _positioning_frame(self, image: np.ndarray, faces: list[Face], now: float) -> Progress:
        present = significant_faces(faces, self.settings.quality.other_face_ratio)
        if len(present) == 1:  # the pose before any prompt, for the challenge's baseline
            self._a.before.append(np.array(refine_for_pose(image, present[0]).landmarks, np.float64))
        quality = check_quality(image, faces, self.settings.quality)
        if not quality.ok or quality.face is None:
            return self._set(POSITIONING, quality.hint)
        face = quality.face
        assert self._reference is not None  # feed() checked
        vector = embed(image, face)
        score = similarity(vector, self._reference)
        self._best_score = score if self._best_score is None else max(self._best_score, score)
        self._a.match_scores.append(score)
        if score >= self.settings.id_photo_threshold:
            self._a.anchor = vector
            self._a.matched_score = score
            self._a.anchor_pose = nose_coordinates(face.landmarks)
            self._a.last_centre = (face.centre, face.box[2])
            self._a.challenge_started = now
            self._a.challenge_kind = None
            prompt = self.liveness.begin(now, list(self._a.before))
            if isinstance(self.liveness, ChallengeLiveness) and self.liveness.challenge is not None:
                self._a.challenge_kind = self.liveness.challenge.kind
            self._a.prompt = prompt
            log.info("face attempt %d: matched the reference (score %.3f), liveness: %s",
                     self._a.number, score, self._a.challenge_kind or self.liveness.name)
            return self._set(CHALLENGE, prompt)
        vector.fill(0)
        if len(self._a.match_scores) >= self.settings.match_frames:
            log.info("face attempt %d: no match (scores %s, threshold %.2f)", self._a.number,
                     ", ".join(f"{v:.3f}" for v in self._a.match_scores), self.settings.id_photo_threshold)
            return self._attempt_failed(REASON_MISMATCH, image, faces)
        return self._set(MATCHING, KEY_MATCHING)

    def _challenge_frame(self, image: np.ndarray, faces: list[Face], now: float) -> Progress:
        s = self.settings
        if self._a.liveness_done_at is None and now - self._a.challenge_started > s.challenge_time_s:
            log.info("face attempt %d: no liveness within %.0f s", self._a.number, s.challenge_time_s)
            return self._attempt_failed(REASON_LIVENESS, image, faces)
        if self._a.liveness_done_at is not None and now - self._a.liveness_done_at > s.confirm_time_s:
            log.info("face attempt %d: the same face was not seen again after the movement", self._a.number)
            return self._attempt_failed(REASON_LIVENESS, image, faces)
        present = significant_faces(faces, s.quality.other_face_ratio)
        if len(present) != 1:
            self._a.discontinuity = self._a.frame_index
            self._a.frame_index += 1
            return self._set(CHALLENGE, HINT_NO_FACE if not present else HINT_ONE_PERSON)
        face = present[0]
        index = self._a.frame_index
        self._a.frame_index += 1
        (cx, cy), width = self._a.last_centre
        if np.hypot(face.centre[0] - cx, face.centre[1] - cy) > s.jump * max(width, face.box[2]):
            self._a.discontinuity = index
        self._a.last_centre = (face.centre, face.box[2])

        if self._a.liveness_done_at is None:
            status = self.liveness.observe(image, face, now)
            if status.state == LIVENESS_FAILED:
                log.info("face attempt %d: liveness failed (%s) %s", self._a.number, status.reason, status.detail)
                self._liveness_result = False
                return self._attempt_failed(REASON_LIVENESS, image, faces)
            if status.state == LIVENESS_PASSED:
                log.info("face attempt %d: liveness passed %s", self._a.number, status.detail)
                self._a.liveness_done_at = now
                self._a.liveness_done_index = index
            else:
                self._a.prompt = status.prompt or self._a.prompt

        strike = self._identity_check(image, face, index)
        if strike >= s.identity_strikes:
            log.info("face attempt %d: a different face during the challenge", self._a.number)
            return self._attempt_failed(REASON_MISMATCH, image, faces)

        if self._a.liveness_done_at is not None:
            confirmed_after = max(self._a.liveness_done_index, self._a.discontinuity)
            if self._a.identity_ok_index > confirmed_after:
                self._liveness_result = True
                self._best_score = self._a.matched_score  # the evidence is the passing attempt's
                return self._finish(PASSED, None)
            return self._set(CHALLENGE, HINT_FRONTAL)
        return self._set(CHALLENGE, self._a.prompt)

    def _identity_check(self, image: np.ndarray, face: Face, index: int) -> int:
        """Re-embed when the pose is near the matched one; returns the current strike count."""
        s = self.settings
        yaw, pitch = nose_coordinates(face.landmarks)
        anchor_yaw, anchor_pitch = self._a.anchor_pose
        near = abs(yaw - anchor_yaw) <= s.near_pose_yaw and abs(pitch - anchor_pitch) <= s.near_pose_pitch
        if not near or self._a.anchor is None:
            return self._a.strikes
        self._a.near_frames += 1
        confirming = self._a.liveness_done_at is not None
        if not confirming and self._a.near_frames % s.identity_every:
            return self._a.strikes
        vector = embed(image, face)
        score = similarity(vector, self._a.anchor)
        vector.fill(0)
        if score >= s.live_threshold:
            self._a.strikes = 0
            self._a.identity_ok_index = index
        else:
            self._a.strikes += 1
            log.info("face attempt %d: live face differs from the matched one (score %.3f)", self._a.number, score)
        return self._a.strikes

    # -- bookkeeping ------------------------------------------------------------------------
    @property
    def _stage(self) -> str:
        return self._progress.stage if self._progress else POSITIONING

    def _set(self, stage: str, key: str | None) -> Progress:
        previous = self._progress
        self._progress = Progress(stage, key, self._attempts_left, self._rounded_best(),
                                  self._a.challenge_kind if stage == CHALLENGE else None,
                                  previous.last_failure if previous else None)
        if previous is None or previous.stage != stage:
            log.debug("face stage %s (%s)", stage, key)
        return self._progress

    def _attempt_failed(self, reason: str, image: np.ndarray, faces: list[Face]) -> Progress:
        self._attempts_left -= 1
        if reason == REASON_LIVENESS and self._liveness_result is None:
            self._liveness_result = False
        if self._attempts_left <= 0:
            return self._finish(FAILED, reason)
        self._end_attempt()
        self._a.number += 1
        hint = check_quality(image, faces, self.settings.quality).hint or KEY_MATCHING
        self._progress = Progress(POSITIONING, hint, self._attempts_left, self._rounded_best(), None, reason)
        log.info("face attempt failed (%s); %d left", reason, self._attempts_left)
        return self._progress

    def _finish(self, stage: str, reason: str | None) -> Progress:
        self._end_attempt()
        self._decided_at = dt.datetime.now(dt.UTC)
        last = self._progress.last_failure if self._progress else None
        self._progress = Progress(stage, reason, self._attempts_left if stage == PASSED else 0,
                                  self._rounded_best(), None, reason or last)
        log.info("face check %s%s (best score %s)", stage, f": {reason}" if reason else "",
                 "none" if self._best_score is None else f"{self._best_score:.3f}")
        # the reference is not needed any more
        if self._reference is not None:
            self._reference.fill(0)
        return self._progress

    def _rounded_best(self) -> float | None:
        return None if self._best_score is None else round(self._best_score, 3)

    def _end_attempt(self) -> None:
        self._a.wipe()
        self.liveness.wipe()
        self._a = _Attempt(number=self._a.number)

    def _wipe_state(self) -> None:
        self._end_attempt()
        self._a = _Attempt()
        if self._reference is not None:
            self._reference.fill(0)
        self._reference = None
