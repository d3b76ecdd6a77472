"""The face check of a visit, run on its own thread: camera frames -> verifier -> visit.

When the visit reaches the face step (the card was read), a worker takes the card photo as
the reference, feeds the camera's newest frames to `kiosk.face.verifier.FaceVerifier` and
tells the visit what the citizen should do, then that it passed (with signed evidence for
the platform) or failed (with the reason the finish screen explains). Frames never leave
memory; the reference, the verifier's state and the preview are wiped when the step ends.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from config.schema import FaceSection
from devices.base import DeviceError
from kiosk.face.reference import ReferenceError, reference_from_bytes
from kiosk.face.verifier import FAILED, PASSED, FaceVerifier, Settings
from kiosk.visit import Step, View, Visit

log = logging.getLogger(__name__)

REASON_CAMERA = "face.failed.camera"
REASON_NO_REFERENCE = "face.failed.no_reference"
NO_FRAMES_S = 5.0  # no picture for this long: the camera is not usable for this visit


def verifier_settings(cfg: FaceSection, mirrored: bool) -> Settings:
    return Settings(id_photo_threshold=cfg.id_photo_threshold, live_threshold=cfg.live_threshold,
                    attempts=cfg.attempts, time_limit_s=cfg.time_limit_s, challenges=tuple(cfg.challenges),
                    mirrored=mirrored)


class FaceCheck:
    """Starts a worker per visit that reaches the face step; one at a time."""

    def __init__(self, visit: Visit, cfg: FaceSection, camera: Callable[[], Any], *,
                 mirrored: bool = True, signer: Callable[[], Any] = lambda: None,
                 on_prompt: Callable[[str | None], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.visit = visit
        self.settings = verifier_settings(cfg, mirrored)
        self.camera = camera  # -> the camera device, or None when the terminal has none
        self.signer = signer  # -> the terminal's KeyPair, or None when not enrolled
        self.on_prompt = on_prompt  # the emulated citizen follows the prompts (emulated camera only)
        self.clock = clock
        self._worker: threading.Thread | None = None
        self._preview: np.ndarray | None = None
        self._lock = threading.Lock()
        visit.subscribe(self._on_view)

    def preview(self) -> np.ndarray | None:
        """The frame the check saw last, for the screen's live picture (only during the step)."""
        with self._lock:
            return self._preview

    def _on_view(self, view: View) -> None:
        if view.step is Step.FACE and view.reason == "card":
            session = self.visit.session
            self._worker = threading.Thread(target=self._run, args=(session,), name="face-check", daemon=True)
            self._worker.start()

    def join(self, timeout: float | None = None) -> None:
        if self._worker is not None:
            self._worker.join(timeout)

    def _still_on(self, session: Any) -> bool:
        return self.visit.step is Step.FACE and self.visit.session is session

    # -- the worker ----------------------------------------------------------------------------
    def _run(self, session: Any) -> None:
        verifier = FaceVerifier(self.settings)
        reference = None
        try:
            photo = getattr(session.identity, "photo_bmp", None)
            try:
                if not photo:
                    raise ReferenceError("the card reader gave no photo")
                reference = reference_from_bytes(photo)
            except ReferenceError as exc:
                log.warning("face check impossible: %s", exc)
                self.visit.face_failed(REASON_NO_REFERENCE)
                return
            verifier.start(reference.embedding, self.clock(), reference.method)
            self._feed(session, verifier)
        except Exception:  # the visit must end calmly whatever broke here
            log.exception("face check failed unexpectedly")
            self.visit.face_failed(REASON_CAMERA)
        finally:
            verifier.wipe()
            if reference is not None:
                reference.wipe()
            with self._lock:
                self._preview = None

    def _feed(self, session: Any, verifier: FaceVerifier) -> None:
        last_seq, last_frame_at, said = -1, self.clock(), ""
        while self._still_on(session):
            frame = self._next_frame(last_seq)
            now = self.clock()
            if frame is None:
                if now - last_frame_at > NO_FRAMES_S:
                    log.warning("face check: no camera picture for %.0f s", NO_FRAMES_S)
                    self.visit.face_failed(REASON_CAMERA)
                    return
                continue
            last_seq, last_frame_at = frame.seq, now
            with self._lock:
                self._preview = frame.image
            progress = verifier.feed(frame.image, now)
            if progress.stage == PASSED or progress.stage == FAILED:
                self._decide(session, verifier, progress)
                return
            self.visit.face_update(progress.key)
            if self.on_prompt is not None and progress.key != said:
                self.on_prompt(progress.key)
            said = progress.key or ""

    def _next_frame(self, last_seq: int) -> Any:
        camera = self.camera()
        if camera is None:
            time.sleep(0.2)
            return None
        try:
            return camera.latest_frame(newer_than=last_seq, timeout_s=0.5)
        except DeviceError:
            time.sleep(0.2)  # the supervisor is reopening it; the deadline above decides
            return None

    def _decide(self, session: Any, verifier: FaceVerifier, progress: Any) -> None:
        evidence = verifier.evidence()
        keypair = self.signer()
        if keypair is not None:
            evidence = evidence.sign(keypair)
        log.info("face check %s (score %s, liveness %s)", progress.stage, evidence.score, evidence.liveness)
        if not self._still_on(session):
            return
        if progress.stage == PASSED:
            self.visit.face_passed(evidence.face_check())
        else:
            self.visit.face_failed(progress.key or REASON_CAMERA)


# the emulated citizen's answer to each challenge (yaw + = their left, as the emulator has it)
_ACT_OUT: dict[str, dict[str, float]] = {
    "face.challenge.turn_left": {"yaw": 35.0},
    "face.challenge.turn_right": {"yaw": -35.0},
    "face.challenge.nod": {"pitch": 25.0},
    "face.challenge.closer": {"closer": 1.4},
}


def cooperative_citizen(emulator: Any) -> Callable[[str | None], None]:
    """An emulated citizen who does what the voice asks (for emulated cameras only)."""
    def act(key: str | None) -> None:
        pose = getattr(emulator, "pose", None)
        if pose is None or not getattr(emulator, "cooperative", True):
            return
        pose(**_ACT_OUT.get(key or "", {}))  # anything else: look straight at the camera again
    return act
