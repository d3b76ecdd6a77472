"""The real ESC/POS driver printing into the emulator over a real pseudo-terminal.

Every receipt template goes through the whole stack: template -> Document -> bytes ->
pty -> the emulator's parser -> PNG, whose QR code zxing-cpp must read back. The PNGs
are copied to artifacts/receipts/ for a person to look at. Faults are scripted on the
emulator and must come out of the driver as the documented exceptions, statuses and
events. No wall-clock assertions: conditions are awaited with generous deadlines.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from pydantic import ValidationError
from receipt_printer_harness import (
    ARTIFACTS,
    PROGRESS_VALUES,
    SAMPLE_VALUES,
    TICKET_VALUES,
    Events,
    make_printer,
    printer,
    printer_emu,
    require_font,
    wait_until,
)

from devices import registry
from devices.base import DeviceDisconnected, DeviceState, DeviceTimeout, MediaState
from devices.receipt_printer import CoverOpen, Document, PaperOut, PrinterJammed
from devices.receipt_printer.driver import EscPosSerialPrinter
from devices.receipt_printer.emulator import EscPosEmulator
from devices.supervisor import Supervisor
from kiosk import receipts

__all__ = ["printer", "printer_emu"]  # fixtures, imported for pytest

TEMPLATES = [
    ("acceptance", "zh-CN", SAMPLE_VALUES),
    ("acceptance", "en", SAMPLE_VALUES),
    ("queue_ticket", "zh-CN", TICKET_VALUES),
    ("progress", "zh-CN", PROGRESS_VALUES),
]
MONEY = "缴费金额：￥12.50，已收讫。备注：无"


def printed_lines(document: Document, columns: int = 48) -> list[str]:
    """The lines the document's text blocks should come out as (after the driver's wrapping)."""
    from devices.receipt_printer.document import Text

    return [line for block in document.blocks if isinstance(block, Text) for line in block.lines(columns)]


# -- the templates, end to end ------------------------------------------------------------------
@pytest.mark.parametrize(("name", "language", "values"), TEMPLATES, ids=[f"{t[0]}-{t[1]}" for t in TEMPLATES])
def test_template_prints_through_the_driver(printer_emu: EscPosEmulator, printer: EscPosSerialPrinter,
                                            name: str, language: str, values: dict[str, Any]) -> None:
    document = receipts.build(name, values, language)
    printer.print_document(document)
    (receipt,) = printer_emu.receipts()
    assert receipt.cut and receipt.png is not None

    # every text line arrived intact, in order, none broken by the printer at the paper edge
    texts = [t for t in receipt.texts() if t.strip() and set(t) not in ({"-"}, {"="})]
    assert texts == [t for t in printed_lines(document) if t.strip()]
    assert not any(line.wrapped for line in receipt.lines())

    title = receipt.lines()[0]
    assert title.align == "center" and title.style() == {"bold": True, "underline": 0, "width": 2, "height": 2}
    assert receipt.commands.count("FS &") == receipt.commands.count("FS .") > 0
    assert "GS V" in receipt.commands and "GS v 0" not in receipt.commands

    if "progress_url" in values:
        (qr,) = receipt.qr_codes()
        assert qr.text == values["progress_url"] and qr.module_size == 6 and qr.error_correction == "M"
        assert [c for c in receipt.commands if c.startswith("GS ( k")][-1] == "GS ( k fn 81"
        with Image.open(receipt.png) as page:
            assert page.width == 576
            assert [r.text for r in zxingcpp.read_barcodes(page)] == [values["progress_url"]]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(receipt.png, ARTIFACTS / f"{name}-{language}.png")


def test_acceptance_receipt_says_calmly_when_the_application_waits_in_the_outbox(
        printer_emu: EscPosEmulator, printer: EscPosSerialPrinter) -> None:
    printer.print_document(receipts.build("acceptance", SAMPLE_VALUES))
    printer.print_document(receipts.build("acceptance", {**SAMPLE_VALUES, "queued": False}))
    queued, sent = (r.text.replace("\n", "") for r in printer_emu.receipts())
    assert "网络恢复后将自动提交，无需再次办理" in queued and "已提交承办部门" not in queued
    assert "已提交承办部门" in sent and "自动提交" not in sent
    assert "2026-06-15前补交" in queued and "2. 居住证明" in queued


def test_money_and_chinese_punctuation_arrive_as_gb18030(printer_emu: EscPosEmulator,
                                                        printer: EscPosSerialPrinter) -> None:
    printer.print_document(Document().text(MONEY, bold=True).cut())
    (receipt,) = printer_emu.receipts()
    assert receipt.texts() == [MONEY]
    assert receipt.lines()[0].style()["bold"] is True and [r.wide for r in receipt.lines()[0].runs] == [
        True, False, True]  # 缴费金额：￥ | 12.50 | ，已收讫。备注：无


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_other_encoding_settings(tmp_path: Path, encoding: str) -> None:
    require_font()
    with EscPosEmulator(encoding=encoding, out_dir=str(tmp_path)) as emu:
        p = make_printer(emu, encoding=encoding)
        p.open()
        try:
            p.print_document(Document().text(MONEY).cut())
            assert emu.receipts()[0].texts() == [MONEY]
        finally:
            p.close()


def test_a_wrong_encoding_setting_shows_on_paper(tmp_path: Path) -> None:
    with EscPosEmulator(encoding="utf-8", out_dir=str(tmp_path), render=False) as emu:
        p = make_printer(emu, encoding="gb18030")
        p.open()
        try:
            p.print_document(Document().text(MONEY).cut())
            assert emu.receipts()[0].texts() != [MONEY]
        finally:
            p.close()


def test_chinese_mode_command_is_needed_by_models_that_start_outside_it(tmp_path: Path) -> None:
    with EscPosEmulator(chinese_at_power_up=False, out_dir=str(tmp_path), render=False) as emu:
        for command, expected_ok in ((False, False), (True, True)):
            p = make_printer(emu, chinese_mode_command=command)
            p.open()
            try:
                p.print_document(Document().text(MONEY).cut())
            finally:
                p.close()
            assert (emu.receipts()[-1].texts() == [MONEY]) is expected_ok


def test_58mm_paper_wraps_at_32_columns(tmp_path: Path) -> None:
    with EscPosEmulator(paper_width=58, out_dir=str(tmp_path), render=False) as emu:
        p = make_printer(emu, paper_width=58)
        p.open()
        try:
            assert p.columns == 32
            p.print_document(receipts.build("acceptance", SAMPLE_VALUES))
            lines = emu.receipts()[0].lines()
            assert lines and not any(line.wrapped for line in lines)
        finally:
            p.close()


def test_paced_line_prints_the_same(tmp_path: Path) -> None:
    with EscPosEmulator(baudrate=115200, out_dir=str(tmp_path), render=False) as emu:
        p = make_printer(emu, baudrate=115200)
        p.open()
        try:
            p.print_document(receipts.build("queue_ticket", TICKET_VALUES))
            assert "A023" in emu.receipts()[0].texts()
        finally:
            p.close()


# -- paper -------------------------------------------------------------------------------------
def test_paper_low_prints_and_is_published_once(printer_emu: EscPosEmulator, printer: EscPosSerialPrinter) -> None:
    events = Events(printer)
    printer_emu.paper_low()
    printer.poll()
    printer.poll()
    status = printer.status()
    assert (status.device, status.media) == (DeviceState.ONLINE, MediaState.LOW) and "near its end" in status.fault
    assert events.paper() == ["paper_low"]
    assert events.kinds("paper_low")[0].data["media"] == "low"
    printer.print_document(receipts.build("queue_ticket", TICKET_VALUES))
    assert printer_emu.receipts()[0].cut
    printer_emu.paper_ok()
    printer.poll()
    assert printer.status().media is MediaState.PRESENT and events.paper() == ["paper_low", "paper_ok"]


def test_near_end_can_be_configured_as_a_fault(printer_emu: EscPosEmulator) -> None:
    p = make_printer(printer_emu, near_end_is_fault=True)
    p.open()
    try:
        printer_emu.paper_low()
        with pytest.raises(PaperOut, match="near_end_is_fault"):
            p.print_document(Document().text("x").cut())
    finally:
        p.close()


def test_paper_out_refuses_before_sending_a_byte(printer_emu: EscPosEmulator,
                                                printer: EscPosSerialPrinter) -> None:
    events = Events(printer)
    printer_emu.paper_out()
    before = printer_emu.counters.received
    with pytest.raises(PaperOut, match="out of paper.*nothing was printed") as caught:
        printer.print_document(receipts.build("acceptance", SAMPLE_VALUES))
    assert not caught.value.incomplete
    wait_until(printer_emu.idle)
    assert printer_emu.counters.received - before == 6  # DLE EOT 4 and DLE EOT 2, nothing else
    status = printer.status()
    assert (status.device, status.media) == (DeviceState.ONLINE, MediaState.OUT)
    assert events.paper() == ["paper_out"] and printer_emu.receipts() == []


def test_paper_running_out_mid_receipt_says_it_may_be_incomplete(printer_emu: EscPosEmulator,
                                                                printer: EscPosSerialPrinter) -> None:
    events = Events(printer)
    printer_emu.run_out_after(5)
    with pytest.raises(PaperOut, match="may be incomplete") as caught:
        printer.print_document(receipts.build("acceptance", SAMPLE_VALUES))
    assert caught.value.incomplete
    (torn,) = printer_emu.receipts()
    assert not torn.cut and len(torn.lines()) == 5 and torn.texts()[0] == "受理回执"
    assert printer.status().media is MediaState.OUT and events.paper() == ["paper_out"]
    assert printer_emu.counters.discarded > 0


def test_jam_and_cover_are_reported_and_clear(printer_emu: EscPosEmulator, printer: EscPosSerialPrinter) -> None:
    printer_emu.jam()
    with pytest.raises(PrinterJammed, match="jammed at the cutter"):
        printer.print_document(Document().text("x").cut())
    status = printer.status()
    assert (status.device, status.media) == (DeviceState.HARDWARE_ERROR, MediaState.JAMMED)
    printer_emu.clear_jam()
    printer_emu.open_cover()
    with pytest.raises(CoverOpen, match="cover is open"):
        printer.print_document(Document().text("x").cut())
    assert printer.status().device is DeviceState.HARDWARE_ERROR
    printer_emu.close_cover()
    printer.poll()
    assert (printer.status().device, printer.status().media) == (DeviceState.ONLINE, MediaState.PRESENT)
    assert printer_emu.receipts() == []


# -- silence and the line ------------------------------------------------------------------------
def test_silence_is_a_fault_with_what_to_check(printer_emu: EscPosEmulator, printer: EscPosSerialPrinter) -> None:
    printer_emu.silent()
    with pytest.raises(DeviceTimeout) as caught:
        printer.print_document(Document().text("x").cut())
    text = str(caught.value)
    assert "did not answer DLE EOT 4 (paper sensor) within 0.5 s" in text
    assert "switched on" in text and "cable" in text and "paper" in text
    status = printer.status()
    assert (status.device, status.media, status.fault) == (DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN, text)
    assert printer_emu.receipts() == []
    printer.poll()  # does not raise: the port is fine, the supervisor keeps polling
    assert printer.status().device is DeviceState.HARDWARE_ERROR
    printer_emu.silent(False)
    printer.poll()
    assert printer.status().device is DeviceState.ONLINE


def test_models_that_go_silent_without_paper(tmp_path: Path) -> None:
    with EscPosEmulator(silent_without_paper=True, out_dir=str(tmp_path), render=False) as emu:
        p = make_printer(emu)
        p.open()
        try:
            emu.paper_out()
            with pytest.raises(DeviceTimeout, match="some models stop answering without paper"):
                p.print_document(Document().text("x").cut())
        finally:
            p.close()


def test_a_printer_silent_at_start_opens_with_a_fault_and_recovers(printer_emu: EscPosEmulator) -> None:
    printer_emu.silent()
    p = make_printer(printer_emu)
    p.open()
    try:
        assert p.status().device is DeviceState.HARDWARE_ERROR and "DLE EOT 4" in p.status().fault
        printer_emu.silent(False)
        p.poll()
        assert p.status().device is DeviceState.ONLINE
    finally:
        p.close()


def test_unplug_raises_disconnected_and_the_supervisor_brings_it_back(printer_emu: EscPosEmulator,
                                                                      printer: EscPosSerialPrinter) -> None:
    printer_emu.unplug()
    with pytest.raises(DeviceDisconnected, match="lost.*check the printer's serial/USB cable"):
        printer.poll()
    assert printer.status().device is DeviceState.OFFLINE
    supervisor = Supervisor([printer], backoff_min=0.01)
    printer_emu.replug()

    def back() -> bool:
        supervisor.round()
        return printer.status().device is DeviceState.ONLINE

    wait_until(back)
    printer.print_document(receipts.build("queue_ticket", TICKET_VALUES))
    assert printer_emu.receipts()[0].cut


def test_a_missing_port_is_a_clear_open_error(tmp_path: Path) -> None:
    p = EscPosSerialPrinter("receipt_printer", port=str(tmp_path / "ttyUSB9"))
    with pytest.raises(DeviceDisconnected, match="cannot open receipt printer receipt_printer"):
        p.open()
    assert p.status().device is DeviceState.OFFLINE
    assert p.self_test()[0].passed is False


def test_xoff_holds_the_driver_until_xon(printer_emu: EscPosEmulator) -> None:
    p = make_printer(printer_emu, status_timeout_s=10.0)
    p.open()
    try:
        printer_emu.busy()
        assert printer_emu.line_held()  # the kernel acted on the XOFF: the driver's tty is stopped
        wait_until(printer_emu.idle)
        before = printer_emu.counters.received
        errors: list[BaseException] = []

        def run() -> None:
            try:
                p.print_document(receipts.build("acceptance", SAMPLE_VALUES))
            except BaseException as exc:  # reported below
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join(0.3)
        assert worker.is_alive() and printer_emu.counters.received == before  # held by XOFF
        printer_emu.busy(False)
        worker.join(10)
        assert not worker.is_alive() and errors == []
        assert printer_emu.receipts()[0].cut and printer_emu.counters.overflowed == 0
    finally:
        p.close()


def test_xoff_for_too_long_is_a_timeout(printer_emu: EscPosEmulator) -> None:
    p = make_printer(printer_emu, write_timeout_s=0.3)
    p.open()
    try:
        printer_emu.busy()
        wait_until(printer_emu.idle)
        with pytest.raises(DeviceTimeout, match="XOFF"):
            p.print_document(Document().text("x").cut())
    finally:
        printer_emu.busy(False)
        p.close()


def test_without_flow_control_a_busy_printer_loses_data(tmp_path: Path) -> None:
    """Why flow control must match the printer. The confirming query drowns with the rest,
    so the driver at least says the receipt may not have printed."""
    with EscPosEmulator(buffer_bytes=64, out_dir=str(tmp_path), render=False) as emu:
        p = make_printer(emu, flow_control="none")
        p.open()
        try:
            emu.busy()
            assert not emu.line_held()  # no IXON on the driver's side: nothing stops it
            with pytest.raises(DeviceTimeout, match="sent but not confirmed: it may not have printed"):
                p.print_document(receipts.build("queue_ticket", TICKET_VALUES))
            wait_until(emu.idle)
            assert emu.counters.overflowed > 0 and emu.receipts(timeout=0) == []
        finally:
            emu.busy(False)
            p.close()


# -- set-up and self-test ------------------------------------------------------------------------
def test_self_test_speaks_to_a_technician(printer_emu: EscPosEmulator, printer: EscPosSerialPrinter) -> None:
    results = {r.name: r for r in printer.self_test()}
    assert list(results) == ["port opens", "status answered", "paper", "printer errors", "encoding"]
    assert all(r.passed for r in results.values())
    assert "9600 baud 8N1, flow control xonxoff" in results["port opens"].detail
    assert "12 12" in results["status answered"].detail
    assert "gb18030" in results["encoding"].detail
    printer_emu.paper_out()
    results = {r.name: r for r in printer.self_test()}
    assert not results["paper"].passed and "load a new roll" in results["paper"].detail


def test_test_page_prints(printer_emu: EscPosEmulator, printer: EscPosSerialPrinter) -> None:
    printer.print_test_page()
    (receipt,) = printer_emu.receipts()
    assert "中文：政务服务一网通办，￥12.50。" in receipt.texts()
    assert receipt.qr_codes()[0].module_size == 4


def test_registry_params_and_defaults_fit_together() -> None:
    assert registry.driver_class("receipt_printer", "escpos_serial") is EscPosSerialPrinter
    assert registry.emulator_class("receipt_printer", "escpos_serial") is EscPosEmulator
    assert set(EscPosEmulator.DRIVER_DEFAULTS) <= set(EscPosSerialPrinter.Params.model_fields)
    defaults = EscPosSerialPrinter.Params(port="/dev/ttyS0")
    assert (defaults.baudrate, defaults.encoding, defaults.flow_control, defaults.paper_width) == (
        9600, "gb18030", "xonxoff", 80)
    with pytest.raises(ValidationError):
        EscPosSerialPrinter.Params(port="/dev/ttyS0", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        EscPosSerialPrinter("p", port="/dev/ttyS0", encoding="big5")
    with pytest.raises(ValidationError):
        EscPosSerialPrinter("p", port="/dev/ttyS0", paper_width=76)
