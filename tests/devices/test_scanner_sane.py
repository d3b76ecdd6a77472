"""The SANE driver against SANE's real test backend, scripted by the emulator.

libsane is process-global (sane_init reads SANE_CONFIG_DIR once): the whole pytest
process uses ONE emulator config dir, from a session fixture; each test resets the
emulator's script. Every scan goes through libsane, the dll backend and the test
backend's reader, as with a USB scanner. No wall-clock assertions: the timeout test
uses a scanner that pauses 200 ms between buffers against a 0.05 s limit.
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from devices import registry
from devices.base import (
    DeviceDisconnected,
    DeviceEvent,
    DeviceState,
    DeviceTimeout,
    MediaState,
)
from devices.scanner import sane_library
from devices.scanner.interface import (
    CoverOpen,
    NoPageFound,
    PageUnreadable,
    Problem,
    ScannerBusy,
    ScannerJammed,
)
from devices.scanner.sane_driver import SaneScanner
from devices.scanner.sane_emulator import SaneTestEmulator
from devices.supervisor import Supervisor

if not [*Path("/usr/lib").glob("*/sane/libsane-test.so*"), *Path("/usr/lib").glob("sane/libsane-test.so*")]:
    pytest.fail("SANE's test backend is missing: apt-get install libsane1 (and sane-utils for scanimage)",
                pytrace=False)


@pytest.fixture(scope="session")
def sane_emulator() -> Iterator[SaneTestEmulator]:
    """The one SANE config dir of this process (see module notes)."""
    emulator = SaneTestEmulator()
    emulator.start()
    yield emulator
    emulator.stop()
    sane_library.shutdown()


@pytest.fixture
def emu(sane_emulator: SaneTestEmulator) -> Iterator[SaneTestEmulator]:
    sane_emulator.start()  # takes over again should another emulator of this process have started since
    sane_emulator.set_picture("grid")
    sane_emulator.clear()
    sane_emulator.slow(0)
    sane_emulator.replug()
    yield sane_emulator


@pytest.fixture
def scanners(emu: SaneTestEmulator) -> Iterator[Callable[..., SaneScanner]]:
    made: list[SaneScanner] = []

    def make(**params: Any) -> SaneScanner:
        params.setdefault("device", "test")
        params.setdefault("config_dir", str(emu.dir))
        params.setdefault("resolution", 75)
        scanner = SaneScanner("scanner", **params)
        made.append(scanner)
        return scanner

    yield make
    for scanner in made:
        scanner.close()


def opened(scanner: SaneScanner) -> SaneScanner:
    scanner.open()
    return scanner


# -- scanning ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("resolution,mode", [(150, "Color"), (300, "Gray")])
def test_a_scan_is_a_page_of_the_size_the_resolution_gives(scanners: Callable[..., SaneScanner],
                                                            resolution: int, mode: str) -> None:
    scanner = opened(scanners(resolution=resolution, mode=mode))
    page = scanner.scan()
    side = int(200 / 25.4 * resolution)  # the test backend's area ends at 200 x 200 mm
    assert page.image.shape[:2] == (side, side)
    assert page.image.ndim == (3 if mode == "Color" else 2)
    assert page.dpi == resolution
    assert page.size_mm == pytest.approx((200, 200), abs=0.5)
    assert page.source == "flatbed"
    assert page.readability.ok
    # the grid: 10 mm black and white squares
    square = round(10 / 25.4 * resolution)
    grey = page.image if page.image.ndim == 2 else page.image[:, :, 1]
    assert grey[square // 2, square // 2] != grey[square // 2, square + square // 2]
    assert not page.image.flags.writeable
    assert scanner.status().device == DeviceState.ONLINE


def test_progress_rises_from_starting_through_scanning_to_done(scanners: Callable[..., SaneScanner],
                                                               emu: SaneTestEmulator) -> None:
    emu.slow(20)
    scanner = opened(scanners(resolution=150, mode="Gray"))
    seen: list[tuple[float, str]] = []
    scanner.scan(lambda fraction, phase: seen.append((fraction, phase)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert seen[0] == (0.0, "starting") and seen[-1] == (1.0, "done")
    scanning = [f for f, phase in seen if phase == "scanning"]
    assert len(scanning) >= 2 and 0.0 < scanning[0] < 0.9
    assert "processing" in [phase for _, phase in seen]


def _sigpipe_fatal() -> bool:
    """Whether a write to a closed socket would kill this process (SIGPIPE neither ignored nor caught)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    bit = 1 << (signal.SIGPIPE - 1)
    return not (int(fields["SigIgn"], 16) & bit or int(fields["SigCgt"], 16) & bit)


def test_scans_never_leave_sigpipe_fatal(scanners: Callable[..., SaneScanner]) -> None:
    """sane-backends' thread helper resets SIGPIPE to its default after each scan (see sane_library)."""
    scanner = opened(scanners())
    scanner.scan()
    assert not _sigpipe_fatal()
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as if SANE was first loaded off the main thread
    try:
        scanner.scan()
        assert not _sigpipe_fatal()
    finally:
        signal.signal(signal.SIGPIPE, previous)


def test_status_is_busy_during_the_scan(scanners: Callable[..., SaneScanner]) -> None:
    scanner = opened(scanners())
    states: list[str] = []
    scanner.subscribe(lambda e: states.append(e.data["device"]) if e.kind == "status_changed" else None)
    scanner.scan()
    assert states[:2] == ["busy", "online"]


def test_a_document_feeder_gives_feeder_pages_and_runs_empty(scanners: Callable[..., SaneScanner]) -> None:
    scanner = opened(scanners(source="Automatic Document Feeder", resolution=50))
    pages = 0
    with pytest.raises(NoPageFound, match="feeder is empty"):
        while pages < 20:  # the test backend's feeder holds 10 pages
            assert scanner.scan().source == "feeder"
            pages += 1
    assert pages == 10
    assert scanner.status().media == MediaState.ABSENT


# -- faults -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault,error,state,media", [
    ("jam", ScannerJammed, DeviceState.HARDWARE_ERROR, MediaState.JAMMED),
    ("cover_open", CoverOpen, DeviceState.HARDWARE_ERROR, None),
    ("feeder_empty", NoPageFound, DeviceState.ONLINE, MediaState.ABSENT),
    ("busy", ScannerBusy, DeviceState.ONLINE, None),
    ("io_error", DeviceDisconnected, DeviceState.OFFLINE, None),
    ("denied", DeviceDisconnected, DeviceState.OFFLINE, None),
])
def test_each_scripted_fault_gives_its_exception_and_status(scanners: Callable[..., SaneScanner],
                                                            emu: SaneTestEmulator, fault: str, error: type,
                                                            state: DeviceState, media: MediaState | None) -> None:
    scanner = opened(scanners())
    getattr(emu, fault)()
    with pytest.raises(error) as caught:
        scanner.scan()
    status = scanner.status()
    assert status.device == state
    if media is not None:
        assert status.media == media
    if state != DeviceState.ONLINE:
        assert status.fault == str(caught.value)
        assert "scanner test:0" in status.fault
    emu.clear()  # the paper removed, the cover closed, the cable back: the next scan works
    assert scanner.scan().readability.ok
    assert scanner.status().device == DeviceState.ONLINE and scanner.status().fault == ""


def test_jam_text_tells_the_technician_what_to_do(scanners: Callable[..., SaneScanner],
                                                  emu: SaneTestEmulator) -> None:
    scanner = opened(scanners())
    emu.jam()
    with pytest.raises(ScannerJammed, match="remove the paper"):
        scanner.scan()


def test_an_empty_glass_is_no_page(scanners: Callable[..., SaneScanner], emu: SaneTestEmulator) -> None:
    scanner = opened(scanners())
    emu.set_picture("white")
    with pytest.raises(NoPageFound, match="blank"):
        scanner.scan()
    assert scanner.status().media == MediaState.ABSENT


def test_an_all_black_scan_is_a_lamp_fault(scanners: Callable[..., SaneScanner], emu: SaneTestEmulator) -> None:
    scanner = opened(scanners())
    emu.set_picture("black")
    with pytest.raises(PageUnreadable) as caught:
        scanner.scan()
    assert caught.value.readability.problems == (Problem.TOO_DARK,)
    assert scanner.status().device == DeviceState.HARDWARE_ERROR and "lamp" in scanner.status().fault


def test_a_silent_scanner_times_out_and_is_reopened(scanners: Callable[..., SaneScanner],
                                                    emu: SaneTestEmulator) -> None:
    emu.slow(200)  # 200 ms pauses between buffers, against a 0.05 s limit
    scanner = opened(scanners(timeout_s=0.05))
    with pytest.raises(DeviceTimeout, match="sent nothing for 0.05 s"):
        scanner.scan()
    assert scanner.status().device == DeviceState.OFFLINE
    emu.slow(0)
    assert scanner.scan().readability.ok  # a new handle, opened by the scan itself
    assert scanner.status().device == DeviceState.ONLINE


# -- lifecycle --------------------------------------------------------------------------------------
def test_unplugged_scanner_goes_offline_and_comes_back_through_the_supervisor(
        scanners: Callable[..., SaneScanner], emu: SaneTestEmulator) -> None:
    scanner = scanners()
    events: list[DeviceEvent] = []
    scanner.subscribe(events.append)
    supervisor = Supervisor([scanner], backoff_min=0.0, backoff_max=0.0)
    supervisor.round()  # opens it
    assert scanner.status().device == DeviceState.ONLINE
    emu.unplug()
    with pytest.raises(DeviceDisconnected, match="no SANE scanner matching 'test'"):
        scanner.poll()
    supervisor.round()
    assert scanner.status().device == DeviceState.OFFLINE
    supervisor.round()  # still gone
    assert scanner.status().device == DeviceState.OFFLINE
    emu.replug()
    supervisor.round()
    assert scanner.status().device == DeviceState.ONLINE
    assert scanner.scan().readability.ok
    assert [e.data["device"] for e in events if e.kind == "status_changed"][:2] == ["online", "offline"]


def test_a_reload_of_sane_is_survived_without_a_fault(scanners: Callable[..., SaneScanner]) -> None:
    scanner = opened(scanners())
    sane_library.reload("test")
    scanner.poll()  # reopens the handle closed by the reload
    assert scanner.status().device == DeviceState.ONLINE
    assert scanner.scan().readability.ok


def test_unknown_device_says_what_sane_lists(scanners: Callable[..., SaneScanner]) -> None:
    scanner = scanners(device="fujitsu")
    with pytest.raises(DeviceDisconnected, match=r"SANE lists: test:0"):
        scanner.open()
    assert scanner.status().device == DeviceState.OFFLINE


def test_a_second_config_dir_is_refused_while_a_scanner_is_open(scanners: Callable[..., SaneScanner],
                                                                tmp_path: Path) -> None:
    opened(scanners())
    other = scanners(config_dir=str(tmp_path))
    with pytest.raises(sane_library.SaneConfigConflict, match="share one config dir"):
        other.open()


def test_a_source_the_scanner_lacks_is_named_with_what_it_offers(scanners: Callable[..., SaneScanner]) -> None:
    with pytest.raises(Exception, match="Automatic Document Feeder"):
        scanners(source="Transparency").open()


def test_self_test_finds_the_scanner_and_scans(scanners: Callable[..., SaneScanner]) -> None:
    scanner = scanners(resolution=300)
    results = {r.name: r for r in scanner.self_test()}
    assert results["scanner found"].passed and "test:0" in results["scanner found"].detail
    assert results["test scan"].passed and "147x147" in results["test scan"].detail  # 50 mm at 75 dpi
    assert not results["scan area"].passed and "200 x 200" in results["scan area"].detail
    assert scanner.status().device == DeviceState.OFFLINE  # opened for the test only
    scanner.open()
    assert scanner.scan().dpi == 300  # the configured settings are back after a self-test


def test_self_test_reports_a_jam(scanners: Callable[..., SaneScanner], emu: SaneTestEmulator) -> None:
    emu.jam()
    results = {r.name: r for r in opened(scanners()).self_test()}
    assert not results["test scan"].passed and "jammed" in results["test scan"].detail


# -- wiring, config and console -------------------------------------------------------------------
def test_terminal_style_wiring_from_the_registry(emu: SaneTestEmulator) -> None:
    """As kiosk/terminal.py does it: DRIVER_DEFAULTS, then start()'s value into ADDRESS_PARAM."""
    emulator_cls = registry.emulator_class("scanner", "sane")
    assert emulator_cls is SaneTestEmulator
    params: dict[str, Any] = {"resolution": 75}
    for key, value in emulator_cls.DRIVER_DEFAULTS.items():
        params.setdefault(key, value)
    params[emulator_cls.ADDRESS_PARAM] = emu.start()  # the running emulator answers with its dir again
    scanner = registry.driver_class("scanner", "sane")("scanner", **params)
    try:
        scanner.open()
        assert scanner.scan().image.shape[:2] == (590, 590)  # 200 mm at 75 dpi
    finally:
        scanner.close()


def test_params_are_validated() -> None:
    with pytest.raises(TypeError):
        SaneScanner("scanner", device="test", colour=True)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        SaneScanner.Params(device="test", colour=True)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        SaneScanner("scanner", device="test", resolution=5000)
    with pytest.raises(pydantic.ValidationError):
        SaneScanner("scanner", device="test", mode="Lineart")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        SaneScanner("scanner", device="")


def test_a_later_emulator_takes_over_and_the_first_stops_following(sane_emulator: SaneTestEmulator) -> None:
    other = SaneTestEmulator(picture="white")
    assert other.start() == str(sane_emulator.dir)  # the process's one dir
    assert other.current and not sane_emulator.current
    assert "not running" in sane_emulator.command("jam")
    other.stop()
    assert not other.current


def test_console_commands_script_the_scanner(scanners: Callable[..., SaneScanner], emu: SaneTestEmulator) -> None:
    assert "jam" in emu.command("help")
    assert "SANE_STATUS_JAMMED" in emu.command("jam")
    scanner = opened(scanners())
    with pytest.raises(ScannerJammed):
        scanner.scan()
    assert emu.command("clear") == "no fault"
    assert "error" in emu.command("slow 500")
    assert "unknown" in emu.command("fly")
    assert "Solid white" in emu.command("picture white")
    with pytest.raises(NoPageFound):
        scanner.scan()
    assert "grid" in emu.command("picture grid").lower()
    assert np.asarray(scanner.scan().image).size > 0
