"""Document camera (高拍仪) driver: a camera looking down on a base, pages found in its frames.

The camera itself is an OpenCvCamera (devices.camera.driver), held, not inherited: it
grabs continuously in its own thread, keeps the latest frame, notices a lost camera
and reconnects when the supervisor reopens this device; its status is mirrored here.
Frames are not mirrored by default (`mirror` false): a document must not come out
reversed, unlike a face preview. `rotation` turns the picture so that its top is the
base's far side, where the top of a page lies.

scan(): frames are taken as they come until one shows a page that is

1. found (devices.scanner.page.find_page: its four corners),
2. inside the picture and big enough (not touching the border, `min_area_fraction`),
3. steady: its corners moved less than `steady_tolerance` of the picture's width over
   `steady_frames` consecutive frames (a hand still moving it would blur it),
4. readable once straightened: sharp, not too dark, no glare (page.judge with this
   driver's thresholds),

or until `time_limit_s` passes. Meanwhile on_progress(fraction, hint) tells the screen
what to ask of the citizen: place_page, centre_page, move_closer, hold_still,
too_dark, too_bright, blurred; the fraction is how close the camera is to taking the
picture (it drops when the page moves or goes). The page is returned straightened to
the paper's aspect (`paper`) at the resolution the camera gives it (a 1600x1200
camera gives an A4 page ~90 dpi). At the time limit: NoPageFound when the last frames
showed no page, else PageUnreadable with the last verdict (its first problem is what
the citizen should fix).

Cost per frame at 1600x1200 (bench/document_scan.py): detection ~4 ms (on an 800-wide
copy), straightening + measures ~15 ms.

Privacy: frames and pages are citizens' documents, in memory only, never logged.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceEvent,
    DeviceState,
    DeviceTimeout,
    MediaState,
    SelfTestResult,
)
from devices.camera.driver import CameraSource, OpenCvCamera
from devices.scanner import page as pagelib
from devices.scanner.interface import (
    NoPageFound,
    PageUnreadable,
    Phase,
    Problem,
    ProgressCallback,
    Readability,
    ScannedPage,
    Scanner,
)

log = logging.getLogger(__name__)

PAPER_MM = {"A4": (210.0, 297.0), "A5": (148.0, 210.0), "B5": (176.0, 250.0), "letter": (215.9, 279.4)}
_GEOMETRY = (Problem.NO_PAGE, Problem.CUT_OFF, Problem.TOO_SMALL)


class DocumentCamera(Scanner):
    """A document camera (高拍仪) read through OpenCV; see the module notes."""

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the document_camera driver."""

        model_config = ConfigDict(extra="forbid")

        source: CameraSource = Field(description=(
            "The camera: device index (0) or path (/dev/video0, /dev/v4l/by-id/...), or a network camera URL "
            "(http://host/stream.mjpg)"))
        width: int = Field(default=1600, ge=320, le=7680, description="Frame width asked of the camera")
        height: int = Field(default=1200, ge=240, le=4320, description="Frame height asked of the camera")
        fps: float = Field(default=10, gt=0, le=60, description="Frame rate asked of the camera")
        rotation: Literal[0, 90, 180, 270] = Field(
            default=0, description="Degrees clockwise that put the base's far side at the top of the picture")
        mirror: bool = Field(default=False, description="Flip frames left-right (only for a camera that mirrors)")
        frame_timeout_s: float = Field(default=2.0, gt=0, le=60,
                                       description="No frame for this long counts as a lost camera")
        time_limit_s: float = Field(default=20.0, gt=0, le=300, description=(
            "How long scan() waits for a steady, readable page before giving up"))
        steady_frames: int = Field(default=3, ge=1, le=30,
                                   description="Consecutive frames the page must lie still before it is taken")
        steady_tolerance: float = Field(default=0.01, gt=0, le=0.2, description=(
            "Corner movement between frames that still counts as still, as a fraction of the picture's width"))
        paper: Literal["A4", "A5", "B5", "letter"] = Field(
            default="A4", description="Paper size the page is straightened to (its aspect ratio and dpi)")
        min_sharpness: float = Field(default=pagelib.CAMERA_LIMITS.min_sharpness, ge=0,
                                     description="Least focus measure (tile variance of the Laplacian)")
        min_white_level: float = Field(default=pagelib.CAMERA_LIMITS.min_white_level, ge=0, le=255,
                                       description="Least grey level of the paper's white (95th percentile)")
        max_clipped_fraction: float = Field(default=pagelib.CAMERA_LIMITS.max_clipped_fraction, ge=0, le=1,
                                            description="Largest share of saturated pixels (glare)")
        min_area_fraction: float = Field(default=pagelib.CAMERA_LIMITS.min_area_fraction, ge=0, le=1,
                                         description="Least share of the picture the page must cover")

    def __init__(
        self,
        name: str,
        *,
        source: int | str,
        width: int = 1600,
        height: int = 1200,
        fps: float = 10,
        rotation: Literal[0, 90, 180, 270] = 0,
        mirror: bool = False,
        frame_timeout_s: float = 2.0,
        time_limit_s: float = 20.0,
        steady_frames: int = 3,
        steady_tolerance: float = 0.01,
        paper: Literal["A4", "A5", "B5", "letter"] = "A4",
        min_sharpness: float = pagelib.CAMERA_LIMITS.min_sharpness,  # type: ignore[assignment]
        min_white_level: float = pagelib.CAMERA_LIMITS.min_white_level,  # type: ignore[assignment]
        max_clipped_fraction: float = pagelib.CAMERA_LIMITS.max_clipped_fraction,  # type: ignore[assignment]
        min_area_fraction: float = pagelib.CAMERA_LIMITS.min_area_fraction,  # type: ignore[assignment]
    ) -> None:
        super().__init__(name)
        self.params = self.Params(
            source=source, width=width, height=height, fps=fps, rotation=rotation, mirror=mirror,
            frame_timeout_s=frame_timeout_s, time_limit_s=time_limit_s, steady_frames=steady_frames,
            steady_tolerance=steady_tolerance, paper=paper, min_sharpness=min_sharpness,
            min_white_level=min_white_level, max_clipped_fraction=max_clipped_fraction,
            min_area_fraction=min_area_fraction)
        p = self.params
        self.camera = OpenCvCamera(name, source=p.source, width=p.width, height=p.height, fps=p.fps,
                                   rotation=p.rotation, mirror=p.mirror, frame_timeout_s=p.frame_timeout_s)
        self.limits = pagelib.ReadabilityLimits(
            min_sharpness=p.min_sharpness, min_white_level=p.min_white_level,
            max_clipped_fraction=p.max_clipped_fraction, min_area_fraction=p.min_area_fraction)
        paper_w, paper_h = PAPER_MM[p.paper]
        self.aspect = paper_w / paper_h
        self.paper_height_mm = paper_h
        self._lock = threading.Lock()  # one scan at a time
        self._scanning = False
        self.camera.subscribe(self._mirror_status)

    # -- status: the camera's, BUSY while scanning -------------------------------------------------
    def _mirror_status(self, event: DeviceEvent) -> None:
        if event.kind != "status_changed":
            return
        state = DeviceState(event.data["device"])
        if self._scanning and state == DeviceState.ONLINE:
            return  # stays BUSY until the scan ends
        self.set_status(state, None, event.data.get("fault", ""))

    def _settle(self, media: MediaState) -> None:
        camera = self.camera.status()
        self.set_status(camera.device, media, camera.fault)

    # -- lifecycle ---------------------------------------------------------------------------------
    def _open(self) -> None:
        self.camera.open()
        self._settle(MediaState.UNKNOWN)

    def _close(self) -> None:
        self.camera.close()

    def poll(self) -> None:
        """The camera's: DeviceDisconnected when it is gone or silent."""
        self.camera.poll()

    # -- scanning ----------------------------------------------------------------------------------
    def scan(self, on_progress: ProgressCallback | None = None) -> ScannedPage:
        """See Scanner.scan and the module notes."""
        if not self._lock.acquire(blocking=False):
            raise DeviceError(f"document camera {self.name} is already scanning")
        report = _Hints(on_progress)
        media = MediaState.UNKNOWN
        try:
            self._scanning = True
            if self.camera.status().device in (DeviceState.ONLINE, DeviceState.HARDWARE_ERROR):
                self.set_status(DeviceState.BUSY, None, "")
            page = self._look(report)
            media = MediaState.PRESENT
            return page
        except NoPageFound:
            media = MediaState.ABSENT
            raise
        except PageUnreadable:
            media = MediaState.PRESENT
            raise
        finally:
            self._scanning = False
            self._settle(media)
            self._lock.release()

    def _look(self, report: _Hints) -> ScannedPage:
        p = self.params
        started = time.monotonic()
        deadline = started + p.time_limit_s
        seq = -1
        previous: pagelib.PageOutline | None = None
        still = 0
        verdict = Readability((Problem.NO_PAGE,))
        last_frame_at = started
        report(0.0, Phase.STARTING)
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            frame = self.camera.latest_frame(newer_than=seq, timeout_s=min(deadline - now, p.frame_timeout_s))
            if frame is None:
                if time.monotonic() - last_frame_at >= p.frame_timeout_s:
                    raise DeviceTimeout(f"document camera {self.name} gave no frame for {p.frame_timeout_s:g} s "
                                        "during a scan; check its cable")
                continue
            seq, last_frame_at = frame.seq, time.monotonic()
            outline = pagelib.find_page(frame.image)
            if outline is None:
                previous, still = None, 0
                verdict = Readability((Problem.NO_PAGE,))
                report(0.0, Phase.PLACE_PAGE)
                continue
            tolerance = p.steady_tolerance * frame.image.shape[1]  # the picture's width, after rotation
            moving = previous is not None and outline.shift(previous) > tolerance
            still = 1 if previous is None or moving else still + 1
            previous = outline
            page = pagelib.correct_perspective(frame.image, outline.corners, self.aspect)
            verdict = pagelib.judge(pagelib.measure(page), self.limits, outline)
            if still < p.steady_frames:
                verdict = _with_motion(verdict)
            if verdict.ok:
                report(0.95, Phase.PROCESSING)
                dpi = pagelib.effective_dpi(page, self.paper_height_mm)
                page.flags.writeable = False
                report(1.0, Phase.DONE)
                log.info("document camera %s took a page: %dx%d, %.0f dpi, after %.1f s", self.name,
                         page.shape[1], page.shape[0], dpi, time.monotonic() - started)
                return ScannedPage(page, dpi, verdict, "camera")
            only_waiting = verdict.problems == (Problem.MOVING,) and not moving
            fraction = 0.2 + 0.7 * still / p.steady_frames if only_waiting else 0.1
            report(fraction, verdict.hint or Phase.HOLD_STILL)
        waited = f"{p.time_limit_s:g} s"
        if Problem.NO_PAGE in verdict.problems:
            raise NoPageFound(f"no page on the base of document camera {self.name} within {waited}")
        raise PageUnreadable(f"document camera {self.name}: no readable page within {waited}: "
                             f"{verdict.describe()}", verdict)

    # -- self-test ---------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """The camera's checks, then whether a page on the base would be found and readable."""
        opened_here = False
        if self.status().device in (DeviceState.OFFLINE, DeviceState.NO_DEVICE):
            try:
                self.open()
                opened_here = True
            except DeviceError as exc:
                return [SelfTestResult("frame grabbed", False, str(exc))]
        results = self.camera.self_test()
        try:
            frame = self.camera.latest_frame(timeout_s=self.params.frame_timeout_s)
            if frame is not None:
                results.append(self._page_result(frame.image))
        except DeviceDisconnected as exc:
            results.append(SelfTestResult("page detection", False, str(exc)))
        finally:
            if opened_here:
                self.close()
        return results

    def _page_result(self, image: np.ndarray) -> SelfTestResult:
        outline = pagelib.find_page(image)
        if outline is None:
            return SelfTestResult("page detection", True, (
                "no page on the base, so detection was not tried; lay a printed A4 test page on the base "
                "and run the self-test again to check focus and light"))
        page = pagelib.correct_perspective(image, outline.corners, self.aspect)
        verdict = pagelib.judge(pagelib.measure(page), self.limits, outline)
        dpi = pagelib.effective_dpi(page, self.paper_height_mm)
        detail = f"a page was found ({outline.method}), {dpi:.0f} dpi: {verdict.describe()}"
        if not verdict.ok:
            return SelfTestResult("page detection", False, (
                f"{detail}; check the camera's focus and height, the base's lamp, and that the test page lies "
                "flat inside the outline"))
        return SelfTestResult("page detection", True, detail)


def _with_motion(verdict: Readability) -> Readability:
    """The verdict with MOVING added after the page's place problems (fix where, then hold still)."""
    first = [p for p in verdict.problems if p in _GEOMETRY]
    rest = [p for p in verdict.problems if p not in _GEOMETRY]
    return Readability(tuple(first + [Problem.MOVING] + rest), verdict.measures)


class _Hints:
    """Passes hints to the caller's callback when the hint changes or the bar moves by 5%."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.last: tuple[float, str] | None = None

    def __call__(self, fraction: float, phase: Phase) -> None:
        if self.callback is None:
            return
        if self.last is not None and self.last[1] == phase.value and abs(self.last[0] - fraction) < 0.05:
            return
        self.last = (fraction, phase.value)
        try:
            self.callback(fraction, phase.value)
        except Exception:  # a broken progress bar must not stop the scan
            log.exception("progress callback failed")
