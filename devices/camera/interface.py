"""What every camera offers the kiosk, whatever its stack: the latest frame, and a status.

A camera streams continuously; callers do not queue for frames, they ask for the latest
one, optionally newer than the last one they saw (`Frame.seq`), so a slow consumer (face
verification at ~25 ms a frame) never builds up latency and two consumers (the preview
and the face check) never steal frames from each other.

Frames are the picture as configured: already rotated, and mirrored when the camera's
`mirror` setting says so (the default, as a kiosk preview is a mirror). They are
read-only and shared between consumers: copy (``frame.image.copy()``) before drawing.
They hold a citizen's face: keep them in memory only, never write them to disk or logs.

Status (devices.base): ONLINE while frames arrive; OFFLINE with a fault a technician
acts on when the camera gives no frames (unplugged, unreachable, stream ended) — the
supervisor then reopens it with back-off; HARDWARE_ERROR while it delivers only blank
(uniform) pictures, e.g. a covered lens or a dead sensor, back to ONLINE by itself once
the picture returns. Media state is not used by cameras and stays at the base default.

Events: only ``status_changed`` (devices.base); frames are pulled, not pushed.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from devices.base import Device


@dataclass(frozen=True, eq=False)  # frames are compared by seq, never by pixels
class Frame:
    """One picture from the camera."""

    image: np.ndarray  # uint8 BGR, height x width x 3, rotated/mirrored per config; read-only
    seq: int  # increases by one per frame delivered, across reconnects
    at: float  # time.monotonic() when it was grabbed


class Camera(Device):
    """A camera: keeps grabbing, offers the latest frame."""

    device_class = "camera"

    @abc.abstractmethod
    def latest_frame(self, newer_than: int = -1, timeout_s: float = 1.0) -> Frame | None:
        """The latest frame whose seq is above `newer_than`, waiting up to `timeout_s` for
        one; None when none came in time.

        Raises DeviceDisconnected (with the technician's fault text) when the camera is not
        open or has been lost, so a caller never waits on a camera that is gone.
        """
