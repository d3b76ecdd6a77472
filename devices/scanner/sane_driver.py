"""SANE driver: flatbed and document-feeder scanners through libsane (python-sane).

Device: `device` is a SANE device name ("fujitsu:fi-7160:12345", "test:0") or a prefix
of one ("fujitsu", "test"): the first device SANE lists that starts with it is used,
an exact name always wins. SANE is process-global (devices.scanner.sane_library): all
SANE scanners of a terminal share one `config_dir`; when set, SANE_CONFIG_DIR is set
for the process before sane_init. A dll.conf that names only the backends the terminal
needs keeps sane_init fast (every backend listed is probed).

Settings are applied at open and after every reopen: `mode` (Color/Gray, matched to the
backend's names, e.g. "Grey"), 8 bits, `resolution` (the nearest the scanner offers),
`source` (e.g. "Flatbed", "ADF"; empty: the backend's default), and a scan area of
`width_mm` x `height_mm` from the glass's top-left corner, cut to what the scanner
reaches (SANE's test backend stops at 200 x 200 mm). The page is not searched for on a
flatbed (the lid is as white as the paper): the scan is the page, already upright. A
dark scanner background around it (black lid, feeder backing) is trimmed away.

Scanning: sane_start then sane_read until the end, in a worker thread holding the SANE
lock; python-sane reports each line read, which becomes on_progress(fraction,
"scanning") on the calling thread. The scanner must not stay silent for `timeout_s` (no
line read, including sane_start's lamp warm-up): then the scan is cancelled
(sane_cancel, allowed from another thread), the handle dropped and DeviceTimeout raised.

SANE statuses become exceptions and a status a technician acts on:

=================================  ===================  ==================================
sane status (python-sane message)  exception            status
=================================  ===================  ==================================
JAMMED "Document feeder jammed"    ScannerJammed        HARDWARE_ERROR, media JAMMED
COVER_OPEN "Scanner cover is open" CoverOpen            HARDWARE_ERROR
NO_DOCS "... out of documents"     NoPageFound          ONLINE, media ABSENT
DEVICE_BUSY "Device busy"          ScannerBusy          unchanged (open: OFFLINE)
IO_ERROR, ACCESS_DENIED            DeviceDisconnected   OFFLINE: the supervisor reopens
INVAL, UNSUPPORTED, NO_MEM         DeviceProtocolError  HARDWARE_ERROR (settings)
CANCELLED (not by us)              DeviceError          unchanged
no data at all                     DeviceProtocolError  HARDWARE_ERROR
=================================  ===================  ==================================

A jam or open cover clears at the next scan or self-test that succeeds. A scan that
is entirely black (a dead lamp) raises PageUnreadable and sets HARDWARE_ERROR; an empty
(uniform white) scan raises NoPageFound.

Privacy: pages stay in memory; nothing of a page is logged.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceProtocolError,
    DeviceState,
    DeviceStatus,
    DeviceTimeout,
    MediaState,
    SelfTestResult,
)
from devices.scanner import page as pagelib
from devices.scanner import sane_library
from devices.scanner.interface import (
    CoverOpen,
    NoPageFound,
    PageUnreadable,
    Phase,
    Problem,
    ProgressCallback,
    ScannedPage,
    Scanner,
    ScannerBusy,
    ScannerJammed,
)
from devices.scanner.sane_library import TYPE_FIXED, UNIT_MM, SaneError

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 5.0  # after sane_cancel, how long the worker may take to return
SELF_TEST_AREA_MM = 50.0
SELF_TEST_DPI = 75

_FEEDER_WORDS = ("adf", "feeder", "automatic", "duplex")


@dataclass
class _Job:
    """One scan in the worker thread, watched by the caller."""

    started_at: float
    last_tick: float
    lines: int = 0
    total: int = 0
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def progress(self, lines: int, total: int) -> None:
        self.lines, self.total = lines, total
        self.last_tick = time.monotonic()


@dataclass(frozen=True)
class _Outcome:
    """A failed scan: the exception the caller gets, and what it does to the status."""

    error: DeviceError
    handling: Literal["drop", "fault", "status", "keep"]  # drop the handle+OFFLINE / HARDWARE_ERROR / set / keep
    state: DeviceState = DeviceState.ONLINE
    media: MediaState | None = None
    clear_fault: bool = False


class _Failed(Exception):
    """Carries an _Outcome from the reading code to scan(), which sets the status and raises."""

    def __init__(self, outcome: _Outcome) -> None:
        super().__init__(str(outcome.error))
        self.outcome = outcome


@dataclass(frozen=True)
class _Applied:
    """What the scanner actually took of the settings."""

    mode: str
    resolution: float
    source: str
    width_mm: float
    height_mm: float


class SaneScanner(Scanner):
    """A scanner driven through SANE; see the module notes."""

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the sane driver."""

        model_config = ConfigDict(extra="forbid")

        device: str = Field(min_length=1, description=(
            "SANE device name (e.g. fujitsu:fi-7160:12345, test:0) or a prefix of one (fujitsu, test); "
            "`scanimage -L` lists them"))
        resolution: int = Field(default=200, ge=50, le=1200, description="Dots per inch to scan at")
        mode: Literal["Color", "Gray"] = Field(default="Color", description="Colour or greyscale scan")
        source: str = Field(default="", description=(
            "The scanner's source, as its backend names it (Flatbed, ADF, Automatic Document Feeder...); "
            "empty: the backend's default"))
        config_dir: str = Field(default="", description=(
            "SANE config dir (SANE_CONFIG_DIR) for the whole process: every SANE scanner of the terminal "
            "must name the same one; empty: the system's /etc/sane.d"))
        timeout_s: float = Field(default=60.0, gt=0, le=600, description=(
            "Longest the scanner may stay silent during a scan (lamp warm-up included) before it counts "
            "as hung"))
        width_mm: float = Field(default=210.0, gt=10, le=500, description="Scan area width from the glass's corner")
        height_mm: float = Field(default=297.0, gt=10, le=1000, description="Scan area height from the glass's corner")

    def __init__(
        self,
        name: str,
        *,
        device: str,
        resolution: int = 200,
        mode: Literal["Color", "Gray"] = "Color",
        source: str = "",
        config_dir: str = "",
        timeout_s: float = 60.0,
        width_mm: float = 210.0,
        height_mm: float = 297.0,
    ) -> None:
        super().__init__(name)
        self.params = self.Params(device=device, resolution=resolution, mode=mode, source=source,
                                  config_dir=config_dir, timeout_s=timeout_s, width_mm=width_mm,
                                  height_mm=height_mm)
        self._lock = threading.RLock()  # one operation on this scanner at a time
        self._wanted = False  # open() was called and close() not since
        self._handle: Any = None
        self._generation = -1
        self.device_name = ""  # the SANE name it resolved to
        self.model = ""
        self.applied: _Applied | None = None

    # -- words for technicians ---------------------------------------------------------------------
    def _where(self) -> str:
        return f"scanner {self.device_name or self.params.device}"

    def _config_hint(self) -> str:
        where = self.params.config_dir or "/etc/sane.d"
        return f"that its backend is listed in {where}/dll.conf"

    # -- lifecycle ---------------------------------------------------------------------------------
    def _open(self) -> None:
        with self._lock:
            self._wanted = True
            self._connect()
            self.set_status(DeviceState.ONLINE, MediaState.UNKNOWN, "")
            log.info("%s online (%s): %s", self._where(), self.model, self._describe_settings())

    def _close(self) -> None:
        with self._lock:
            self._wanted = False
            self._drop_handle()

    def _drop_handle(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            sane_library.close_handle(handle)

    def _resolve(self) -> tuple[str, str]:
        """The SANE device name to open and its vendor/model; rescans once if not listed."""
        wanted = self.params.device
        for attempt in range(2):
            found = sane_library.devices()
            names = sorted(d[0] for d in found)
            match = wanted if wanted in names else next((n for n in names if n.startswith(wanted)), None)
            if match is not None:
                info = next(d for d in found if d[0] == match)
                return match, f"{info[1]} {info[2]}"
            if attempt == 0:  # a scanner plugged in since sane_init is found only after a rescan
                sane_library.reload(f"looking for {wanted}")
        listed = ", ".join(names) or "none"
        raise DeviceDisconnected(
            f"no SANE scanner matching {wanted!r} (SANE lists: {listed}); check the scanner's power and USB "
            f"cable, and {self._config_hint()}")

    def _connect(self) -> None:
        """(Re)open the handle and apply the settings; DeviceError if that fails."""
        self._drop_handle()
        try:
            sane_library.use_config_dir(self.params.config_dir or None)
            with sane_library.locked():
                name, model = self._resolve()
                self.device_name, self.model = name, model
                try:
                    handle = sane_library.open_handle(name)
                except SaneError as exc:
                    raise self._open_failure(str(exc)) from None
                try:
                    self.applied = self._apply_settings(handle)
                except BaseException:
                    sane_library.close_handle(handle)
                    raise
                self._handle = handle
                self._generation = sane_library.generation()
        except SaneError as exc:  # sane_init or get_devices failed
            raise DeviceDisconnected(f"SANE failed while opening {self._where()}: {exc}; "
                                     f"{self._config_hint()}") from None

    def _open_failure(self, message: str) -> DeviceError:
        if message == "Device busy":
            return DeviceDisconnected(f"{self._where()} is in use by another program (SANE says device busy); "
                                      "stop other scanning programs (scanimage, saned) on this terminal")
        if message.startswith("Access to resource"):
            return DeviceDisconnected(f"{self._where()}: access denied; give the kiosk's user access to the "
                                      "scanner (the scanner group / a udev rule)")
        return DeviceDisconnected(f"cannot open {self._where()} ({message}); check its power and USB cable")

    def _ensure_handle(self) -> Any:
        """The current handle, reopened if a SANE reload closed it; DeviceDisconnected if not open."""
        if not self._wanted:
            raise DeviceDisconnected(f"{self._where()} is not open")
        if self._handle is None or self._generation != sane_library.generation() \
                or not sane_library.is_open(self._handle):
            try:
                self._connect()
            except DeviceDisconnected as exc:
                self.set_status(DeviceState.OFFLINE, MediaState.UNKNOWN, str(exc))
                raise
        return self._handle

    # -- settings ----------------------------------------------------------------------------------
    def _apply_settings(self, handle: Any, resolution: float | None = None,
                        area_mm: tuple[float, float] | None = None) -> _Applied:
        p = self.params
        mode = ""
        if _settable(handle, "mode"):
            mode = self._pick_mode(handle.opt["mode"].constraint)
            handle.mode = mode  # may change which options exist: handle.opt is read afresh below
        if _settable(handle, "depth"):
            allowed = handle.opt["depth"].constraint
            if not isinstance(allowed, list) or 8 in allowed:
                handle.depth = 8
        if _settable(handle, "resolution"):
            handle.resolution = _nearest(handle.opt["resolution"], resolution or p.resolution)
        opts = handle.opt
        source = ""
        if p.source:
            if not _settable(handle, "source"):
                raise DeviceProtocolError(f"{self._where()} has no source to choose; clear source in "
                                          f"[devices.{self.name}]")
            allowed = list(opts["source"].constraint or [])
            source = next((s for s in allowed if s.lower() == p.source.lower()), "")
            if not source:
                raise DeviceProtocolError(f"{self._where()} has no source {p.source!r}; it offers "
                                          f"{', '.join(allowed)}: fix source in [devices.{self.name}]")
            handle.source = source
        elif "source" in opts and opts["source"].is_active():
            source = str(handle.source)
        width, height = area_mm or (p.width_mm, p.height_mm)
        width, height = self._set_area(handle, width, height)
        dpi = float(handle.resolution) if _settable(handle, "resolution") else float(p.resolution)
        return _Applied(mode, dpi, source, width, height)

    def _pick_mode(self, allowed: Any) -> str:
        names = list(allowed or [])
        words = ("color", "colour") if self.params.mode == "Color" else ("gray", "grey")
        for name in names:
            if name.lower() in words:
                return name
        for name in names:
            if any(w in name.lower() for w in words):
                return name
        raise DeviceProtocolError(f"{self._where()} offers no {self.params.mode} mode (it has "
                                  f"{', '.join(names)}): fix mode in [devices.{self.name}]")

    def _set_area(self, handle: Any, width: float, height: float) -> tuple[float, float]:
        """Set the scan area in mm where the backend offers it; returns what it took."""
        keys = ("tl_x", "tl_y", "br_x", "br_y")
        if not all(_settable(handle, k) and handle.opt[k].unit == UNIT_MM for k in keys):
            return width, height  # the backend scans its whole area, or not in millimetres
        handle.tl_x = _nearest(handle.opt["tl_x"], 0.0)
        handle.tl_y = _nearest(handle.opt["tl_y"], 0.0)
        handle.br_x = _nearest(handle.opt["br_x"], width)
        handle.br_y = _nearest(handle.opt["br_y"], height)
        return float(handle.br_x) - float(handle.tl_x), float(handle.br_y) - float(handle.tl_y)

    def _describe_settings(self) -> str:
        a = self.applied
        if a is None:
            return "no settings applied"
        source = f", source {a.source}" if a.source else ""
        return f"{a.mode or self.params.mode} {a.resolution:g} dpi{source}, area {a.width_mm:g} x {a.height_mm:g} mm"

    @property
    def feeder(self) -> bool:
        source = (self.applied.source if self.applied else self.params.source).lower()
        return any(word in source for word in _FEEDER_WORDS)

    # -- scanning ----------------------------------------------------------------------------------
    def scan(self, on_progress: ProgressCallback | None = None) -> ScannedPage:
        """See Scanner.scan and the module notes."""
        report = _Reporter(on_progress)
        with self._lock:
            handle = self._ensure_handle()
            before = self.status()
            self.set_status(DeviceState.BUSY, None, "")
            report(0.0, Phase.STARTING)
            try:
                try:
                    image = self._read_image(handle, report)
                except _Failed as failed:
                    self._after_failure(failed.outcome, before)
                    raise failed.outcome.error from None
                report(0.92, Phase.PROCESSING)
                page = self._finish(image)
            finally:
                if self.status().device == DeviceState.BUSY:  # an unforeseen error: not busy any more
                    self.set_status(DeviceState.ONLINE, None, "")
            report(1.0, Phase.DONE)
            return page

    def _read_image(self, handle: Any, report: _Reporter) -> np.ndarray:
        now = time.monotonic()
        job = _Job(started_at=now, last_tick=now)
        worker = threading.Thread(target=self._worker, args=(handle, job), name=f"sane-{self.name}", daemon=True)
        worker.start()
        timeout = self.params.timeout_s
        while not job.done.wait(0.02):
            if job.total > 0:
                report(0.05 + 0.85 * job.lines / job.total, Phase.SCANNING)
            silent = time.monotonic() - job.last_tick
            if silent > timeout:
                handle.cancel()  # the SANE standard allows this from any thread, at any time
                sane_library.keep_sigpipe_harmless()
                finished = job.done.wait(CANCEL_GRACE_S)
                what = "while warming up (sane_start)" if job.total == 0 else \
                    f"after {job.lines} of {job.total} lines"
                message = (f"{self._where()} sent nothing for {timeout:g} s {what}: check its power and USB "
                           f"cable; if it is only slow, raise timeout_s in [devices.{self.name}]")
                if not finished:  # stuck inside the backend, holding the SANE lock: abandon the handle
                    message += "; it did not stop when cancelled: power-cycle it"
                    self._handle = None
                raise _Failed(_Outcome(DeviceTimeout(message), "drop"))
        if job.error is not None:
            raise _Failed(self._failure(job.error))
        image = job.result
        if image is None or job.total <= 0 or image.shape[0] < job.total:
            got = 0 if image is None else image.shape[0]
            raise _Failed(_Outcome(DeviceProtocolError(
                f"{self._where()} ended the scan after {got} of {job.total} lines; check its USB cable"), "fault"))
        report(0.9, Phase.SCANNING)
        return image

    def _worker(self, handle: Any, job: _Job) -> None:
        try:
            with sane_library.locked():
                if not sane_library.is_open(handle):
                    raise SaneError("Error during device I/O")
                handle.start()
                job.last_tick = time.monotonic()
                _format, _last, (_ppl, lines), _depth, _bpl = handle.get_parameters()
                if lines <= 0:
                    handle.cancel()
                    raise RuntimeError("the scanner does not say how many lines it will send (hand scanner)")
                job.total = lines
                job.result = handle.arr_snap(progress=job.progress)
        except BaseException as exc:  # handed to the caller's thread
            job.error = exc
        finally:
            sane_library.keep_sigpipe_harmless()  # the backend's reader thread has just been joined
            job.done.set()

    def _failure(self, error: BaseException) -> _Outcome:
        """A SANE status (or python-sane's complaint) as the exception and status of the module's table."""
        where = self._where()
        message = str(error)
        if isinstance(error, RuntimeError):
            return _Outcome(DeviceProtocolError(
                f"{where} ended the scan without image data ({message}); run its self-test"), "fault")
        if not isinstance(error, SaneError):
            return _Outcome(DeviceProtocolError(
                f"{where} failed during a scan: {type(error).__name__}: {error}"), "fault")
        if message == "Document feeder jammed":
            return _Outcome(ScannerJammed(
                f"paper jammed in {where}: open its feeder, remove the paper, close it; the scanner clears at "
                "its next scan or self-test"), "status", DeviceState.HARDWARE_ERROR, MediaState.JAMMED)
        if message == "Scanner cover is open":
            return _Outcome(CoverOpen(f"{where}: its cover is open; close the lid or the feeder door"),
                            "status", DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN)
        if message == "Document feeder out of documents":
            what = "the document feeder is empty" if self.feeder else "the scanner found no document"
            return _Outcome(NoPageFound(f"{where}: {what}; place the page and scan again"), "status",
                            DeviceState.ONLINE, MediaState.ABSENT, clear_fault=True)
        if message == "Device busy":
            return _Outcome(ScannerBusy(
                f"{where} is busy (another program or scan is using it); try again shortly"), "keep")
        if message in ("Error during device I/O", "Access to resource has been denied"):
            hint = ("check the scanner's power and USB cable" if message.startswith("Error")
                    else "give the kiosk's user access to the scanner (the scanner group / a udev rule)")
            return _Outcome(DeviceDisconnected(f"{where}: {message.lower()} during a scan; {hint}"), "drop")
        if message in ("Invalid argument", "Operation not supported", "Out of memory"):
            return _Outcome(DeviceProtocolError(
                f"{where} refused the scan ({message}) with {self._describe_settings()}; lower resolution or "
                f"area in [devices.{self.name}], or check the backend"), "fault")
        if message == "Operation was canceled":
            return _Outcome(DeviceError(f"the scan on {where} was cancelled at the scanner (its stop button?)"),
                            "keep")
        return _Outcome(DeviceProtocolError(f"{where} reported {message!r} during a scan"), "fault")

    def _after_failure(self, outcome: _Outcome, before: DeviceStatus) -> None:
        """Set the status a failure calls for (see the module's table)."""
        fault = str(outcome.error)
        if outcome.handling == "drop":
            self._drop_handle()
            self.set_status(DeviceState.OFFLINE, MediaState.UNKNOWN, fault)
        elif outcome.handling == "fault":
            self.set_status(DeviceState.HARDWARE_ERROR, None, fault)
        elif outcome.handling == "status":
            self.set_status(outcome.state, outcome.media, "" if outcome.clear_fault else fault)
        elif before.device in (DeviceState.BUSY, DeviceState.OFFLINE):
            self.set_status(DeviceState.ONLINE, None, "")
        else:  # the scanner is as it was (a jam stays a jam)
            self.set_status(before.device, before.media, before.fault)

    def _finish(self, raw: np.ndarray) -> ScannedPage:
        """Array from python-sane -> upright page, trimmed and judged."""
        if raw.ndim == 3 and raw.shape[2] == 1:
            image = np.ascontiguousarray(raw[:, :, 0])
        elif raw.ndim == 3 and raw.shape[2] == 3:
            image = np.ascontiguousarray(raw[:, :, ::-1])  # RGB -> BGR
        else:
            image = np.ascontiguousarray(raw)
        image = pagelib.trim_scan(image)
        verdict = pagelib.assess(image, pagelib.FLATBED_LIMITS)
        dpi = self.applied.resolution if self.applied else float(self.params.resolution)
        source = "feeder" if self.feeder else "flatbed"
        where = self._where()
        if Problem.NO_PAGE in verdict.problems:
            self.set_status(DeviceState.ONLINE, MediaState.ABSENT, "")
            raise NoPageFound(f"{where}: the scan is blank, nothing lay on the glass ({verdict.describe()})")
        if verdict.problems == (Problem.TOO_DARK,) and verdict.measures.get("spread", 99) < 6 \
                and verdict.measures.get("white_level", 255) < 20:
            fault = (f"{where} delivered an entirely black scan: its lamp or sensor may have failed; run its "
                     "self-test and check the lamp")
            self.set_status(DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN, fault)
            raise PageUnreadable(fault, verdict)
        if not verdict.ok:
            self.set_status(DeviceState.ONLINE, MediaState.PRESENT, "")
            raise PageUnreadable(f"{where}: the scanned page would not be readable: {verdict.describe()}", verdict)
        self.set_status(DeviceState.ONLINE, MediaState.PRESENT, "")
        image.flags.writeable = False
        log.info("%s scanned a page: %dx%d at %g dpi", where, image.shape[1], image.shape[0], dpi)
        return ScannedPage(image, dpi, verdict, source)

    # -- supervision -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Reopen after a SANE reload; DeviceDisconnected when the scanner is gone. Never waits
        behind a scan (a scan in progress is proof of life)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            with sane_library.try_lock() as free:
                if not free:
                    return
                self._ensure_handle()
        finally:
            self._lock.release()

    # -- self-test ---------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """Found and opened, settings taken, a small test scan: each in a technician's words."""
        results: list[SelfTestResult] = []
        with self._lock:
            opened_here = not self._wanted
            try:
                if opened_here:
                    self.open()
                handle = self._ensure_handle()
            except DeviceError as exc:
                return [SelfTestResult("scanner found", False, str(exc))]
            try:
                results.append(SelfTestResult("scanner found", True,
                                              f"SANE device {self.device_name} ({self.model}) opened"))
                results.append(self._area_result())
                results.append(self._test_scan(handle))
            finally:
                if opened_here:
                    self.close()
        return results

    def _area_result(self) -> SelfTestResult:
        a = self.applied
        assert a is not None
        p = self.params
        detail = f"settings taken: {self._describe_settings()}"
        if a.width_mm < p.width_mm - 1 or a.height_mm < p.height_mm - 1:
            return SelfTestResult("scan area", False, (
                f"{detail}, less than the {p.width_mm:g} x {p.height_mm:g} mm asked: the scanner reaches no "
                f"further, pages will be cut; use a scanner for the paper size or set width_mm/height_mm"))
        return SelfTestResult("scan area", True, detail)

    def _test_scan(self, handle: Any) -> SelfTestResult:
        """A small, low-resolution scan; the configured settings are restored afterwards."""
        try:
            with sane_library.locked():
                self._apply_settings(handle, SELF_TEST_DPI, (SELF_TEST_AREA_MM, SELF_TEST_AREA_MM))
            started = time.monotonic()
            image = self._read_image(handle, _Reporter(None))
            took = time.monotonic() - started
        except _Failed as failed:
            self._after_failure(failed.outcome, DeviceStatus(DeviceState.ONLINE, MediaState.UNKNOWN))
            return SelfTestResult("test scan", False, str(failed.outcome.error))
        finally:
            if self._handle is handle and sane_library.is_open(handle):
                with sane_library.locked():
                    self.applied = self._apply_settings(handle)
        level = float(np.percentile(image, 95))
        detail = f"{image.shape[1]}x{image.shape[0]} pixels at {SELF_TEST_DPI} dpi in {took:.1f} s"
        if level < 20:
            self.set_status(DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN, (
                f"{self._where()} scans entirely black: its lamp or sensor may have failed"))
            return SelfTestResult("test scan", False, f"{detail}, entirely black: the lamp or sensor may have "
                                  "failed; check the lamp, or whether the lid's backing is black")
        self.set_status(DeviceState.ONLINE, MediaState.UNKNOWN, "")
        return SelfTestResult("test scan", True, f"{detail}, picture has light (95th percentile {level:.0f})")


def _settable(handle: Any, key: str) -> bool:
    option = handle.opt.get(key)
    return option is not None and option.is_active() and option.is_settable()


def _nearest(option: Any, wanted: float) -> float | int:
    """The value closest to `wanted` that the option allows, of the option's type."""
    allowed = option.constraint
    if isinstance(allowed, list) and allowed:
        value = min(allowed, key=lambda v: abs(v - wanted))
    elif isinstance(allowed, tuple):
        low, high, quant = allowed
        value = min(max(wanted, low), high)
        if quant:
            value = min(high, low + round((value - low) / quant) * quant)
    else:
        value = wanted
    return float(value) if option.type == TYPE_FIXED else int(round(value))


class _Reporter:
    """Passes progress to the caller's callback: fractions only rise, and small steps are dropped."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.fraction = -1.0
        self.phase = ""

    def __call__(self, fraction: float, phase: Phase) -> None:
        if self.callback is None:
            return
        fraction = max(self.fraction, min(1.0, fraction))
        if phase.value == self.phase and fraction - self.fraction < 0.01:
            return
        self.fraction, self.phase = fraction, phase.value
        try:
            self.callback(fraction, phase.value)
        except Exception:  # a broken progress bar must not stop the scan
            log.exception("progress callback failed")
