"""Camera QR scanner: frames from OpenCvCamera, QR codes decoded with zxing-cpp.

For terminals without a serial scanner, or a code shown on a phone where the serial
scanner's window cannot reach: a camera (USB, network, or the emulator's MJPEG stream)
films what is held up and zxing-cpp finds QR codes in the frames.

- Frames come from a composed devices.camera.driver.OpenCvCamera (its grabber thread,
  scaling, rotation, mirroring, loss detection and reconnect rules), configured with
  this driver's `source`, `width`, `height`, `fps`, `rotation`, `mirror` and
  `frame_timeout_s`. Its status is this scanner's status.
- Decoding runs on one worker thread, ONLY while armed, at most once per
  `decode_interval_s` and only on a frame newer than the last one decoded, so an idle
  kiosk spends no CPU on it and an armed one a bounded share (zxing-cpp restricted to
  QR takes ~2-5 ms a 640x480 frame here, 10-30x less than with every format: see
  bench/qr_decode.py).
- Mirroring: OpenCvCamera flips its frames left-right when `mirror` is set (a preview
  is a mirror). A QR code is read from the picture as the camera saw it, so the worker
  flips a mirrored frame back before decoding (zxing-cpp 3 also reads mirrored codes,
  but other symbologies and decoders do not, and the code's position is then in camera
  coordinates).
- Text: zxing-cpp decodes the symbol's bytes by its ECI, or by guessing without one
  (UTF-8 is recognised; a GB18030 code without ECI may be guessed wrong; `raw` in the
  event has the bytes).
- Several codes in one frame are each offered; the usual arming and duplicate rules
  apply (devices.qr_scanner.interface): a code held in front of the camera is one scan.

Privacy: frames may show a citizen's face and documents: they stay in memory (the
camera's rules), and codes are logged by length only.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

import cv2
import numpy as np
import zxingcpp
from pydantic import BaseModel, ConfigDict, Field

from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceEvent,
    DeviceState,
    MediaState,
    SelfTestResult,
)
from devices.camera.driver import CameraSource, OpenCvCamera
from devices.qr_scanner.interface import QrScanner

log = logging.getLogger(__name__)

QR_ONLY = zxingcpp.BarcodeFormat.QRCode


def symbology_name(fmt: Any) -> str:
    """zxing-cpp's format as the event's symbology: "QR Code" -> "qr_code"."""
    return str(fmt).strip().lower().replace(" ", "_").replace("-", "") or "unknown"


def decode_qr(image: np.ndarray, mirrored: bool = False, formats: Any = QR_ONLY) -> list[Any]:
    """The QR codes zxing-cpp finds in a BGR or grey picture, flipped back first when the
    picture is mirrored. Each result has .text, .bytes, .format and .position."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if mirrored:
        grey = cv2.flip(grey, 1)
    return list(zxingcpp.read_barcodes(grey, formats=formats))


class CameraQrScanner(QrScanner):
    """QR codes read from a camera's frames with zxing-cpp, while armed."""

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the camera qr_scanner driver."""

        model_config = ConfigDict(extra="forbid")

        source: CameraSource = Field(
            description="Camera as for the opencv camera driver: device index or path, network camera URL, "
            "or a video/image file",
        )
        width: int = Field(default=640, ge=16, le=7680,
                           description="Frame width; 1280 reads smaller codes at ~2x the decode time")
        height: int = Field(default=480, ge=16, le=4320, description="Frame height")
        fps: float = Field(default=10, gt=0, le=120, description="Frame rate asked of the camera")
        rotation: Literal[0, 90, 180, 270] = Field(default=0, description="Degrees clockwise to turn the picture")
        mirror: bool = Field(
            default=True,
            description="Mirror the frames, as for a preview the citizen aims the phone with; "
            "decoding flips them back either way",
        )
        frame_timeout_s: float = Field(default=2.0, gt=0, le=60,
                                       description="No frame for this long counts as a lost camera")
        decode_interval_s: float = Field(
            default=0.1, ge=0.02, le=5, description="At most one decode per this interval while armed"
        )
        duplicate_window_s: float = Field(
            default=3.0, ge=0, le=60, description="The same code seen again within this time is one scan"
        )

    def __init__(
        self,
        name: str,
        *,
        source: int | str,
        width: int = 640,
        height: int = 480,
        fps: float = 10,
        rotation: Literal[0, 90, 180, 270] = 0,
        mirror: bool = True,
        frame_timeout_s: float = 2.0,
        decode_interval_s: float = 0.1,
        duplicate_window_s: float = 3.0,
    ) -> None:
        params = self.Params(source=source, width=width, height=height, fps=fps, rotation=rotation,
                             mirror=mirror, frame_timeout_s=frame_timeout_s,
                             decode_interval_s=decode_interval_s, duplicate_window_s=duplicate_window_s)
        super().__init__(name, params.duplicate_window_s)
        self.params = params
        # the camera bears this scanner's name, so its faults point at [devices.<name>]
        self.camera = OpenCvCamera(name, source=params.source, width=params.width,
                                   height=params.height, fps=params.fps, rotation=params.rotation,
                                   mirror=params.mirror, frame_timeout_s=params.frame_timeout_s)
        self.camera.subscribe(self._camera_event)
        self._wake = threading.Event()  # armed, or closing: the worker looks again
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._decoded_frames = 0
        self._decode_seconds = 0.0
        self._lifecycle = threading.Lock()

    # -- the camera's status is ours ------------------------------------------------------------------
    def _camera_event(self, event: DeviceEvent) -> None:
        if event.kind == "status_changed":
            self.set_status(DeviceState(event.data["device"]), MediaState.NOT_SUPPORTED, event.data["fault"])

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _open(self) -> None:
        with self._lifecycle:
            self._stop_worker()
            self.camera.open()  # DeviceDisconnected with the camera's own words when it does not
            self._worker_stop = threading.Event()
            self._worker = threading.Thread(target=self._decode_loop, args=(self._worker_stop,),
                                            name=f"qr-camera-{self.name}", daemon=True)
            self._worker.start()

    def _close(self) -> None:
        with self._lifecycle:
            self._stop_worker()
            self.camera.close()

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        self._worker_stop.set()
        self._wake.set()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=self.params.frame_timeout_s + 2.0)

    def _arming_changed(self, armed: bool) -> None:
        self._wake.set()

    # -- the decoding worker -----------------------------------------------------------------------------
    @property
    def decoded_frames(self) -> int:
        """Frames decoded since the scanner was created (none while not armed)."""
        return self._decoded_frames

    def _decode_loop(self, stop: threading.Event) -> None:
        last_seq = -1
        next_at = 0.0
        while not stop.is_set():
            remaining = self._gate.remaining_s()
            if remaining == 0.0:  # not armed: sleep until arm(), close, or a timed arming ends
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            wait = next_at - time.monotonic()
            if wait > 0:
                stop.wait(wait)
                continue
            try:
                frame = self.camera.latest_frame(newer_than=last_seq, timeout_s=0.5)
            except DeviceDisconnected:  # poll() reports it; the supervisor reopens
                stop.wait(0.2)
                continue
            if frame is None or stop.is_set():
                continue
            last_seq = frame.seq
            started = time.monotonic()
            next_at = started + self.params.decode_interval_s
            try:
                found = decode_qr(frame.image, self.params.mirror)
            except Exception:  # a decoder fault must not end scanning; it is logged for the technician
                log.exception("%s: decoding a frame failed", self.name)
                continue
            self._decode_seconds += time.monotonic() - started
            self._decoded_frames += 1
            for barcode in found:
                raw = bytes(barcode.bytes)
                if self._offer(barcode.text, symbology_name(barcode.format), raw):
                    log.info("%s: QR code of %d bytes read", self.name, len(raw))

    # -- supervision --------------------------------------------------------------------------------------------
    def poll(self) -> None:
        """The camera's poll (lost or silent camera -> DeviceDisconnected), and a live worker."""
        self.camera.poll()
        worker = self._worker
        if worker is None or not worker.is_alive():
            raise DeviceDisconnected(f"QR camera {self.name}: the decoding worker stopped; reopening")

    # -- self-test ------------------------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """The camera's own checks (frame, blank picture, resolution, rate), then one decode."""
        opened_here = False
        try:
            self.camera.latest_frame(timeout_s=0)  # raises when the camera is not open
        except DeviceDisconnected:
            try:
                self.camera.open()
                opened_here = True
            except DeviceError as exc:
                return [SelfTestResult("frame grabbed", False, str(exc))]
        try:
            results = self.camera.self_test()
            try:
                frame = self.camera.latest_frame(timeout_s=self.params.frame_timeout_s)
            except DeviceDisconnected as exc:
                results.append(SelfTestResult("QR decoder", False, f"no frame to decode: {exc}"))
                return results
            if frame is None:
                results.append(SelfTestResult("QR decoder", False, "no frame to decode: the camera went silent"))
                return results
            started = time.monotonic()
            found = decode_qr(frame.image, self.params.mirror)
            took = (time.monotonic() - started) * 1000
            seen = f"{len(found)} QR code(s) in view" if found else "no QR code in view"
            height, width = frame.image.shape[:2]
            results.append(SelfTestResult("QR decoder", True,
                                          f"zxing-cpp decoded a {width}x{height} frame in {took:.0f} ms: {seen}"))
            return results
        finally:
            if opened_here:
                self.camera.close()
