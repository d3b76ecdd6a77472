"""ESC/POS receipt printers on a serial line (pyserial), with Chinese text and paper watch.

Transport rules (STACK.md "Serial devices"):

- The port is opened with ``serial.serial_for_url`` (a device path, the emulator's link,
  ``socket://`` for a printer behind a serial-device server), 8N1. Modem lines are never
  set by this code: a pseudo-terminal refuses those ioctls.
- Flow control (`flow_control`) must match the printer's DIP switches. The default,
  ``xonxoff``, is what the emulator speaks and works on a pty; the printer sends XOFF
  when its buffer fills (large images at speed) and the tty line discipline then holds
  our output until XON. Status bytes can never be XON/XOFF (their bit 0 is always 0),
  so software flow control is safe for the answers. ``rtscts`` is accepted by pyserial
  on a pty but does nothing there (a pty has no CTS line): use it only on a real port
  whose printer is set to hardware flow control. ``none`` for printers without any.
- Baud rate: 9600 by default, the factory setting of most serial receipt printers (a
  wrong rate prints garbage, so the default is the one most likely to be right). Text
  and a native QR code are small: the acceptance receipt is ~940 bytes, ~1.0 s on the
  wire at 9600 baud, about as long as its 140 mm of paper take at 150 mm/s
  (bench/receipt_print.py). Pictures are not: a 576x160 logo makes it 12.5 KB, 13 s at
  9600 and 1.1 s at 115200. Raise the rate on the printer and here together before
  adding pictures.
- Writes go out in `chunk_bytes` pieces, each with its own deadline (`write_timeout_s`),
  so a printer that holds XOFF forever gives a DeviceTimeout instead of a hung kiosk.

Printing (`print_document`): status first (DLE EOT 4 paper, DLE EOT 2 cover/error,
DLE EOT 3 when an error is flagged); refuse before sending a byte when the paper is out
(or near its end with `near_end_is_fault`), the paper is jammed or the cover is open.
Then ESC @ and the receipt in chunks, wait until the paper has had time to come out
(`print_speed_mm_s`; real-time status is answered at once, even while the buffer still
prints), and ask again: paper out or a jam now means the receipt may be incomplete.

Silence: status queries have `status_timeout_s`. No answer raises DeviceTimeout from
print_document and makes the status HARDWARE_ERROR with a fault naming the query, the
deadline and what to check. poll() publishes that status but does not raise: the port
is fine, and reopening it (what the supervisor does on an exception) would only delay
noticing that the printer answers again. A lost port raises DeviceDisconnected.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import serial
from pydantic import BaseModel, ConfigDict, Field

from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceProtocolError,
    DeviceState,
    DeviceTimeout,
    MediaState,
    SelfTestResult,
)
from devices.receipt_printer import escpos as ep
from devices.receipt_printer.document import Document, columns_for
from devices.receipt_printer.interface import (
    PAPER_LOW,
    PAPER_OK,
    PAPER_OUT,
    CoverOpen,
    PaperOut,
    PrinterFault,
    PrinterJammed,
    ReceiptPrinter,
)
from devices.serial_link import LINK_ERRORS, SerialPortOwner

log = logging.getLogger(__name__)

_READ_SLICE_S = 0.05  # one blocking read; a query's deadline is checked between slices
_MAX_PRINT_WAIT_S = 30.0


@dataclass(frozen=True)
class PrinterState:
    """What the printer said about itself in one round of status queries."""

    paper: MediaState  # PRESENT, LOW or OUT
    cover_open: bool = False
    cutter_error: bool = False
    unrecoverable: bool = False
    auto_recoverable: bool = False
    raw: tuple[int, ...] = ()  # the answer bytes, for the technician

    @property
    def jammed(self) -> bool:
        return self.cutter_error

    def describe(self) -> str:
        return " ".join(f"{b:02X}" for b in self.raw)


def decode_paper(value: int) -> MediaState:
    """DLE EOT 4's answer: paper end wins over near end (without paper both sensors see none)."""
    if value & ep.PAPER_END:
        return MediaState.OUT
    if value & ep.PAPER_NEAR_END:
        return MediaState.LOW
    return MediaState.PRESENT


class EscPosSerialPrinter(SerialPortOwner, ReceiptPrinter):
    """A Chinese ESC/POS thermal receipt printer on a serial line."""

    WHAT = "receipt printer"  # how faults name it

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the escpos_serial driver."""

        model_config = ConfigDict(extra="forbid")

        port: str = Field(
            description="Serial port or pyserial URL of the printer, e.g. /dev/ttyS0, /dev/ttyUSB0, "
            "socket://host:port, or the emulator's link path",
            min_length=1,
        )
        baudrate: int = Field(
            default=9600, gt=0,
            description="Line speed; must match the printer's DIP switches (9600 is the usual factory setting)",
        )
        encoding: ep.Encoding = Field(
            default="gb18030", description="The model's Chinese text encoding: gb18030, gbk (older models) or utf-8"
        )
        chinese_mode_command: bool = Field(
            default=True,
            description="Wrap Chinese text in FS & ... FS . (enter/leave Chinese mode); off only for models "
            "that are always in Chinese mode and print FS & as garbage",
        )
        paper_width: Literal[58, 80] = Field(default=80, description="Paper width in mm: 80 (48 columns) or 58 (32)")
        flow_control: Literal["xonxoff", "rtscts", "none"] = Field(
            default="xonxoff", description="As set on the printer; rtscts does nothing on a pty"
        )
        status_timeout_s: float = Field(
            default=1.0, gt=0, le=30, description="Deadline for the answer to one status query (DLE EOT n)"
        )
        write_timeout_s: float = Field(
            default=10.0, gt=0, le=120,
            description="How long one chunk may wait to be sent (the printer may hold the line with XOFF)",
        )
        chunk_bytes: int = Field(default=512, ge=16, le=65536, description="Bytes written per chunk")
        near_end_is_fault: bool = Field(
            default=False,
            description="Refuse to print when the paper is near its end (for near-end sensors set so late "
            "that a whole receipt no longer fits)",
        )
        print_speed_mm_s: float = Field(
            default=150.0, ge=0, le=500,
            description="Paper speed, to wait until a receipt has come out before confirming it printed; "
            "0 confirms at once (the emulator prints instantly)",
        )

    def __init__(
        self,
        name: str,
        *,
        port: str,
        baudrate: int = 9600,
        encoding: str = "gb18030",
        chinese_mode_command: bool = True,
        paper_width: int = 80,
        flow_control: str = "xonxoff",
        status_timeout_s: float = 1.0,
        write_timeout_s: float = 10.0,
        chunk_bytes: int = 512,
        near_end_is_fault: bool = False,
        print_speed_mm_s: float = 150.0,
    ) -> None:
        super().__init__(name)
        self.params = self.Params(
            port=port,
            baudrate=baudrate,
            encoding=encoding,  # type: ignore[arg-type]  # validated by pydantic
            chinese_mode_command=chinese_mode_command,
            paper_width=paper_width,  # type: ignore[arg-type]
            flow_control=flow_control,  # type: ignore[arg-type]
            status_timeout_s=status_timeout_s,
            write_timeout_s=write_timeout_s,
            chunk_bytes=chunk_bytes,
            near_end_is_fault=near_end_is_fault,
            print_speed_mm_s=print_speed_mm_s,
        )
        self.encoder = ep.EscPosEncoder(self.params.encoding, self.params.chinese_mode_command,
                                        self.params.paper_width)
        self._io_lock = threading.Lock()
        self._port: Any = None  # a serial.SerialBase once open
        self._paper: MediaState | None = None  # the paper state last published (for the events)
        self.last_state: PrinterState | None = None

    # -- helpers -----------------------------------------------------------------------------
    @property
    def columns(self) -> int:
        return columns_for(self.params.paper_width)

    def _lost(self, exc: BaseException, after: list[Callable[[], None]]) -> DeviceDisconnected:
        """Close on a link error; queue the status; return the error to raise."""
        self._close_port()
        args = exc.args
        reason = f"[Errno {args[0]}] {args[1]}" if len(args) == 2 and isinstance(args[0], int) else str(exc)
        if self._networked:
            check = "that the serial-device server is powered and reachable, and its cable to the printer"
        else:
            check = f"the printer's serial/USB cable and power, and that {self.port_name} exists"
        message = f"{self._where()} lost ({reason}); check {check}"
        self._paper = None
        after.append(lambda: self.set_status(DeviceState.OFFLINE, MediaState.UNKNOWN, message))
        return DeviceDisconnected(message)

    @staticmethod
    def _run(after: list[Callable[[], None]]) -> None:
        """Status changes and events are published outside the I/O lock, in order."""
        for action in after:
            action()

    def _silence_text(self, n: int) -> str:
        return (
            f"{self._where()} did not answer DLE EOT {n} ({ep.STATUS_NAMES[n]}) within "
            f"{self.params.status_timeout_s:g} s; check that it is switched on, its cable, that it runs at "
            f"{self.params.baudrate} baud, and its paper (some models stop answering without paper)"
        )

    # -- status queries -------------------------------------------------------------------------
    def _query(self, port: Any, n: int, after: list[Callable[[], None]], extra_s: float = 0.0) -> int:
        """Send DLE EOT n and return the answer byte; DeviceTimeout on silence.

        `extra_s`: time the query may still spend behind bytes on their way (see print_document)."""
        try:
            port.reset_input_buffer()  # a late answer to an earlier query must not be taken for this one
            port.write(ep.status_query(n))
            deadline = time.monotonic() + self.params.status_timeout_s + extra_s
            noise = 0
            while time.monotonic() < deadline:
                data = port.read(1)
                if not data:
                    continue
                if ep.is_status_byte(data[0]):
                    return data[0]
                noise += 1
        except serial.SerialTimeoutException:
            raise DeviceTimeout(
                f"{self._where()}: the status query DLE EOT {n} could not be sent within "
                f"{self.params.write_timeout_s:g} s (the printer holds the line with XOFF); check the printer"
            ) from None
        except LINK_ERRORS as exc:
            raise self._lost(exc, after) from None
        if noise:
            raise DeviceProtocolError(
                f"{self._where()}: {noise} bytes that are no ESC/POS status in answer to DLE EOT {n}; "
                f"check that the printer runs at {self.params.baudrate} baud and that the port is the printer's"
            )
        raise DeviceTimeout(self._silence_text(n))

    def _read_state(self, after: list[Callable[[], None]], extra_s: float = 0.0) -> PrinterState:
        """One round of status queries; on silence the status says so before the error is raised."""
        port = self._require_port()
        try:
            paper = self._query(port, ep.STATUS_PAPER, after, extra_s)
            offline = self._query(port, ep.STATUS_OFFLINE, after)
            error = self._query(port, ep.STATUS_ERROR, after) if offline & ep.OFFLINE_ERROR else ep.STATUS_FIXED_BITS
        except (DeviceTimeout, DeviceProtocolError) as exc:
            fault = str(exc)
            after.append(lambda: self.set_status(DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN, fault))
            raise
        state = PrinterState(
            paper=decode_paper(paper),
            cover_open=bool(offline & ep.OFFLINE_COVER_OPEN),
            cutter_error=bool(error & ep.ERROR_CUTTER),
            unrecoverable=bool(error & ep.ERROR_UNRECOVERABLE),
            auto_recoverable=bool(error & ep.ERROR_AUTO_RECOVERABLE),
            raw=(paper, offline, error) if offline & ep.OFFLINE_ERROR else (paper, offline),
        )
        self.last_state = state
        self._publish(state, after)
        return state

    def _fault_of(self, state: PrinterState) -> tuple[DeviceState, MediaState, str]:
        where = self._where()
        if state.jammed:
            return (DeviceState.HARDWARE_ERROR, MediaState.JAMMED,
                    f"{where}: paper jammed at the cutter; open the cover, clear the paper and close it")
        if state.cover_open:
            return (DeviceState.HARDWARE_ERROR, state.paper, f"{where}: the paper cover is open; close it")
        if state.unrecoverable:
            return (DeviceState.HARDWARE_ERROR, state.paper,
                    f"{where} reports an unrecoverable error (status {state.describe()}); switch it off and on, "
                    "and call service if it stays")
        if state.auto_recoverable:
            return (DeviceState.HARDWARE_ERROR, state.paper,
                    f"{where} reports a passing error (head too hot?); it clears by itself when the head cools")
        if state.paper is MediaState.OUT:
            return DeviceState.ONLINE, MediaState.OUT, f"{where} is out of paper; load a new roll"
        if state.paper is MediaState.LOW:
            return DeviceState.ONLINE, MediaState.LOW, f"{where}: paper near its end; change the roll soon"
        return DeviceState.ONLINE, MediaState.PRESENT, ""

    def _publish(self, state: PrinterState, after: list[Callable[[], None]]) -> None:
        device, media, fault = self._fault_of(state)
        after.append(lambda: self.set_status(device, media, fault))
        previous, self._paper = self._paper, state.paper
        if state.paper is previous:
            return
        if state.paper is MediaState.LOW:
            after.append(lambda: self.emit(PAPER_LOW, media=MediaState.LOW.value, fault=fault))
        elif state.paper is MediaState.OUT:
            after.append(lambda: self.emit(PAPER_OUT, media=MediaState.OUT.value, fault=fault))
        elif previous in (MediaState.LOW, MediaState.OUT):
            after.append(lambda: self.emit(PAPER_OK, media=MediaState.PRESENT.value, fault=""))

    def _refuse_if_unable(self, state: PrinterState, done: bool) -> None:
        """Raise the error for a state that stops printing; `done`: checked after sending."""
        device, media, fault = self._fault_of(state)
        if done:
            suffix = "; the receipt may be incomplete: offer to print it again once fixed"
        else:
            suffix = "; nothing was printed"
        if state.paper is MediaState.OUT:
            raise PaperOut(fault + suffix, incomplete=done)
        if state.jammed:
            raise PrinterJammed(fault + suffix, incomplete=done)
        if state.cover_open:
            raise CoverOpen(fault + suffix, incomplete=done)
        if device is DeviceState.HARDWARE_ERROR:
            raise PrinterFault(fault + suffix, incomplete=done)
        if not done and media is MediaState.LOW and self.params.near_end_is_fault:
            raise PaperOut(fault + " (near end counts as out here: near_end_is_fault)" + suffix)

    # -- lifecycle ----------------------------------------------------------------------------
    def _open(self) -> None:
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                self._close_port()
                try:
                    self._port = serial.serial_for_url(
                        self.port_name,
                        baudrate=self.params.baudrate,
                        bytesize=serial.EIGHTBITS,
                        parity=serial.PARITY_NONE,
                        stopbits=serial.STOPBITS_ONE,
                        xonxoff=self.params.flow_control == "xonxoff",
                        rtscts=self.params.flow_control == "rtscts",
                        timeout=_READ_SLICE_S,
                        write_timeout=self.params.write_timeout_s,
                    )
                except (ValueError,) + LINK_ERRORS as exc:
                    where = "the device server's address and power" if self._networked else "the cable/USB adapter"
                    raise DeviceDisconnected(
                        f"cannot open {self._where()}: {exc}; check {where} and the port in [devices.{self.name}]"
                    ) from None
                self._paper = None
                try:
                    self._port.write(ep.ESC_INIT)  # forget styles and half-sent jobs of a previous run
                except serial.SerialTimeoutException:
                    pass  # held by XOFF: the status round below says what is wrong
                except LINK_ERRORS as exc:
                    raise self._lost(exc, after) from None
                try:
                    self._read_state(after)
                except (DeviceTimeout, DeviceProtocolError) as exc:
                    # the port is open; the status (HARDWARE_ERROR) says why it cannot print, and
                    # poll() notices when it answers again
                    log.warning("%s", exc)
        finally:
            self._run(after)
        log.info("%s open at %d baud", self._where(), self.params.baudrate)

    def _close(self) -> None:
        with self._io_lock:
            self._close_port()
            self._paper = None

    # -- supervision ----------------------------------------------------------------------------
    def poll(self) -> None:
        """Query paper and errors and publish them; skipped while a receipt is printing."""
        if not self._io_lock.acquire(blocking=False):
            return  # print_document holds the line and reports what it finds itself
        after: list[Callable[[], None]] = []
        try:
            try:
                self._read_state(after)
            except (DeviceTimeout, DeviceProtocolError):
                pass  # published as HARDWARE_ERROR by _read_state; see the module notes
        finally:
            self._io_lock.release()
            self._run(after)

    def paper_state(self) -> MediaState:
        """Ask the printer now; PRESENT, LOW or OUT (raises DeviceTimeout when it does not answer)."""
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                return self._read_state(after).paper
        finally:
            self._run(after)

    # -- printing ---------------------------------------------------------------------------------
    def print_document(self, document: Document) -> None:
        """Print and confirm (see interface.ReceiptPrinter and the module notes)."""
        encoded = self.encoder.encode(document)
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                port = self._require_port()
                self._refuse_if_unable(self._read_state(after), done=False)
                started = time.monotonic()
                self._send(port, encoded.data, after)
                self._wait_printed(started, encoded.height_mm)
                # The query follows the receipt down the line. A real port's flush() waits until
                # the bytes are out, but USB adapters and ptys may return early: allow the wire
                # time of the receipt that may not have elapsed yet.
                in_transit = len(encoded.data) * 10 / self.params.baudrate - (time.monotonic() - started)
                try:
                    state = self._read_state(after, extra_s=max(0.0, in_transit))
                except DeviceTimeout as exc:
                    raise DeviceTimeout(
                        f"{exc}. The receipt was sent but not confirmed: it may not have printed") from None
                self._refuse_if_unable(state, done=True)
        finally:
            self._run(after)
        log.info("%s printed a receipt (%d bytes)", self._where(), len(encoded.data))

    def _send(self, port: Any, data: bytes, after: list[Callable[[], None]]) -> None:
        size = self.params.chunk_bytes
        sent = 0
        try:
            while sent < len(data):
                chunk = data[sent : sent + size]
                written = port.write(chunk)
                sent += written if written is not None else len(chunk)
            port.flush()
        except serial.SerialTimeoutException:
            fault = (
                f"{self._where()} held the line (XOFF or busy) for more than {self.params.write_timeout_s:g} s "
                f"after {sent} of {len(data)} bytes; the receipt is incomplete; check the printer "
                "(paper, cover, head temperature) and that flow control matches its settings"
            )
            after.append(lambda: self.set_status(DeviceState.HARDWARE_ERROR, fault=fault))
            raise DeviceTimeout(fault) from None
        except LINK_ERRORS as exc:
            raise self._lost(exc, after) from None

    def _wait_printed(self, started: float, height_mm: float) -> None:
        """Real-time status answers before the buffer has printed: give the paper its time."""
        if self.params.print_speed_mm_s <= 0:
            return
        remaining = height_mm / self.params.print_speed_mm_s - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(min(remaining, _MAX_PRINT_WAIT_S))

    def test_page(self) -> Document:
        """A page a technician prints to check the encoding setting and the cutter."""
        doc = Document()
        doc.text("打印测试 / Printer test", align="center", bold=True, double_height=True)
        doc.rule()
        doc.text(f"端口 port: {self.port_name}")
        doc.text(f"速率 baud: {self.params.baudrate}  流控 flow: {self.params.flow_control}")
        doc.text(f"编码 encoding: {self.params.encoding}  FS &: {self.params.chinese_mode_command}")
        doc.text(f"纸宽 paper: {self.params.paper_width} mm, {self.columns} columns")
        doc.text("中文：政务服务一网通办，￥12.50。")
        doc.text("0123456789" * 10)
        doc.qr("https://zwfw.example.gov.cn/printer-test", module_size=4)
        doc.cut()
        return doc

    def print_test_page(self) -> None:
        self.print_document(self.test_page())

    # -- self-test --------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """Port, status answer, paper, errors and the encoding setting, in a technician's words."""
        results: list[SelfTestResult] = []
        opened_here = False
        if self._port is None:
            try:
                self.open()
                opened_here = True
            except DeviceError as exc:
                results.append(SelfTestResult("port opens", False, str(exc)))
                return results
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                results.append(SelfTestResult(
                    "port opens", True,
                    f"{self.port_name} open at {self.params.baudrate} baud 8N1, "
                    f"flow control {self.params.flow_control}",
                ))
                started = time.monotonic()
                try:
                    state = self._read_state(after)
                except DeviceError as exc:
                    results.append(SelfTestResult("status answered", False, str(exc)))
                    state = None
                if state is not None:
                    ms = (time.monotonic() - started) * 1000
                    results.append(SelfTestResult(
                        "status answered", True, f"DLE EOT 4/2 answered {state.describe()} in {ms:.0f} ms"))
                    paper_ok = state.paper is MediaState.PRESENT or (
                        state.paper is MediaState.LOW and not self.params.near_end_is_fault)
                    words = {MediaState.PRESENT: "paper loaded",
                             MediaState.LOW: "paper near its end: change the roll soon",
                             MediaState.OUT: "out of paper: load a new roll"}[state.paper]
                    results.append(SelfTestResult("paper", paper_ok, words))
                    device, _media, fault = self._fault_of(state)
                    errors_ok = device is DeviceState.ONLINE
                    results.append(SelfTestResult(
                        "printer errors", errors_ok, "no cover open, jam or error reported" if errors_ok else fault))
                results.append(SelfTestResult(
                    "encoding", True,
                    f"Chinese text sent as {self.params.encoding}"
                    + (" inside FS & ... FS ." if self.params.chinese_mode_command
                       else " without FS & (always Chinese mode)")
                    + f"; {self.params.paper_width} mm paper, {self.columns} columns; print the test page to check",
                ))
        finally:
            self._run(after)
            if opened_here:
                self.close()
        return results
