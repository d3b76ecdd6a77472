"""Is the face at the camera a live person, not a picture of one?

No permissively licensed anti-spoofing model ships in any package (STACK.md), so the
built-in check combines two things computed from YuNet's output and the frame itself:

ACTIVE: a challenge drawn at random (random.SystemRandom) for every attempt:
  turn_left / turn_right  the nose tip's `yaw` coordinate (kiosk.face.geometry) moves by
                          >= 0.10 the asked way (a 3D head model: about 13 degrees);
  nod                     its `pitch` coordinate moves by >= 0.07 up or down (about 10 degrees);
  closer                  the eye distance grows by >= 1.25x.
  `yaw`/`pitch` are affine invariants: moving, turning, tilting or zooming a flat photo
  leaves them unchanged in geometry (perspective adds under 0.015 at 30 degrees of tilt),
  only a solid head changes them. The baseline is the median pose of the last 5 frames
  before the prompt (or, lacking 3 of them, of the first frames after it), compared with
  the median of the last 5 frames. Turning the wrong way first fails the challenge (a
  replayed video of random movements does not pass).
  The thresholds are set by YuNet's own noise, not by geometry: its landmarks wander by
  0.02-0.04 (standard deviation) when a flat photo is merely shifted or rotated in the
  frame. They are therefore re-detected in three levelled, scaled crops and averaged
  (kiosk.face.detect.refine_for_pose), which leaves hand-moved photos at most 0.054 (yaw)
  and 0.040 (pitch) from their start in 40 sequences of 8 s on the test photos.
  Caveat, measured: YuNet registers a nod imitated by warping a photo only weakly (0.02-0.07
  for 20 degrees, where the head model gives 0.14), while it does register imitated turns
  (0.14-0.24, bench/face_verify.py) and real turned heads in the test photos (up to 0.18). Whether real nods
  reach 0.07 must be checked with the real camera; if not, leave "nod" out of the set.
  "closer" is the WEAKEST challenge: a photo can be brought closer too, so it proves
  nothing on its own and rests on the micro-motion cue below; it is not in the default
  set, and a citizen who holds perfectly still while coming closer fails it.

PASSIVE cues over the frames of the challenge (each a number, each with a limit):
  moire        strongest isolated peak in the face's mid/high spatial frequencies, as the
               natural log of its power over the surrounding spectrum. A screen re-filmed by
               a camera, and many prints, carry a periodic pixel or halftone grid; skin does
               not. Test photos give 1.4-2.4 (also as JPEG at quality 50); a periodic
               overlay of 2-10 px period gives 3.7-7.2 at 12 % contrast, 3.0-6.3 at 4 %.
               Coarser beat patterns (over 10 px) are not caught.
  sharpness    the face patch's Laplacian variance (kiosk.face.quality.sharpness): a
               re-filmed picture loses detail. Weak on its own (a good print is sharp).
  specular     fraction of the face that is saturated near-white highlight: glare off
               glossy photo paper or a screen's glass. Skin: under 0.09 on the test photos,
               a broad glare 0.57-0.80.
  micro_motion how far the landmarks move in a way no affine map explains, relative to the
               window's first frames (in eye distances; residuals averaged over 5 frames,
               the largest average). A flat picture, however it is moved, stays at the
               detector's noise (hand-moved photos, also brought closer: at most 0.028 in
               40 sequences); a head that turns does not (imitated turns 0.066-0.090).
               Frame-to-frame jitter, the textbook form of this cue, is NOT usable with
               YuNet: its own landmark noise (0.005 eye distances between frames of a still
               photo, several times that when the photo moves) is as large as a still live
               face's jitter. So this cue confirms that a movement was non-rigid; it cannot
               tell a perfectly still face from a photo, which is why "closer" alone cannot
               pass it (a live face only coming closer: 0.008-0.024).

What this resists: printed photos (held still, moved, tilted, brought closer), phone or
tablet replays of a still photo, most naive replays (a video of the person that does
not happen to make the asked movement at the asked moment, after the prompt).
What it does NOT resist: a good video replay on a high-resolution screen of the person
making the asked movement (an attacker with such footage of the citizen, shown fast
enough after the prompt, possibly without visible moire); a photo bent around a vertical
axis and turned (the bend makes the nose stand out like a real one); 3D masks; deepfake
video injected into the camera's USB stream. Thresholds were set from the test photos
and geometric reasoning, not from a spoof data set (none ships); calibrate them on site
with the real camera.

A terminal with a near-infrared (NIR) or 3D camera and the vendor's certified
anti-spoofing SDK plugs in as another `LivenessProvider`: the verifier calls
`begin(now, before)` when a match is found and `observe(frame, face, now)` for every frame until
it reports passed or failed; such a provider may read its own NIR stream and ignore the
frames, and return no prompt if it needs no movement. `ChallengeLiveness` is the default.
"""
from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from kiosk.face.detect import Face, refine_for_pose
from kiosk.face.geometry import inter_ocular, nose_coordinates
from kiosk.face.quality import face_patch, sharpness

log = logging.getLogger(__name__)

TURN_LEFT, TURN_RIGHT, NOD, CLOSER = "turn_left", "turn_right", "nod", "closer"
CHALLENGES = (TURN_LEFT, TURN_RIGHT, NOD, CLOSER)
DEFAULT_CHALLENGES = (TURN_LEFT, TURN_RIGHT, NOD)  # "closer" is opt-in: see the module docstring
PROMPT_KEYS = {kind: f"face.challenge.{kind}" for kind in CHALLENGES}

PENDING, PASSED, FAILED = "pending", "passed", "failed"


@dataclass(frozen=True)
class ChallengeThresholds:
    """How much movement counts, and how long the citizen has to make it."""

    # Change of the nose's yaw coordinate: about 15 degrees of head turn. Photos moved by
    # hand reached 0.054 (5-frame medians, 40 sequences of 8 s): YuNet's noise sets the floor.
    turn: float = 0.10
    # Change of its pitch coordinate: about 10 degrees of nod (photos moved by hand: <= 0.040).
    nod: float = 0.07
    closer: float = 1.25  # growth of the eye distance
    baseline_frames: int = 5  # frames after the prompt whose median is the starting pose
    # The pose compared with the baseline is the median of this many recent frames: YuNet's
    # landmarks wander by up to 0.09 (yaw) when a face merely shifts in the frame (its
    # anchor grid), about 0.01-0.03 standard deviation; the median of 5 cuts that to
    # well under the thresholds while a real movement, held for a moment, comes through.
    smooth_frames: int = 5
    time_limit_s: float = 8.0  # from the prompt; unhurried for elderly citizens


@dataclass(frozen=True)
class PassiveThresholds:
    """Limits for the passive cues (module docstring), over at least `min_frames` frames."""

    max_moire: float = 3.0
    min_sharpness: float = 25.0
    max_specular: float = 0.15
    # Photos moved by hand (and brought closer) gave up to 0.028 over 40 sequences of 8 s;
    # a live face that only comes closer gives as little: see the module docstring.
    min_micro_motion: float = 0.04
    min_frames: int = 8
    window: int = 60  # the most recent frames kept (4 s at 15 fps)
    baseline_frames: int = 3  # micro-motion: the median landmarks of the first frames are the reference
    smooth_frames: int = 5  # micro-motion: residuals are averaged over this many consecutive frames


@dataclass(frozen=True)
class FrameCues:
    """What one frame contributes to the passive check: numbers and landmarks, no pixels."""

    moire: float
    sharpness: float
    specular: float
    landmarks: np.ndarray


@dataclass(frozen=True)
class PassiveResult:
    """Each cue's value over the window, which cues flagged, and the verdict."""

    moire: float
    sharpness: float
    specular: float
    micro_motion: float
    frames: int
    flags: tuple[str, ...]

    @property
    def live(self) -> bool:
        return self.frames > 0 and not self.flags


@dataclass(frozen=True)
class LivenessStatus:
    """A provider's answer for one frame: still pending (with the prompt to show), passed or
    failed (with a short technical reason for the log, never shown to the citizen)."""

    state: str
    prompt: str | None = None
    reason: str = ""
    detail: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class LivenessProvider(Protocol):
    """A liveness check the verifier drives; see the module docstring for NIR/3D cameras."""

    name: str

    def begin(self, now: float, before: Sequence[np.ndarray] = ()) -> str | None:
        """Start a fresh check (a new attempt); return the prompt key to show, or None.
        `before`: the face's landmarks in the last frames before the prompt, oldest first
        (the pose the citizen was in before being asked to move), as refined by
        kiosk.face.detect.refine_for_pose."""

    def observe(self, image: np.ndarray, face: Face, now: float) -> LivenessStatus:
        """Judge one more frame showing the citizen's face."""

    def wipe(self) -> None:
        """Forget everything kept from the frames."""


# -- passive cues ---------------------------------------------------------------------------------
_MOIRE_MAX_SIDE = 256


def moire_score(image: np.ndarray, face: Face) -> float:
    """Strongest isolated spectral peak in the middle of the face, ln(peak / surroundings).

    Measured at the camera's own resolution (a pixel grid lives at the sensor's scale; any
    resizing would average it away) on a square from the face's centre. Frequencies on
    the axes are left out: JPEG/MJPEG 8x8 blocks and the face's own horizontal and vertical
    features put energy there.
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    _x, _y, w, _h = face.box
    side = int(min(_MOIRE_MAX_SIDE, 0.7 * w)) // 2 * 2
    cx, cy = face.centre
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    x0, y0 = max(0, min(x0, grey.shape[1] - side)), max(0, min(y0, grey.shape[0] - side))
    if side < 32 or grey.shape[0] < side or grey.shape[1] < side:
        return 0.0
    patch = grey[y0:y0 + side, x0:x0 + side].astype(np.float32)
    patch -= patch.mean()
    window = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    spectrum = np.fft.fftshift(np.fft.fft2(patch * window))
    log_power = np.log(np.abs(spectrum) ** 2 + 1e-6).astype(np.float32)
    spectrum.fill(0)
    patch.fill(0)
    wide = cv2.boxFilter(log_power, -1, (9, 9), normalize=False, borderType=cv2.BORDER_REFLECT)
    near = cv2.boxFilter(log_power, -1, (3, 3), normalize=False, borderType=cv2.BORDER_REFLECT)
    peak = near / 9 - (wide - near) / 72  # 3x3 mean over the ring around it
    half = side // 2
    fy, fx = np.mgrid[-half:half, -half:half]
    radius = np.hypot(fx, fy) / half  # 1 = the sampling limit
    band = (radius >= 0.2) & (radius <= 0.95) & (np.abs(fx) > 1) & (np.abs(fy) > 1)
    return float(peak[band].max())


def specular_fraction(image: np.ndarray, face: Face) -> float:
    """Fraction of the face patch that is saturated, nearly colourless highlight in blobs."""
    patch = face_patch(image, face, colour=image.ndim == 3)
    try:
        if patch.size == 0:
            return 0.0
        if patch.ndim == 3:
            hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV)
            bright = (hsv[..., 2] >= 235) & (hsv[..., 1] <= 60)
            hsv.fill(0)
        else:
            bright = patch >= 235
        blobs = cv2.morphologyEx(bright.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        return float(blobs.mean())
    finally:
        patch.fill(0)


def micro_motion(landmarks: list[np.ndarray], baseline_frames: int = 3, smooth_frames: int = 5) -> float:
    """Sustained non-affine landmark motion over a window, in eye distances (0 = flat).

    Each frame's landmarks are fitted by the best affine map from the reference pose
    (median of the first `baseline_frames`); what the map cannot explain is the residual,
    a 5x2 vector. The residuals are averaged over `smooth_frames` consecutive frames and
    the largest average's root-mean-square is returned. The averaging matters: YuNet's
    own landmark noise (frame to frame, and much more when the face shifts against its
    anchor grid) is independent between frames and averages away; a head that turns,
    nods or changes expression moves the nose against the rest for many frames and stays.
    """
    if len(landmarks) < baseline_frames + smooth_frames:
        return 0.0
    points = np.array([np.asarray(p, np.float64).reshape(5, 2) for p in landmarks])
    reference = np.median(points[:baseline_frames], axis=0)
    design = np.hstack([reference, np.ones((5, 1))])
    rows = []
    for p in points[baseline_frames:]:
        solution, *_ = np.linalg.lstsq(design, p, rcond=None)
        rows.append(((p - design @ solution) / max(inter_ocular(p), 1e-6)).reshape(10))
    residuals = np.array(rows, np.float64)  # frames x 10
    kernel = np.ones(smooth_frames, np.float64) / smooth_frames
    smoothed = np.stack([np.convolve(residuals[:, k], kernel, mode="valid") for k in range(10)], axis=1)
    return float(np.sqrt((smoothed.reshape(len(smoothed), 5, 2) ** 2).sum(axis=2).mean(axis=1)).max())


def frame_cues(image: np.ndarray, face: Face) -> FrameCues:
    """The passive cues of one frame; the frame itself is not kept."""
    patch = face_patch(image, face)
    try:
        sharp = sharpness(patch)
    finally:
        patch.fill(0)
    return FrameCues(moire_score(image, face), sharp, specular_fraction(image, face),
                     np.array(face.landmarks, np.float64, copy=True))


class PassiveCues:
    """The passive cues of the most recent frames, and their verdict."""

    def __init__(self, thresholds: PassiveThresholds | None = None) -> None:
        self.thresholds = thresholds or PassiveThresholds()
        self._frames: deque[FrameCues] = deque(maxlen=self.thresholds.window)

    def add(self, cues: FrameCues) -> None:
        self._frames.append(cues)

    def __len__(self) -> int:
        return len(self._frames)

    def result(self) -> PassiveResult:
        t = self.thresholds
        frames = list(self._frames)
        if not frames:
            return PassiveResult(0.0, 0.0, 0.0, 0.0, 0, ("too_few_frames",))
        moire = float(np.median([f.moire for f in frames]))
        sharp = float(np.median([f.sharpness for f in frames]))
        specular = float(np.median([f.specular for f in frames]))
        micro = micro_motion([f.landmarks for f in frames], t.baseline_frames, t.smooth_frames)
        flags = []
        if len(frames) < t.min_frames:
            flags.append("too_few_frames")
        if moire > t.max_moire:
            flags.append("moire")
        if sharp < t.min_sharpness:
            flags.append("sharpness")
        if specular > t.max_specular:
            flags.append("specular")
        if micro < t.min_micro_motion:
            flags.append("micro_motion")
        return PassiveResult(moire, sharp, specular, micro, len(frames), tuple(flags))

    def wipe(self) -> None:
        for cues in self._frames:
            cues.landmarks.fill(0)
        self._frames.clear()


# -- active challenge -----------------------------------------------------------------------------
class ActiveChallenge:
    """One challenge, judged from landmarks against the pose when it started.

    `mirrored`: the frames are mirror images (as a preview shows the citizen to themself).
    In an unmirrored frame a citizen turning to THEIR left moves the nose towards the
    image's right (yaw grows); mirrored, towards the image's left.
    """

    def __init__(self, kind: str, now: float, mirrored: bool, thresholds: ChallengeThresholds | None = None,
                 before: Sequence[np.ndarray] = ()) -> None:
        if kind not in CHALLENGES:
            raise ValueError(f"unknown challenge {kind!r}; use one of {', '.join(CHALLENGES)}")
        self.kind = kind
        self.prompt_key = PROMPT_KEYS[kind]
        self.started = now
        self.mirrored = mirrored
        self.thresholds = thresholds or ChallengeThresholds()
        self.state = PENDING
        self.reason = ""
        self.progress = 0.0  # the best movement so far, as a fraction of what is needed
        # the pose before the prompt counts first: a citizen who reacts at once must not
        # have the start of the movement taken for the starting pose
        self._baseline_samples: list[tuple[float, float, float]] = [
            (*nose_coordinates(p), inter_ocular(p)) for p in list(before)[-self.thresholds.baseline_frames:]]
        self._baseline: tuple[float, float, float] | None = None
        if len(self._baseline_samples) >= min(3, self.thresholds.baseline_frames):
            self._baseline = self._median(self._baseline_samples)
        self._recent: deque[tuple[float, float, float]] = deque(maxlen=max(1, self.thresholds.smooth_frames))

    def observe(self, landmarks: np.ndarray, now: float) -> str:
        """Feed one frame's landmarks; returns the state (pending, passed, failed)."""
        if self.state != PENDING:
            return self.state
        if now - self.started > self.thresholds.time_limit_s:
            return self._end(FAILED, "timeout")
        yaw, pitch = nose_coordinates(landmarks)
        sample = (yaw, pitch, inter_ocular(landmarks))
        t = self.thresholds
        if self._baseline is None:
            self._baseline_samples.append(sample)
            if len(self._baseline_samples) >= t.baseline_frames:
                self._baseline = self._median(self._baseline_samples)
            return self.state
        self._recent.append(sample)
        if len(self._recent) < max(1, t.smooth_frames):
            return self.state
        yaw, pitch, scale = self._median(self._recent)
        base_yaw, base_pitch, base_scale = self._baseline
        if self.kind in (TURN_LEFT, TURN_RIGHT):
            towards_image_right = (self.kind == TURN_LEFT) != self.mirrored
            moved = (yaw - base_yaw) * (1 if towards_image_right else -1)
            if moved <= -t.turn:
                return self._end(FAILED, "wrong_direction")
            self.progress = max(self.progress, moved / t.turn)
        elif self.kind == NOD:
            self.progress = max(self.progress, abs(pitch - base_pitch) / t.nod)
        else:
            growth = scale / max(base_scale, 1e-6)
            self.progress = max(self.progress, (growth - 1) / (t.closer - 1))
        if self.progress >= 1.0:
            return self._end(PASSED, "")
        return self.state

    @staticmethod
    def _median(samples: Sequence[tuple[float, float, float]] | deque[tuple[float, float, float]]
                ) -> tuple[float, float, float]:
        yaw, pitch, scale = np.median(np.array(list(samples), np.float64), axis=0)
        return float(yaw), float(pitch), float(scale)

    def _end(self, state: str, reason: str) -> str:
        self.state, self.reason = state, reason
        return state


class ChallengeLiveness:
    """The built-in LivenessProvider: a random active challenge plus the passive cues.

    Passed when the challenge's movement is made AND the passive cues of the frames since
    the prompt raise no flag that counts, within the challenge's time limit (after the
    movement it waits for the cues rather than failing at once: a cue may still settle).
    For turn and nod the micro-motion flag does not count: the challenge itself measured
    the same thing, the nose moving against a flat face's frame, more directly and with
    less noise (0.10 needed for a turn; hand-moved photos <= 0.054), and counting it again
    only turned small live nods away. For "closer" every flag counts, micro-motion above
    all: coming closer is something a photo can do.
    """

    name = "builtin-challenge"

    def __init__(self, challenges: tuple[str, ...] = DEFAULT_CHALLENGES, mirrored: bool = True,
                 challenge_thresholds: ChallengeThresholds | None = None,
                 passive_thresholds: PassiveThresholds | None = None,
                 rng: random.Random | None = None) -> None:
        unknown = [c for c in challenges if c not in CHALLENGES]
        if not challenges or unknown:
            raise ValueError(f"challenges must be a non-empty subset of {CHALLENGES}, got {challenges}")
        self.challenges = tuple(challenges)
        self.mirrored = mirrored
        self.challenge_thresholds = challenge_thresholds or ChallengeThresholds()
        self.passive_thresholds = passive_thresholds or PassiveThresholds()
        self._rng = rng or random.SystemRandom()
        self.challenge: ActiveChallenge | None = None
        self.passive = PassiveCues(self.passive_thresholds)
        self.last_passive: PassiveResult | None = None
        self.state = PENDING
        self.reason = ""

    def begin(self, now: float, before: Sequence[np.ndarray] = (), kind: str | None = None) -> str | None:
        """A fresh challenge (`kind`, or one drawn at random) and an empty passive window.
        With at least 3 frames' landmarks `before` the prompt, they are the starting pose;
        otherwise the first frames after it are."""
        self.passive.wipe()
        self.last_passive = None
        self.state, self.reason = PENDING, ""
        self.challenge = ActiveChallenge(kind or self._rng.choice(self.challenges), now, self.mirrored,
                                         self.challenge_thresholds, before)
        return self.challenge.prompt_key

    def counted_flags(self, result: PassiveResult) -> tuple[str, ...]:
        """The passive flags that stop this challenge from passing (see the class docstring)."""
        waived = {"micro_motion"} if self.challenge is not None and self.challenge.kind != CLOSER else set()
        return tuple(flag for flag in result.flags if flag not in waived)

    def observe(self, image: np.ndarray, face: Face, now: float) -> LivenessStatus:
        challenge = self.challenge
        if challenge is None:
            raise RuntimeError("ChallengeLiveness.observe before begin")
        if self.state != PENDING:
            return self._status()
        face = refine_for_pose(image, face)
        self.passive.add(frame_cues(image, face))
        active = challenge.observe(face.landmarks, now)
        if active == FAILED:
            self.last_passive = self.passive.result()
            self.state, self.reason = FAILED, challenge.reason
        elif active == PASSED:
            self.last_passive = self.passive.result()
            flags = self.counted_flags(self.last_passive)
            if not flags:
                self.state = PASSED
            elif now - challenge.started > self.challenge_thresholds.time_limit_s:
                self.state, self.reason = FAILED, "passive:" + ",".join(flags)
        return self._status()

    def _status(self) -> LivenessStatus:
        challenge = self.challenge
        assert challenge is not None
        detail = {"progress": round(challenge.progress, 3)}
        if self.last_passive is not None:
            p = self.last_passive
            detail.update(moire=round(p.moire, 3), sharpness=round(p.sharpness, 1), specular=round(p.specular, 4),
                          micro_motion=round(p.micro_motion, 4))
        return LivenessStatus(self.state, challenge.prompt_key if self.state == PENDING else None, self.reason, detail)

    def wipe(self) -> None:
        self.passive.wipe()
        self.challenge = None
        self.last_passive = None
        self.state, self.reason = PENDING, ""
