"""OpenCV VideoCapture driver: USB/V4L2 cameras, network cameras, video files.

Sources (`source`):

- a device index (0) or path (/dev/video0, /dev/v4l/by-id/...): OpenCV's V4L2 backend
  on Linux; `width`, `height` and `fps` are asked of the camera;
- a URL (http://host/stream.mjpg, rtsp://...): FFmpeg, with open and read deadlines of
  `frame_timeout_s`, so an unreachable or hung camera cannot block for FFmpeg's default
  30 s; user:password in a URL never appears in statuses or logs;
- a file (a video, an image, or an image sequence such as frames/%04d.jpg): FFmpeg,
  played at `fps` and looped.

One grabber thread per open camera reads continuously and keeps only the latest frame,
so a caller always gets the newest picture and never a backlog. A picture of another
size than `width` x `height` (a network camera or file chooses its own) is scaled to
cover that size and centre-cropped, never distorted. Then it is rotated by `rotation`
degrees clockwise and, with `mirror` (the default), flipped left-right, as a kiosk shows
the citizen a mirror image. Face checks therefore see mirrored frames: the citizen's own
left is on the left of the picture.

Losing the camera: a failed read (cable pulled, stream cut, FFmpeg's read deadline) ends
the grabber, sets the status OFFLINE with the fault in a technician's words and makes
latest_frame() raise DeviceDisconnected. A grabber stuck in a driver call (a V4L2 camera
that hangs) is caught by poll(): no frame for `frame_timeout_s` raises DeviceDisconnected.
Either way the supervisor reopens the camera with back-off. Only pictures that stay
blank (uniform) for BLANK_AFTER_S count as HARDWARE_ERROR; it clears by itself.

Privacy: frames hold a citizen's face. They are kept in memory, dropped on close or loss,
and never written to disk or logged.
"""
from __future__ import annotations

import collections
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from devices.base import DeviceDisconnected, DeviceError, DeviceState, SelfTestResult
from devices.camera.interface import Camera, Frame

log = logging.getLogger(__name__)

BLANK_SPREAD = 4.0  # grey-level standard deviation below which a picture counts as blank
BLANK_AFTER_S = 5.0  # blank this long: a covered lens or a dead sensor, not a passing shadow
MIN_FPS_SHARE = 1 / 3  # the self-test fails below this share of the configured frame rate
_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}

SourceKind = Literal["device", "url", "file"]


def picture_spread(image: np.ndarray) -> float:
    """How far a picture is from uniform (std of a coarse sample): cheap enough per frame."""
    return float(np.std(image[::8, ::8]))


def source_kind(source: int | str) -> SourceKind:
    if isinstance(source, int) or source.isdecimal() or source.startswith("/dev/"):
        return "device"
    return "url" if "://" in source else "file"


def usable_source(value: int | str) -> int | str:
    """The one check of a camera `source`, shared by every driver that opens an OpenCvCamera, so
    config load refuses what the camera would refuse later (a traceback at start-up)."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a device index is 0 or more")
        return value
    value = value.strip()
    if not value:
        raise ValueError("give a device index, device path, URL or file")
    return int(value) if value.isdecimal() else value


# the `source` parameter's type in each driver's Params
CameraSource = Annotated[int | str, AfterValidator(usable_source)]


def shown_source(source: int | str) -> str:
    """The source as statuses and logs may show it: a URL's user:password is hidden."""
    if isinstance(source, int) or source.isdecimal():
        return f"/dev/video{int(source)}" if sys.platform.startswith("linux") else f"index {int(source)}"
    if "://" not in source:
        return source
    parts = urlsplit(source)
    if parts.username is None and parts.password is None:
        return source
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class _Session:
    """One opening of the camera: its capture, its grabber and what the grabber saw."""

    cap: cv2.VideoCapture
    started: float
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    up: bool = False  # open() finished: the grabber may change the status from now on
    ended: bool = False
    failure: str = ""
    frames: int = 0
    last_at: float = 0.0
    native: tuple[int, int] = (0, 0)  # width, height as the camera gives them
    blank_since: float | None = None
    times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=256))


class OpenCvCamera(Camera):
    """A camera read through OpenCV's VideoCapture, latest frame kept by a grabber thread."""

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the opencv camera driver."""

        model_config = ConfigDict(extra="forbid")

        source: CameraSource = Field(
            description="Device index (0) or path (/dev/video0, /dev/v4l/by-id/...), a network camera URL "
            "(http://host/stream.mjpg, rtsp://...), or a video/image file or image sequence (frames/%04d.jpg)",
        )
        width: int = Field(default=640, ge=16, le=7680, description="Frame width delivered, before rotation")
        height: int = Field(default=480, ge=16, le=4320, description="Frame height delivered, before rotation")
        fps: float = Field(default=15, gt=0, le=120,
                           description="Frame rate asked of a camera, and the playing speed of a file")
        rotation: Literal[0, 90, 180, 270] = Field(
            default=0, description="Degrees clockwise to turn the picture upright (a camera mounted on its side)"
        )
        mirror: bool = Field(
            default=True,
            description="Flip frames left-right (after rotation), as a kiosk preview is a mirror; "
            "applies to every frame delivered, so face checks see the mirrored picture too",
        )
        frame_timeout_s: float = Field(
            default=2.0, gt=0, le=60,
            description="No frame for this long counts as a lost camera; also FFmpeg's open and read deadline",
        )

    def __init__(
        self,
        name: str,
        *,
        source: int | str,
        width: int = 640,
        height: int = 480,
        fps: float = 15,
        rotation: Literal[0, 90, 180, 270] = 0,
        mirror: bool = True,
        frame_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(name)
        self.params = self.Params(source=source, width=width, height=height, fps=fps, rotation=rotation,
                                  mirror=mirror, frame_timeout_s=frame_timeout_s)
        self.kind = source_kind(self.params.source)
        self.blank_after_s = BLANK_AFTER_S  # tests shorten it
        self._session: _Session | None = None
        self._cond = threading.Condition()  # guards _frame and _seq; wakes latest_frame()
        self._status_guard = threading.RLock()  # "is this session current?" + status change, atomically
        self._frame: Frame | None = None
        self._seq = 0
        self._failure = ""  # why the camera was lost or did not open, until it opens again

    # -- words for technicians -------------------------------------------------------------------
    def _where(self) -> str:
        return f"camera {shown_source(self.params.source)}"

    def _hint(self) -> str:
        if self.kind == "device":
            return "check the camera's USB cable and that no other program is using the camera"
        if self.kind == "url":
            return ("check that the network camera is powered and reachable (its network cable, "
                    f"and the address in [devices.{self.name}] source)")
        return f"check the file named in [devices.{self.name}] source"

    def _unavailable(self) -> DeviceDisconnected:
        """Why there are no frames: the last loss or failed open, else "not open"."""
        return DeviceDisconnected(self._failure or f"{self._where()} is not open")

    # -- lifecycle ----------------------------------------------------------------------------------
    def _capture(self) -> cv2.VideoCapture:
        """A new, opened VideoCapture; DeviceDisconnected naming what to check if it does not open."""
        source = self.params.source
        if self.kind == "file":
            path = Path(str(source))
            if not (path.exists() or ("%" in path.name and path.parent.is_dir())):
                raise DeviceDisconnected(f"cannot open {self._where()}: no such file; {self._hint()}")
        try:
            if self.kind == "device":
                api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
                cap = cv2.VideoCapture(source, api)
                if cap.isOpened():
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.params.width)
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.params.height)
                    cap.set(cv2.CAP_PROP_FPS, self.params.fps)
                    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            else:
                deadline_ms = int(self.params.frame_timeout_s * 1000)
                cap = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, deadline_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, deadline_ms,
                ])
        except cv2.error as exc:
            raise DeviceDisconnected(f"cannot open {self._where()} ({exc.err}); {self._hint()}") from None
        if not cap.isOpened():
            cap.release()
            if self.kind == "device":
                what = "the camera does not open"
            elif self.kind == "url":
                what = f"no stream there (refused, or no answer within {self.params.frame_timeout_s:g} s)"
            else:
                what = "not a video or image OpenCV can play"
            raise DeviceDisconnected(f"cannot open {self._where()}: {what}; {self._hint()}")
        return cap

    def _open(self) -> None:
        try:
            self._open_session()
        except DeviceDisconnected as exc:
            self._failure = str(exc)
            raise
        self._failure = ""

    def _open_session(self) -> None:
        self._end_session()
        session = _Session(self._capture(), started=time.monotonic())
        session.last_at = session.started
        with self._status_guard:
            self._session = session
        session.thread = threading.Thread(target=self._grab, args=(session,), name=f"camera-{self.name}",
                                          daemon=True)
        session.thread.start()
        with self._cond:
            self._cond.wait_for(lambda: session.frames > 0 or session.ended, timeout=self.params.frame_timeout_s)
        if session.frames == 0:
            failure = session.failure or (
                f"{self._where()} gives no frames (none within {self.params.frame_timeout_s:g} s of opening); "
                f"{self._hint()}"
            )
            self._end_session(session)
            raise DeviceDisconnected(failure)
        with self._status_guard:
            if self._session is not session:  # lost while we waited: the status already says why
                raise DeviceDisconnected(session.failure or f"{self._where()} was lost while opening")
            session.up = True
            self.set_status(DeviceState.ONLINE, fault="")
        width, height = session.native
        log.info("%s online: %dx%d from the camera, %dx%d delivered", self._where(), width, height,
                 self.params.width, self.params.height)

    def _close(self) -> None:
        self._end_session()

    def _end_session(self, session: _Session | None = None) -> None:
        """Stop the grabber of `session` (default: the current one) and drop its frames."""
        with self._status_guard:
            session = session or self._session
            if session is None:
                return
            if self._session is session:
                self._session = None
        session.stop.set()
        with self._cond:
            self._frame = None
            self._cond.notify_all()
        thread = session.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.params.frame_timeout_s + 1.0)
            if thread.is_alive():  # stuck in a driver call; it releases the capture when that returns
                log.warning("%s: grabber still blocked in the camera driver; abandoned", self._where())
        elif thread is None:
            session.cap.release()

    # -- the grabber ----------------------------------------------------------------------------------
    def _grab(self, session: _Session) -> None:
        """Read continuously, keep the latest frame; end the session on the first failure."""
        period = 1.0 / self.params.fps if self.kind == "file" else 0.0
        next_at = time.monotonic()
        try:
            while not session.stop.is_set():
                ok, image = session.cap.read()
                if session.stop.is_set():
                    return
                if not ok or image is None or image.size == 0:
                    if self.kind == "file" and session.frames and self._rewind(session):
                        continue
                    self._lost(session, self._read_failure(session))
                    return
                self._deliver(session, image)
                if period:  # a file plays at the configured rate, not as fast as it decodes
                    next_at = max(next_at + period, time.monotonic() - period)
                    session.stop.wait(max(0.0, next_at - time.monotonic()))
        except Exception as exc:  # a broken frame or backend must become a status, not a dead thread
            log.exception("%s: grabber failed", self._where())
            self._lost(session, f"{self._where()} failed ({type(exc).__name__}); {self._hint()}")
        finally:
            session.cap.release()

    def _rewind(self, session: _Session) -> bool:
        """Loop a file: reopen it from the start. False if it does not reopen."""
        session.cap.release()
        try:
            session.cap = self._capture()
        except DeviceDisconnected as exc:
            session.failure = str(exc)
            return False
        return True

    def _read_failure(self, session: _Session) -> str:
        silent = time.monotonic() - session.last_at
        if self.kind == "file":
            return f"{self._where()} could not be read after {session.frames} frames; {self._hint()}"
        if session.frames == 0:
            return f"{self._where()} gives no frames; {self._hint()}"
        if silent >= 0.9 * self.params.frame_timeout_s:
            return f"{self._where()} gave no frame for {silent:.1f} s; {self._hint()}"
        return f"{self._where()} stopped giving frames (the stream ended or a read failed); {self._hint()}"

    def _shape(self, image: np.ndarray, session: _Session) -> np.ndarray:
        """Size, rotation and mirroring as configured; always a new, read-only array."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        height, width = image.shape[:2]
        session.native = (width, height)
        want_w, want_h = self.params.width, self.params.height
        if (width, height) != (want_w, want_h):  # cover, then centre-crop: faces keep their shape
            scale = max(want_w / width, want_h / height)
            size = (max(want_w, math.ceil(width * scale)), max(want_h, math.ceil(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            x0, y0 = (size[0] - want_w) // 2, (size[1] - want_h) // 2
            image = image[y0:y0 + want_h, x0:x0 + want_w]
        if self.params.rotation:
            image = cv2.rotate(image, _ROTATIONS[self.params.rotation])
        if self.params.mirror:
            image = cv2.flip(image, 1)
        image = np.ascontiguousarray(image)
        image.flags.writeable = False
        return image

    def _deliver(self, session: _Session, raw: np.ndarray) -> None:
        image = self._shape(raw, session)
        now = time.monotonic()
        with self._cond:
            if self._session is not session:
                return
            self._seq += 1
            self._frame = Frame(image, self._seq, now)
            session.frames += 1
            session.last_at = now
            session.times.append(now)
            self._cond.notify_all()
        self._watch_blank(session, picture_spread(image) < BLANK_SPREAD, now)

    def _watch_blank(self, session: _Session, blank: bool, now: float) -> None:
        if not blank:
            session.blank_since = None
        elif session.blank_since is None:
            session.blank_since = now
        blank_for = now - session.blank_since if session.blank_since is not None else 0.0
        with self._status_guard:
            if self._session is not session or not session.up:
                return
            state = self.status().device
            if blank and state == DeviceState.ONLINE and blank_for >= self.blank_after_s:
                self.set_status(DeviceState.HARDWARE_ERROR, fault=(
                    f"{self._where()} gives only blank (uniform) pictures: check that nothing covers "
                    "the lens and that the kiosk's light is on; if so, the camera is faulty"
                ))
            elif not blank and state == DeviceState.HARDWARE_ERROR:
                self.set_status(DeviceState.ONLINE, fault="")

    def _lost(self, session: _Session, message: str) -> None:
        session.ended = True
        if not session.failure:
            session.failure = message
        with self._status_guard:
            current = self._session is session
            if current:
                self._session = None
                self._failure = message
                log.warning("%s lost: %s", self.name, message)
                self.set_status(DeviceState.OFFLINE, fault=message)
        with self._cond:
            if current:
                self._frame = None
            self._cond.notify_all()

    # -- verbs ----------------------------------------------------------------------------------------
    def latest_frame(self, newer_than: int = -1, timeout_s: float = 1.0) -> Frame | None:
        """See Camera.latest_frame."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._session is None:
                    raise self._unavailable()
                frame = self._frame
                if frame is not None and frame.seq > newer_than:
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def measured_fps(self, window_s: float = 2.0) -> float:
        """Frames a second over the last `window_s` (0.0 when there are too few frames)."""
        session = self._session
        if session is None:
            return 0.0
        with self._cond:
            times = list(session.times)
        recent = [t for t in times if t >= times[-1] - window_s] if times else []
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    # -- supervision ----------------------------------------------------------------------------------
    def poll(self) -> None:
        """Raise DeviceDisconnected when the camera is gone or silent for frame_timeout_s."""
        session = self._session
        if session is None:
            raise self._unavailable()
        silent = time.monotonic() - session.last_at
        if silent > self.params.frame_timeout_s:  # the grabber is stuck in the camera driver
            self._failure = f"{self._where()} gave no frame for {silent:.1f} s; {self._hint()}"
            raise DeviceDisconnected(self._failure)

    # -- self-test --------------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """Frame grabbed, picture not blank, resolution, frame rate: each in a technician's words."""
        results: list[SelfTestResult] = []
        opened_here = False
        if self._session is None:
            try:
                self.open()
                opened_here = True
            except DeviceError as exc:
                return [SelfTestResult("frame grabbed", False, str(exc))]
        try:
            frame = self.latest_frame(timeout_s=self.params.frame_timeout_s)
            if frame is None:
                results.append(SelfTestResult("frame grabbed", False, (
                    f"{self._where()} gave no frame within {self.params.frame_timeout_s:g} s; {self._hint()}")))
                return results
            results.append(SelfTestResult("frame grabbed", True, f"{self._where()} delivers frames"))
            results.append(self._blank_result(frame))
            results.append(self._resolution_result(frame))
            results.append(self._rate_result())
        except DeviceDisconnected as exc:
            results.append(SelfTestResult("frame grabbed", False, str(exc)))
        finally:
            if opened_here:
                self.close()
        return results

    def _blank_result(self, frame: Frame) -> SelfTestResult:
        spread = picture_spread(frame.image)
        if spread < BLANK_SPREAD:
            return SelfTestResult("picture not blank", False, (
                f"the picture is uniform (spread {spread:.1f} grey levels): check that nothing covers the lens "
                "and that the kiosk's light is on; if so, the camera is faulty"))
        return SelfTestResult("picture not blank", True, f"the picture has detail (spread {spread:.0f} grey levels)")

    def _resolution_result(self, frame: Frame) -> SelfTestResult:
        height, width = frame.image.shape[:2]
        session = self._session
        native_w, native_h = session.native if session is not None else (width, height)
        want_w, want_h = self.params.width, self.params.height
        turned = f", turned {self.params.rotation} degrees" if self.params.rotation else ""
        mirrored = ", mirrored" if self.params.mirror else ""
        detail = f"{width}x{height} delivered{turned}{mirrored}; the camera gives {native_w}x{native_h}"
        if native_w < want_w and native_h < want_h:
            return SelfTestResult("resolution", False, (
                f"{detail}, less than the configured {want_w}x{want_h}: pictures are enlarged and faces blur; "
                f"check the camera model and width/height in [devices.{self.name}]"))
        if (native_w, native_h) != (want_w, want_h):
            detail += f", scaled and cropped to {want_w}x{want_h}"
        return SelfTestResult("resolution", True, detail)

    def _rate_result(self) -> SelfTestResult:
        session = self._session
        if session is not None:  # measure over at least a second of streaming
            wait = session.started + 1.0 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        fps = self.measured_fps()
        want = self.params.fps
        detail = f"{fps:.1f} frames a second measured (configured {want:g})"
        if fps < want * MIN_FPS_SHARE:
            return SelfTestResult("frame rate", False, (
                f"{detail}: too slow for face checks; check the lighting (cameras slow down in the dark), "
                "the USB port (use USB 2 or better, no hub) or the network camera's settings"))
        return SelfTestResult("frame rate", True, detail)
