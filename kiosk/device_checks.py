"""The device self-test every technician tool shares: `python -m provisioning selftest`,
`diagnose`, and the kiosk's maintenance screen.

    devices = open_configured(cfg)                    # the CLI; the screen passes terminal.devices
    try:
        checks = check_devices(devices, print_test_page=True, progress=say)
    finally:
        close_all(devices)
    print(format_table(checks))

Each device is asked for its status (devices.base.DeviceStatus) and its `self_test()`
results; it passed when it is online and every result passed. A driver that raises is a
failed check with its message, never an exception here. With `print_test_page`, receipt
printers print the test receipt (the one `provisioning test-print` prints, built by
`receipt_test_page` below) and, with `print_a4`, A4 printers print the A4 test page.

Threads: check_devices runs in the caller's thread (the maintenance screen runs it on a
worker thread and schedules `progress` onto its UI clock itself). Devices that are open
stay open, so the kiosk's own devices can be checked while the supervisor keeps them.
Nothing personal is in the results: the drivers mask card data, and every detail passes
through kiosk.privacy.mask_text again. No Kivy, no argparse.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from config.schema import KioskConfig
from devices import registry
from devices.base import (
    CLOSED,
    Device,
    DeviceError,
    DeviceState,
    DeviceStatus,
    MediaState,
    SelfTestResult,
)
from kiosk.privacy import mask_text

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (device name, what is happening now)

RECEIPT_PRINTER = "receipt_printer"
A4_PRINTER = "a4_printer"
A4_TIMEOUT_S = 120.0


@dataclass
class DeviceCheck:
    """The outcome for one device: what a technician reads in the table and the help desk in JSON."""

    name: str
    device_class: str
    driver: str
    passed: bool
    status: dict[str, str]  # DeviceStatus.as_dict(): device, media, fault
    results: list[SelfTestResult] = field(default_factory=list)
    printed: bool | None = None  # a test page: True printed, False failed, None not asked/not a printer
    duration_s: float = 0.0
    print_detail: str = ""  # what the test page did, in words

    @property
    def failed_results(self) -> list[SelfTestResult]:
        return [r for r in self.results if not r.passed]

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.name, "class": self.device_class, "driver": self.driver, "passed": self.passed,
                "status": dict(self.status),
                "results": [{"check": r.name, "passed": r.passed, "detail": r.detail} for r in self.results],
                "printed": self.printed, "print_detail": self.print_detail,
                "duration_s": round(self.duration_s, 3)}


class UnknownDevice(LookupError):
    """A device name that is not in the configuration; `str()` lists the configured ones."""


class UnavailableDevice(Device):
    """Stands in for a configured device that could not even be built or reached (its driver
    refused the settings, its emulator did not start, the kiosk holds its port): its status
    and its one failed self-test result say why."""

    def __init__(self, name: str, device_class: str, driver: str, reason: str,
                 state: DeviceState = DeviceState.NO_DEVICE) -> None:
        super().__init__(name)
        self.device_class = device_class
        self.driver = driver
        self.reason = reason
        self._state = state
        self.set_status(state, MediaState.UNKNOWN, reason)

    def self_test(self) -> list[SelfTestResult]:
        return [SelfTestResult("device available", False, self.reason)]

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def close(self) -> None:  # keeps saying why it is not there
        pass


# -- the test receipt (shared with `provisioning test-print`) --------------------------------------------
@dataclass(frozen=True)
class ReceiptTestPage:
    document: Any  # devices.receipt_printer.document.Document
    settings: str  # the printer settings printed on it, e.g. "/dev/ttyS0 9600 baud, gb18030, 80 mm"
    check_code: str  # what a phone scanning its QR code shows


def receipt_test_page(printer: Any, terminal_id: str, location: str,
                      now: dt.datetime | None = None) -> ReceiptTestPage:
    """The test receipt (config/receipts.toml `test_print`): the terminal's id and location, Chinese
    text, styles, a ruler and a QR code printed by the printer's own command."""
    from kiosk import receipts

    params = getattr(printer, "params", None)
    settings = (f"{getattr(printer, 'port_name', '?')} {getattr(params, 'baudrate', '?')} baud, "
                f"{getattr(params, 'encoding', '?')}, {getattr(params, 'paper_width', '?')} mm")
    check = f"打印测试 {terminal_id}"
    when = now or dt.datetime.now().astimezone()
    values = {"terminal_id": terminal_id, "location": location,
              "printed_at": when.strftime("%Y-%m-%d %H:%M:%S"), "printer_settings": settings,
              "check_code": check}
    return ReceiptTestPage(receipts.build("test_print", values, "zh-CN"), settings, check)


# -- building and opening the configured devices -------------------------------------------------------
def driver_name(device: Device) -> str:
    """The registry's name of a device's driver (the config's `driver`), from its class."""
    explicit = getattr(device, "driver", None)
    if isinstance(explicit, str):
        return explicit
    cls = type(device)
    where = f"{cls.__module__}:{cls.__qualname__}"
    for drivers in registry.DRIVERS.values():
        for name, path in drivers.items():
            if path == where:
                return name
    return cls.__name__


def selected_names(cfg: KioskConfig, names: Iterable[str] | None = None) -> list[str]:
    """The devices to check: every enabled one, or exactly `names` (disabled ones too, so a
    device can be tried before it is switched on). UnknownDevice for a name not configured."""
    if names is None:
        return [n for n, d in cfg.devices.items() if d.enabled]
    chosen = list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in cfg.devices]
    if unknown:
        known = ", ".join(cfg.devices) or "none"
        raise UnknownDevice(f"no device named {', '.join(repr(n) for n in unknown)} in the configuration; "
                            f"configured: {known}")
    return chosen


def open_configured(cfg: KioskConfig, names: Iterable[str] | None = None, *,
                    params: Mapping[str, Mapping[str, Any]] | None = None,
                    unavailable: Mapping[str, str] | None = None) -> dict[str, Device]:
    """Build and open the configured devices (every enabled one, or `names`), as the terminal
    does but without emulators: `params` replaces a device's driver parameters (pointed at an
    emulator by kiosk.device_setup.start_emulators), `unavailable` names devices not to touch
    at all, with the reason (they come back as UnavailableDevice). A device that fails to open
    is still returned, its status saying why. Raises UnknownDevice for a name not configured."""
    params = params or {}
    unavailable = unavailable or {}
    devices: dict[str, Device] = {}
    for name in selected_names(cfg, names):
        dev_cfg = cfg.devices[name]
        if name in unavailable:
            devices[name] = UnavailableDevice(name, dev_cfg.device_class, dev_cfg.driver, unavailable[name])
            continue
        try:
            cls = registry.driver_class(dev_cfg.device_class, dev_cfg.driver)
            device = cls(name, **dict(params.get(name, dev_cfg.driver_params())))
        except Exception as exc:  # the loader validated them; a driver may still refuse
            devices[name] = UnavailableDevice(name, dev_cfg.device_class, dev_cfg.driver,
                                              f"the {dev_cfg.driver} driver refused its settings: {exc}")
            continue
        devices[name] = device
        try:
            device.open()
        except Exception as exc:  # the status says why (Device.open sets it for DeviceErrors)
            if not isinstance(exc, DeviceError):
                device.set_status(DeviceState.OFFLINE, fault=f"cannot open: {type(exc).__name__}: {exc}")
            log.info("%s did not open: %s", name, exc)
    return devices


def close_all(devices: Mapping[str, Device]) -> None:
    """Close every device; one that fails to close does not keep the others open."""
    for name, device in devices.items():
        try:
            device.close()
        except Exception as exc:
            log.warning("%s did not close cleanly: %s", name, exc)


# -- the check ------------------------------------------------------------------------------------------
def _masked(result: SelfTestResult) -> SelfTestResult:
    return SelfTestResult(mask_text(str(result.name)), bool(result.passed), mask_text(str(result.detail)))


def _status(device: Device) -> DeviceStatus:
    try:
        return device.status()
    except Exception as exc:
        return DeviceStatus(DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN,
                            f"the driver failed to report its status: {type(exc).__name__}: {exc}")


def _print_receipt(device: Device, terminal_id: str, location: str) -> tuple[bool, str]:
    page = receipt_test_page(device, terminal_id, location)
    device.print_document(page.document)  # type: ignore[attr-defined]
    return True, (f"test receipt printed ({page.settings}); check the paper: Chinese reads correctly, the "
                  f"ruler fits one line, a phone scanning the QR code shows: {page.check_code}")


def _print_a4(device: Device, terminal_id: str, location: str, timeout_s: float) -> tuple[bool, str]:
    from devices.a4_printer.interface import JobState
    from kiosk.certificates import test_page

    pdf = test_page(terminal_id, location, dt.datetime.now().astimezone())
    job = device.submit(pdf, title="test-page")  # type: ignore[attr-defined]
    final = device.wait(job, timeout_s)  # type: ignore[attr-defined]
    if final.state is not JobState.DONE:
        return False, f"the A4 test page did not print: {final.describe()}"
    return True, ("A4 test page printed; check the paper: Chinese reads correctly, the frame and ruler are "
                  "whole, the 100 mm square measures 100 mm, the QR code scans")


def check_device(device: Device, *, print_test_page: bool = False, print_a4: bool = False,
                 terminal_id: str = "", location: str = "", a4_timeout_s: float = A4_TIMEOUT_S,
                 progress: Progress | None = None) -> DeviceCheck:
    """Check one device (see check_devices)."""
    say = progress or (lambda _name, _what: None)
    name = device.name
    started = time.monotonic()
    say(name, "self-test")
    try:
        raw = device.self_test()
        results = [_masked(r) for r in raw]
    except Exception as exc:  # a driver bug or a fault it did not turn into a result
        log.warning("%s: self-test raised %s: %s", name, type(exc).__name__, exc)
        results = [SelfTestResult("self-test ran", False, mask_text(f"the driver raised {type(exc).__name__}: {exc}"))]
    if not results:
        results = [SelfTestResult("self-test ran", False, "the driver reported no checks")]
    status = _status(device)
    passed = status.device is DeviceState.ONLINE and all(r.passed for r in results)
    printed: bool | None = None
    print_detail = ""
    kind = getattr(device, "device_class", "")
    wants_print = (print_test_page and kind == RECEIPT_PRINTER) or (print_a4 and kind == A4_PRINTER)
    if wants_print:
        if not passed:
            print_detail = "no test page: the self-test failed"
        else:
            say(name, "printing a test page")
            try:
                if kind == RECEIPT_PRINTER:
                    printed, print_detail = _print_receipt(device, terminal_id, location)
                else:
                    printed, print_detail = _print_a4(device, terminal_id, location, a4_timeout_s)
            except Exception as exc:
                printed, print_detail = False, f"the test page did not print: {exc}"
            print_detail = mask_text(print_detail)
            if not printed:
                passed = False
                results.append(SelfTestResult("test page", False, print_detail))
            status = _status(device)
    check = DeviceCheck(name=name, device_class=kind, driver=driver_name(device), passed=passed,
                        status={k: mask_text(v) for k, v in status.as_dict().items()}, results=results,
                        printed=printed, duration_s=time.monotonic() - started, print_detail=print_detail)
    say(name, "passed" if passed else "FAILED")
    return check


def check_devices(devices: Mapping[str, Device], *, print_test_page: bool = False,
                  progress: Progress | None = None, print_a4: bool = False, terminal_id: str = "",
                  location: str = "", a4_timeout_s: float = A4_TIMEOUT_S) -> list[DeviceCheck]:
    """Check every device, in order: its status, its self-test, and with `print_test_page` a
    test receipt on receipt printers (`print_a4`: an A4 test page on A4 printers too), which
    carry `terminal_id` and `location`. `progress(name, what)` is told each step. Never raises
    for a device: a driver's exception becomes a failed check with its message."""
    return [check_device(device, print_test_page=print_test_page, print_a4=print_a4, terminal_id=terminal_id,
                         location=location, a4_timeout_s=a4_timeout_s, progress=progress)
            for device in devices.values()]


# -- the table --------------------------------------------------------------------------------------------
def describe_status(status: Mapping[str, str]) -> str:
    """"online, paper present" / "offline: cannot open /dev/ttyS0 ..." in a technician's words."""
    text = status.get("device", "?")
    media = status.get("media", "")
    if media and media not in (MediaState.NOT_SUPPORTED.value, MediaState.UNKNOWN.value):
        text += f", media {media}"
    fault = status.get("fault", "")
    if fault and fault != CLOSED:
        text += f": {fault}"
    return text


def format_table(checks: Iterable[DeviceCheck], *, details: bool = False) -> str:
    """The pass/fail table in words: one row per device; under a failed device the checks that
    failed (each says what to check) and its status; `details` lists every check."""
    checks = list(checks)
    if not checks:
        return "no devices checked\n"
    widths = [max(len(h), *(len(v) for v in col)) for h, col in (
        ("DEVICE", [c.name for c in checks]), ("CLASS", [c.device_class for c in checks]),
        ("DRIVER", [c.driver for c in checks]))]
    lines = [f"{'DEVICE':<{widths[0]}}  {'CLASS':<{widths[1]}}  {'DRIVER':<{widths[2]}}  RESULT"]
    for c in checks:
        ok = sum(r.passed for r in c.results)
        summary = f"{ok}/{len(c.results)} checks"
        if c.printed is True:
            summary += ", test page printed"
        row = f"{c.name:<{widths[0]}}  {c.device_class:<{widths[1]}}  {c.driver:<{widths[2]}}  "
        lines.append(row + ("pass" if c.passed else "FAIL") + f"    {summary}, {c.duration_s:.1f} s")
        shown = c.results if details else ([] if c.passed else c.failed_results)
        for r in shown:
            lines.append(f"    {'ok  ' if r.passed else 'FAIL'} {r.name}: {r.detail}")
        if not c.passed or details:
            fault = c.status.get("fault", "")
            said = bool(fault) and any(fault in r.detail for r in shown)  # the same words once is enough
            lines.append(f"    status: {describe_status({**c.status, 'fault': '' if said else fault})}")
        if c.print_detail and (details or c.printed):
            lines.append(f"    {c.print_detail}")
    failed = [c.name for c in checks if not c.passed]
    lines.append("")
    if failed:
        lines.append(f"{len(checks) - len(failed)} of {len(checks)} devices passed; FAILED: {', '.join(failed)} "
                     "(the lines under each say what to check)")
    else:
        lines.append(f"all {len(checks)} devices passed")
    return "\n".join(lines) + "\n"
