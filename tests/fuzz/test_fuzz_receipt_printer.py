"""Fuzzing the receipt printer's status parser: the bytes an ESC/POS printer sends back to
DLE EOT n (real-time status), read by the serial driver over a fake line.

The emulator's own command parser is fuzzed in tests/devices/test_receipt_printer_emulator.py;
this module is about the kiosk's side: whatever the printer answers (a status byte with any
bits, a byte that cannot be a status, noise before the answer, silence, XOFF holding the
line, a pulled cable), `paper_state()` and `print_document()` raise only DeviceError, publish
a status from the device model, and never confirm a receipt the last status says could not
have printed.
"""
from __future__ import annotations

from typing import Any
from unittest import mock

import serial
from fuzzing import Budget, FakeClock, fuzz
from hypothesis import event, given
from hypothesis import strategies as st

from devices.base import DeviceError, DeviceState, MediaState
from devices.receipt_printer import driver as driver_module
from devices.receipt_printer import escpos as ep
from devices.receipt_printer.document import Document
from devices.receipt_printer.driver import EscPosSerialPrinter, PrinterState, decode_paper

_VARIABLE_BITS = 0xFF & ~ep.STATUS_FIXED_MASK


def _status_byte(bits: int) -> int:
    """An answer byte as a printer forms it: the fixed bits right, any of the others set."""
    return (bits & _VARIABLE_BITS) | ep.STATUS_FIXED_BITS


status_bytes = st.integers(0, 255).map(_status_byte)
_UNPLUG = "unplug"
_HOLD = "hold"


@st.composite
def answers(draw: st.DrawFn) -> Any:
    """What follows one DLE EOT n on the line."""
    kind = draw(st.sampled_from(["healthy"] * 6 + ["status"] * 4
                                + ["any byte", "noise first", "noise only", "silence", _UNPLUG, _HOLD]))
    if kind == "healthy":
        return bytes([ep.STATUS_FIXED_BITS])  # paper in, online, no error
    if kind == "status":
        return bytes([draw(status_bytes)])
    if kind == "any byte":
        return bytes([draw(st.integers(0, 255))])
    if kind == "noise first":
        return draw(st.binary(min_size=1, max_size=12)) + bytes([draw(status_bytes)])
    if kind == "noise only":
        return draw(st.binary(min_size=1, max_size=12).map(
            lambda b: bytes(x for x in b if not ep.is_status_byte(x)) or b"\x00"))
    if kind == "silence":
        return b""
    return kind


class FakePrinterLine:
    """The printer's end of the serial line; status answers are drawn as queries arrive."""

    def __init__(self, data: st.DataObject, clock: FakeClock) -> None:
        self.data = data
        self.clock = clock
        self.rx = bytearray()
        self.unplugged = False
        self.held = False
        self.queries = Budget(40, "status queries")
        self.silent_reads = Budget(50_000, "silent reads")

    def _check(self) -> None:
        if self.unplugged:
            raise OSError(5, "Input/output error")

    def reset_input_buffer(self) -> None:
        self._check()
        self.rx.clear()

    def write(self, data: bytes) -> int:
        self._check()
        if data[:2] == ep.DLE_EOT and len(data) == 3:
            self.queries.spend()
            answer = self.data.draw(answers(), label=f"answer to DLE EOT {data[2]}")
            if answer == _UNPLUG:
                self.unplugged = True
            elif answer == _HOLD:
                raise serial.SerialTimeoutException("Write timeout")
            else:
                self.rx += answer
        elif self.data.draw(st.sampled_from(["sent"] * 8 + [_HOLD, _UNPLUG]), label="receipt bytes") == _HOLD:
            raise serial.SerialTimeoutException("Write timeout")
        return len(data)

    def flush(self) -> None:
        self._check()

    def read(self, n: int) -> bytes:
        self._check()
        if not self.rx:
            self.silent_reads.spend()
            self.clock.now += 0.05
            return b""
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def close(self) -> None:
        pass


def _printer(line: FakePrinterLine, near_end_is_fault: bool) -> EscPosSerialPrinter:
    printer = EscPosSerialPrinter("receipt", port="fuzz://printer", status_timeout_s=0.3,
                                  near_end_is_fault=near_end_is_fault)
    printer._port = line
    return printer


def _assert_status_is_from_the_model(printer: EscPosSerialPrinter) -> None:
    status = printer.status()
    assert isinstance(status.device, DeviceState) and isinstance(status.media, MediaState)
    if status.device is DeviceState.HARDWARE_ERROR:
        assert status.fault, "a hardware error without words for the technician"


@fuzz(250)
@given(st.data(), st.booleans())
def test_paper_state_from_any_answers_is_a_paper_state_or_a_device_error(data: st.DataObject,
                                                                           near_end_is_fault: bool) -> None:
    clock = FakeClock()
    printer = _printer(FakePrinterLine(data, clock), near_end_is_fault)
    with mock.patch.object(driver_module, "time", clock):
        for _ in range(2):  # a second round sees what the first left on the line
            try:
                paper = printer.paper_state()
            except DeviceError as exc:
                event(f"paper_state raised {type(exc).__name__}")
            else:
                assert paper in (MediaState.PRESENT, MediaState.LOW, MediaState.OUT)
                event(f"paper {paper.value}")
            _assert_status_is_from_the_model(printer)


@fuzz(250)
@given(st.data(), st.booleans())
def test_a_receipt_is_confirmed_only_when_the_printer_says_it_could_print(data: st.DataObject,
                                                                        near_end_is_fault: bool) -> None:
    clock = FakeClock()
    printer = _printer(FakePrinterLine(data, clock), near_end_is_fault)
    document = Document().text("受理回执 / receipt").text("编号 L20260601-0001").cut()
    with mock.patch.object(driver_module, "time", clock):
        try:
            printer.print_document(document)
        except DeviceError as exc:
            event(f"print raised {type(exc).__name__}")
            _assert_status_is_from_the_model(printer)
            return
    event("receipt confirmed")
    state = printer.last_state
    assert state is not None
    assert state.paper is not MediaState.OUT and not state.jammed and not state.cover_open
    assert not state.unrecoverable and not state.auto_recoverable
    _assert_status_is_from_the_model(printer)


@fuzz(200)
@given(status_bytes, status_bytes, status_bytes)
def test_every_status_triple_has_a_fault_in_words_when_it_stops_printing(paper: int, offline: int,
                                                                        error: int) -> None:
    """The decoding itself, for every combination of answer bits: a state that stops printing
    always comes with the technician's words, and paper end always reads as out."""
    state = PrinterState(paper=decode_paper(paper), cover_open=bool(offline & ep.OFFLINE_COVER_OPEN),
                         cutter_error=bool(error & ep.ERROR_CUTTER),
                         unrecoverable=bool(error & ep.ERROR_UNRECOVERABLE),
                         auto_recoverable=bool(error & ep.ERROR_AUTO_RECOVERABLE), raw=(paper, offline, error))
    device, media, fault = EscPosSerialPrinter("receipt", port="fuzz://printer")._fault_of(state)
    if paper & ep.PAPER_END:
        assert state.paper is MediaState.OUT
    if device is DeviceState.HARDWARE_ERROR or media in (MediaState.OUT, MediaState.JAMMED):
        assert fault
    assert ep.is_status_byte(paper) and state.describe().count(" ") == 2
