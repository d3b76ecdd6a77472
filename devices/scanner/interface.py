"""What every document scanner offers the kiosk, whatever its stack: scan one page.

Two kinds of device sit behind this interface: a SANE scanner (flatbed or document
feeder, devices.scanner.sane_driver) and a document camera (高拍仪) looking down on a
base where the citizen lays the page (devices.scanner.document_camera). Either way
`scan()` returns a `ScannedPage`: the page upright, its resolution, and a `Readability`
verdict with the numbers it was judged on. The caller compresses it (devices.scanner.
output) and attaches the bytes to the application.

Progress: scanning takes seconds, so `scan()` takes `on_progress(fraction, phase)`,
called on the thread that called scan(). `phase` is one of the `Phase` words below: the
screen maps it to a text or a hint for the citizen ("place the page", "hold still").
For a SANE scanner the fraction rises from 0 to 1 with the lines read. For a document
camera it says how close the camera is to taking the picture: it falls back to 0 when
the page is taken away or moves, so a bar shows "keep it still", not a countdown.

Errors, all devices.base.DeviceError subclasses, `str()` for a technician:

- NoPageFound: nothing to scan (empty glass or feeder, no page on the camera's base);
- PageUnreadable: a page was scanned but would not be readable; `.readability` says
  why, for the screen to tell the citizen what to change;
- ScannerJammed, CoverOpen, ScannerBusy: as the scanner reports them;
- DeviceDisconnected / DeviceTimeout / DeviceProtocolError: transport faults.

Status (devices.base): ONLINE when ready, BUSY during a scan, OFFLINE when the scanner
is gone (the supervisor reopens it), HARDWARE_ERROR for a jam, an open cover or a scan
that is entirely black (lamp). Media state: JAMMED for a jam, ABSENT when the feeder or
the base was found empty, PRESENT after a page was seen, UNKNOWN when the scanner
cannot tell (a flatbed cannot sense a page before scanning).

Privacy: pages are citizens' documents. They are kept in memory only, never written to
disk or logs by the terminal's code; `repr()` of a page shows its size, not its pixels.
"""
from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from devices.base import Device, DeviceError


class Phase(str, enum.Enum):
    """The words on_progress reports: what is happening, or what the citizen should do."""

    STARTING = "starting"  # the scanner warms up / the camera looks for the page
    SCANNING = "scanning"  # lines are being read (SANE)
    PROCESSING = "processing"  # the page is being straightened and checked
    DONE = "done"
    PLACE_PAGE = "place_page"  # no page seen: put the page on the base
    HOLD_STILL = "hold_still"  # the page moves
    MOVE_CLOSER = "move_closer"  # the page is too small in the picture (centre it on the base)
    CENTRE_PAGE = "centre_page"  # part of the page is outside the picture
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"  # glare or overexposure
    BLURRED = "blurred"


ProgressCallback = Callable[[float, str], None]


class Problem(str, enum.Enum):
    """Why a page is not readable; the value is a stable code for the screen."""

    NO_PAGE = "no_page"
    CUT_OFF = "cut_off"
    TOO_SMALL = "too_small"
    MOVING = "moving"
    TOO_DARK = "too_dark"
    GLARE = "glare"
    BLURRED = "blurred"

    @property
    def hint(self) -> Phase:
        """What the citizen should do about it."""
        return _HINTS[self]


_HINTS = {
    Problem.NO_PAGE: Phase.PLACE_PAGE,
    Problem.CUT_OFF: Phase.CENTRE_PAGE,
    Problem.TOO_SMALL: Phase.MOVE_CLOSER,
    Problem.MOVING: Phase.HOLD_STILL,
    Problem.TOO_DARK: Phase.TOO_DARK,
    Problem.GLARE: Phase.TOO_BRIGHT,
    Problem.BLURRED: Phase.BLURRED,
}


@dataclass(frozen=True)
class Readability:
    """The verdict on a page and the numbers behind it (see devices.scanner.page)."""

    problems: tuple[Problem, ...] = ()  # most important first
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def hint(self) -> Phase | None:
        """What the citizen should change first; None when the page is fine."""
        return self.problems[0].hint if self.problems else None

    def describe(self) -> str:
        """Problems and measures in one line, for logs and technicians (no pixels)."""
        what = ", ".join(p.value for p in self.problems) or "readable"
        numbers = ", ".join(f"{k}={v:.3g}" for k, v in sorted(self.measures.items()))
        return f"{what} ({numbers})" if numbers else what


@dataclass(frozen=True, eq=False, repr=False)
class ScannedPage:
    """One page, upright: uint8 BGR (height x width x 3) or grey (height x width)."""

    image: np.ndarray
    dpi: float  # pixels per inch of the page as delivered
    readability: Readability
    source: str  # "flatbed", "feeder" or "camera"

    @property
    def size_mm(self) -> tuple[float, float]:
        height, width = self.image.shape[:2]
        return width / self.dpi * 25.4, height / self.dpi * 25.4

    def __repr__(self) -> str:  # never the pixels: pages are citizens' documents
        height, width = self.image.shape[:2]
        colour = "colour" if self.image.ndim == 3 else "grey"
        return (f"ScannedPage({width}x{height} {colour}, {self.dpi:.0f} dpi, {self.source}, "
                f"{self.readability.describe()})")


class NoPageFound(DeviceError):
    """Nothing to scan: the glass, the feeder or the camera's base is empty."""


class PageUnreadable(DeviceError):
    """A page was scanned, but it would not be readable; `readability` says why."""

    def __init__(self, message: str, readability: Readability) -> None:
        super().__init__(message)
        self.readability = readability


class ScannerJammed(DeviceError):
    """Paper is stuck in the scanner's document feeder."""


class CoverOpen(DeviceError):
    """The scanner's cover (lid or feeder door) is open."""


class ScannerBusy(DeviceError):
    """The scanner is in use by something else (another program, another scan)."""


class Scanner(Device):
    """A document scanner: scans one page on request."""

    device_class = "scanner"

    @abc.abstractmethod
    def scan(self, on_progress: ProgressCallback | None = None) -> ScannedPage:
        """Scan one page and return it upright with its readability verdict.

        Raises NoPageFound, PageUnreadable (with `.readability`), ScannerJammed,
        CoverOpen, ScannerBusy, or DeviceDisconnected/DeviceTimeout/DeviceProtocolError.
        `on_progress(fraction, phase)` is called on the calling thread (see module notes).
        """
