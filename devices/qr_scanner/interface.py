"""What every QR/barcode scanner offers the kiosk, whatever reads the code.

A scanner sees whatever is held in front of it: a citizen's phone while the visit asks
for something else, the same code again and again while it stays in the window. So a
code counts only while a step has asked for one, and one presentation is one scan:

- ``arm(timeout_s)``: the step that wants a code arms the scanner, optionally for a
  limited time (its time limit); ``disarm()`` when it has what it needs or is left.
  Codes read while not armed are ignored (counted, never delivered). Arming again
  forgets which codes were delivered, so a new step can take the same code again.
- duplicate suppression: a code equal to the last delivered one, read again within
  ``duplicate_window_s`` of its LAST reading, is the same presentation (a scanner in
  continuous mode re-reads a code every ~0.5-1 s; a camera sees it in every frame). The
  window slides, so a code held up for a minute is one scan.

Events (DeviceEvent.kind, with DeviceEvent.data):

- ``code_scanned``: a complete code was read while armed.
  ``data["text"]`` (str): the content, decoded, without the scanner's suffix or AIM
  prefix. ``data["symbology"]`` (str): "qr_code", "micro_qr_code", "data_matrix",
  "pdf417", "aztec", "code128", "code39", "ean_upc", ... or "unknown" when the scanner
  does not say (a serial scanner without AIM identifiers). ``data["raw"]`` (bytes): the
  bytes as they came (serial: between AIM prefix and suffix; camera: the symbol's data
  bytes), for a consumer that must decode them itself. The content is NOT validated:
  pass ``text`` through kiosk.codes.parse_code before acting on it.
- ``code_unreadable``: a code was presented while armed but could not be taken, so the
  screen can say "try again". ``data["reason"]``: "undecodable" (bytes invalid in the
  configured encodings), "too_long" (over max_length), "incomplete" (the code stopped
  mid-way, the suffix never came); ``data["length"]``: how many bytes were dropped.
- ``status_changed``: from devices.base.

Privacy: a code may carry a personal token (an e-ID code is a credential). Drivers log
only lengths and kinds, never the content. Media state is not used (NOT_SUPPORTED).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Literal

from devices.base import Device, DeviceState, DeviceStatus, MediaState

CODE_SCANNED = "code_scanned"
CODE_UNREADABLE = "code_unreadable"
UNREADABLE_REASONS = ("undecodable", "too_long", "incomplete")

# what the counters count (see QrScanner.counters)
COUNTERS = ("scanned", "duplicates", "ignored", "undecodable", "too_long", "incomplete")

Admission = Literal["accept", "duplicate", "not_armed"]


class ScanGate:
    """Arming and duplicate suppression: the rules above, in one thread-safe place."""

    def __init__(self, duplicate_window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if duplicate_window_s < 0:
            raise ValueError(f"duplicate_window_s must be 0 or more, not {duplicate_window_s}")
        self.duplicate_window_s = duplicate_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._armed = False
        self._until: float | None = None  # clock time when arming ends; None: until disarmed
        self._last_text: str | None = None
        self._last_seen = 0.0

    def arm(self, timeout_s: float | None = None) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"arm(timeout_s={timeout_s}): give a positive time, or None for no limit")
        with self._lock:
            self._armed = True
            self._until = None if timeout_s is None else self._clock() + timeout_s
            self._last_text = None

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
            self._until = None

    def _is_armed(self, now: float) -> bool:
        if self._armed and self._until is not None and now >= self._until:
            self._armed = False
            self._until = None
        return self._armed

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._is_armed(self._clock())

    def remaining_s(self) -> float | None:
        """Seconds left armed: None when armed without limit, 0.0 when not armed."""
        with self._lock:
            now = self._clock()
            if not self._is_armed(now):
                return 0.0
            return None if self._until is None else self._until - now

    def admit(self, text: str) -> Admission:
        """Decide about one reading of `text` and remember it."""
        with self._lock:
            now = self._clock()
            if not self._is_armed(now):
                return "not_armed"
            if text == self._last_text and now - self._last_seen <= self.duplicate_window_s:
                self._last_seen = now  # the window slides: still the same presentation
                return "duplicate"
            self._last_text, self._last_seen = text, now
            return "accept"


class QrScanner(Device):
    """A QR/barcode scanner: delivers codes, armed by the step that asks for one."""

    device_class = "qr_scanner"

    def __init__(self, name: str, duplicate_window_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name)
        self._status = DeviceStatus(DeviceState.OFFLINE, MediaState.NOT_SUPPORTED, "not opened yet")
        self._gate = ScanGate(duplicate_window_s, clock)
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)

    # -- verbs ------------------------------------------------------------------------------------
    def arm(self, timeout_s: float | None = None) -> None:
        """Accept codes from now, for `timeout_s` seconds or until disarm(); forgets the
        codes delivered before, so this step may take the same code again."""
        self._gate.arm(timeout_s)
        self._arming_changed(True)

    def disarm(self) -> None:
        """Stop accepting codes (the step has its code, or was left)."""
        self._gate.disarm()
        self._arming_changed(False)

    @property
    def armed(self) -> bool:
        return self._gate.armed

    def counters(self) -> dict[str, int]:
        """Since the scanner was created: codes delivered, duplicates suppressed, ignored
        while not armed, and dropped as undecodable, too long or incomplete (a technician
        reads a wrong baud rate or encoding from these)."""
        with self._counts_lock:
            return dict(self._counts)

    # -- for drivers ----------------------------------------------------------------------------
    def _arming_changed(self, armed: bool) -> None:
        """Hook: a driver starts or stops work (trigger the scanner, decode frames)."""

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def _offer(self, text: str, symbology: str, raw: bytes) -> bool:
        """One complete code read: deliver it if armed and not a duplicate. True if delivered."""
        verdict = self._gate.admit(text)
        if verdict == "not_armed":
            self._count("ignored")
            return False
        if verdict == "duplicate":
            self._count("duplicates")
            return False
        self._count("scanned")
        self.emit(CODE_SCANNED, text=text, symbology=symbology, raw=raw)
        return True

    def _unreadable(self, reason: str, length: int) -> None:
        """A code that could not be taken: counted always, reported only while armed."""
        self._count(reason)
        if self._gate.armed:
            self.emit(CODE_UNREADABLE, reason=reason, length=length)
