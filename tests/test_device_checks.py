"""kiosk/device_checks.py in-process: the core that `provisioning selftest`, `diagnose` and the
maintenance screen share. Real drivers against the ESC/POS emulator on a real pty, a port that
does not exist, and drivers of our own that misbehave."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load_config
from devices.base import Device, DeviceState, MediaState, SelfTestResult
from devices.receipt_printer.emulator import EscPosEmulator
from kiosk.device_checks import (
    DeviceCheck,
    UnavailableDevice,
    UnknownDevice,
    check_devices,
    close_all,
    format_table,
    open_configured,
)
from terminal_config import TERMINAL, write_config  # tests/terminal_config.py


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[tuple[EscPosEmulator, str]]:
    emu = EscPosEmulator(link=str(tmp_path / "printer.tty"), render=False)
    port = emu.start()
    yield emu, port
    emu.stop()


@pytest.fixture(autouse=True)
def _no_kiosk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KIOSK"):
            monkeypatch.delenv(name)


def test_a_working_printer_prints_and_a_missing_port_fails_with_what_to_check(
        tmp_path: Path, printer: tuple[EscPosEmulator, str]) -> None:
    emu, port = printer
    cfg = load_config(write_config(tmp_path, {
        "receipt_printer": f'port = "{port}"\nprint_speed_mm_s = 0.0',
        "qr_scanner": f'port = "{tmp_path / "no-such-tty"}"'}))
    seen: list[tuple[str, str]] = []
    devices = open_configured(cfg)
    try:
        assert list(devices) == ["receipt_printer", "qr_scanner"]  # enabled ones, in config order
        checks = check_devices(devices, print_test_page=True, terminal_id=TERMINAL, location="测试网点一楼",
                               progress=lambda name, what: seen.append((name, what)))
    finally:
        close_all(devices)
    good, broken = checks
    assert good.passed and good.printed is True and good.driver == "escpos_serial"
    assert good.status["device"] == "online" and all(r.passed for r in good.results)
    receipts = emu.receipts()
    assert len(receipts) == 1 and TERMINAL in receipts[0].text
    assert [q.data.decode() for q in receipts[0].qr_codes()] == [f"打印测试 {TERMINAL}"]
    assert not broken.passed and broken.printed is None and broken.device_class == "qr_scanner"
    assert broken.status["device"] == "offline"
    assert any("no-such-tty" in r.detail and not r.passed for r in broken.results)
    assert ("receipt_printer", "printing a test page") in seen and ("qr_scanner", "FAILED") in seen
    table = format_table(checks)
    rows = {line.split()[0]: line for line in table.splitlines() if line and not line.startswith(" ")}
    assert "pass" in rows["receipt_printer"].split() and "FAIL" in rows["qr_scanner"].split()
    assert "check the scanner's" in table  # the driver's own words say what to check
    assert "1 of 2 devices passed; FAILED: qr_scanner" in table
    as_json = broken.as_dict()
    assert as_json["device"] == "qr_scanner" and as_json["results"][0]["check"] == "port opens"


def test_no_paper_fails_and_prints_nothing(tmp_path: Path, printer: tuple[EscPosEmulator, str]) -> None:
    emu, port = printer
    emu.paper_out()
    cfg = load_config(write_config(tmp_path, {"receipt_printer": f'port = "{port}"\nprint_speed_mm_s = 0.0'}))
    devices = open_configured(cfg)
    try:
        [check] = check_devices(devices, print_test_page=True)
    finally:
        close_all(devices)
    assert not check.passed and check.printed is None and "no test page" in check.print_detail
    assert [r.name for r in check.failed_results] == ["paper"]
    assert "load a new roll" in format_table([check])
    assert emu.receipts(timeout=0.2) == []


class Misbehaving(Device):
    device_class = "receipt_printer"

    def __init__(self, name: str, *, raises: bool = False, online: bool = True) -> None:
        super().__init__(name)
        self.raises = raises
        self.set_status(DeviceState.ONLINE if online else DeviceState.OFFLINE, MediaState.PRESENT,
                        "" if online else "cable pulled")

    def self_test(self) -> list[SelfTestResult]:
        if self.raises:
            raise RuntimeError("driver bug while reading card 110101199003070011")
        return [SelfTestResult("port opens", True, "ok")]

    def print_document(self, document: object) -> None:
        raise OSError("head too hot")

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass


def test_driver_exceptions_become_failed_checks_never_errors() -> None:
    checks = check_devices({"a": Misbehaving("a", raises=True), "b": Misbehaving("b", online=False),
                            "c": Misbehaving("c")}, print_test_page=True, terminal_id=TERMINAL)
    crashed, offline, unprinted = checks
    assert not crashed.passed and "RuntimeError" in crashed.results[0].detail
    assert "110101199003070011" not in crashed.results[0].detail  # masked again, defence in depth
    assert "110101********0011" in crashed.results[0].detail
    assert not offline.passed and offline.status["fault"] == "cable pulled"  # results passed, device offline
    assert not unprinted.passed and unprinted.printed is False and "head too hot" in unprinted.print_detail
    assert "test page" in [r.name for r in unprinted.failed_results]
    assert "FAILED: a, b, c" in format_table(checks)


def test_unknown_names_list_the_configured_ones_and_bad_settings_are_a_failed_row(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, {"receipt_printer": 'port = "/dev/null-printer"'}))
    with pytest.raises(UnknownDevice, match="'printer'.*configured: idcard, smartcard, camera, receipt_printer"):
        open_configured(cfg, ["printer"])
    devices = open_configured(cfg, ["receipt_printer"], unavailable={"receipt_printer": "its emulator did not start"})
    [check] = check_devices(devices)
    assert isinstance(devices["receipt_printer"], UnavailableDevice)
    assert not check.passed and check.status["device"] == "no_device"
    assert check.results[0].detail == "its emulator did not start"
    assert isinstance(check, DeviceCheck) and check.driver == "escpos_serial"
