"""The device model every device class shares.

Shapes follow the self-service industry's device model (CEN/XFS, XFS4IoT): a device
state and a media state, pushed as one status-changed stream, so the visit and the
help desk see the same thing a technician reads in the self-test.
"""
from __future__ import annotations

import abc
import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


class DeviceState(str, enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    HARDWARE_ERROR = "hardware_error"
    BUSY = "busy"
    NO_DEVICE = "no_device"


class MediaState(str, enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    JAMMED = "jammed"
    LOW = "low"
    OUT = "out"
    UNKNOWN = "unknown"
    NOT_SUPPORTED = "not_supported"


@dataclass(frozen=True)
class DeviceStatus:
    device: DeviceState
    media: MediaState = MediaState.NOT_SUPPORTED
    fault: str = ""  # human-readable, for a technician; empty when all is well

    def as_dict(self) -> dict[str, str]:
        return {"device": self.device.value, "media": self.media.value, "fault": self.fault}


@dataclass(frozen=True)
class DeviceEvent:
    """Something a device reports on its own: a card placed, paper low, status changed."""

    source: str  # the device's name in config, e.g. "idcard"
    kind: str  # e.g. "status_changed", "card_placed", "card_removed"
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass
class SelfTestResult:
    name: str
    passed: bool
    detail: str  # what was checked and found, in words a technician acts on

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


class DeviceError(Exception):
    """Base of every device fault. `str()` is for technicians and logs."""


class DeviceDisconnected(DeviceError):
    """The device is gone (unplugged, port vanished, OS error): supervision reconnects."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class DeviceProtocolError(DeviceError):
    """The device answered, but not in its protocol (garbage, bad checksum, bad length)."""


Listener = Callable[[DeviceEvent], None]

CLOSED = "closed"  # the fault text of a device closed on purpose: not worth a warning


class Device(abc.ABC):
    """Base of every device: status, events and the open/close/self-test contract.

    Subclasses implement `_open`, `_close` and `self_test`, and may override `poll`
    (called by the supervisor; a device that raises DeviceDisconnected there is marked
    offline and reopened with back-off).
    """

    device_class: str = "device"

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self._status = DeviceStatus(DeviceState.OFFLINE, MediaState.UNKNOWN, "not opened yet")
        self._status_lock = threading.Lock()

    # -- events -----------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register for events; returns a function that unregisters."""
        with self._listeners_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, kind: str, **data: Any) -> None:
        event = DeviceEvent(self.name, kind, data)
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the device
                log.exception("listener for %s/%s failed", self.name, kind)

    # -- status -----------------------------------------------------------------
    def status(self) -> DeviceStatus:
        with self._status_lock:
            return self._status

    def set_status(self, device: DeviceState, media: MediaState | None = None, fault: str = "") -> None:
        """Change the status and publish one status_changed event if it differs."""
        with self._status_lock:
            old = self._status
            new = DeviceStatus(device, old.media if media is None else media, fault)
            if new == old:
                return
            self._status = new
        if new.fault and new.fault != CLOSED:
            log.warning("%s: %s -> %s (%s)", self.name, old.device.value, new.device.value, new.fault)
        else:
            log.info("%s: %s -> %s", self.name, old.device.value, new.device.value)
        self.emit("status_changed", **new.as_dict())

    # -- lifecycle ----------------------------------------------------------------
    def open(self) -> None:
        """Open the device; on failure the status says why and the error is raised."""
        try:
            self._open()
        except DeviceError as exc:
            self.set_status(DeviceState.OFFLINE, fault=str(exc))
            raise

    def close(self) -> None:
        """Idempotent: closing a closed device does nothing."""
        try:
            self._close()
        finally:
            self.set_status(DeviceState.OFFLINE, fault=CLOSED)

    def poll(self) -> None:
        """Called periodically by the supervisor; raise DeviceDisconnected when gone."""

    @abc.abstractmethod
    def self_test(self) -> list[SelfTestResult]:
        """Check the device for a technician: each result says what was checked and found."""

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the transport and bring the device online; raise a DeviceError if not."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the transport; must be safe to call twice."""

    def __enter__(self) -> "Device":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
