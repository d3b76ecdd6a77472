"""Serial QR/barcode scanners: codes as text lines on a (USB-)serial port, over pyserial.

Most fixed-mount kiosk scanners (Newland, Honeywell, GM65/GM805-type modules) send each
code they read as its bytes followed by a suffix, in their "serial/USB-COM" mode at
9600 baud 8N1 by default. This driver turns that stream into whole codes:

- Line framing (`LineAssembler`): a code ends at the configured `suffix`: "\\r" (CR,
  the usual factory setting), "\\n" (LF), "\\r\\n" (CRLF), or "auto" (either CR or LF
  ends a code, empty lines are skipped; use it when unsure, unless codes may contain a
  bare CR or LF). Bytes of a code that stops mid-way (no suffix and no further byte for
  `inter_char_timeout_s`) are dropped with a warning, never delivered as half a code.
  A code longer than `max_length` bytes is dropped whole, up to its suffix.
- Text: the bytes are decoded with `encoding` (UTF-8 by default, as scanners pass the
  symbol's bytes through and phones make UTF-8 codes), else with `fallback_encoding`
  (GB18030 by default: older scanners and systems make GB-encoded codes with Chinese
  content). Bytes invalid in both are dropped as "undecodable", never a crash. A UTF-8
  byte-order mark at the start is removed.
- `aim_id`: a scanner configured to prefix AIM symbology identifiers ("]Q1" for QR,
  "]C0" Code 128, ...) reports what it read; the prefix is removed from the code.
- Command-triggered scanners (`trigger_command`, hex): the driver sends the trigger
  when armed, again after each code and every `retrigger_s` while armed (such scanners
  read once per trigger, for a limited time), and `stop_command` when disarmed. Their
  answer to the trigger (`trigger_ack`, hex) is removed from the stream; with an ack
  configured the self-test checks that the scanner answers.

Transport rules (STACK.md "Serial devices"): ports are opened with
``serial.serial_for_url`` (socket://, loop:// work); modem lines are never touched (a pty
refuses those ioctls); what waited on the line before open is discarded (codes read
while the kiosk was down are stale). One reader thread per open port reads in short
slices. Any OS or pyserial error ends it: the status goes OFFLINE with the fault, and
`poll()` raises DeviceDisconnected, so the supervisor reopens the port with back-off.
A port path that disappears (an unplugged USB adapter still "looks open") is caught by
`poll()` as well.

Privacy: codes may carry personal tokens; only their lengths are logged.
"""
from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import serial
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceState,
    MediaState,
    SelfTestResult,
)
from devices.qr_scanner.interface import QrScanner
from devices.serial_link import LINK_ERRORS, SerialPortOwner

log = logging.getLogger(__name__)

_READ_SLICE_S = 0.05  # one blocking read; trigger and timeout bookkeeping run between slices
_WARN_EVERY_S = 10.0  # drop warnings of one kind at most this often (a babbling line floods logs)
ACK_WAIT_S = 1.0  # how long the self-test waits for the scanner's answer to the trigger

SUFFIXES = {"\r": b"\r", "\n": b"\n", "\r\n": b"\r\n", "cr": b"\r", "lf": b"\n", "crlf": b"\r\n", "auto": b""}

# ISO/IEC 15424 symbology identifier characters ("]" + character + modifier)
AIM_SYMBOLOGIES = {
    "Q": "qr_code", "d": "data_matrix", "L": "pdf417", "z": "aztec", "C": "code128", "A": "code39",
    "G": "code93", "E": "ean_upc", "e": "gs1_databar", "F": "codabar", "I": "itf", "H": "chinese_sensible_code",
}


# -- framing: pure, no I/O (fuzzed by the tests) ---------------------------------------------------
@dataclass(frozen=True)
class Line:
    """A complete code: the bytes between the previous suffix and this one."""

    raw: bytes


@dataclass(frozen=True)
class Dropped:
    """Bytes that were not a complete code: reason "too_long" or "incomplete"."""

    reason: str
    length: int


@dataclass
class LineAssembler:
    """Bytes in, whole codes out; never half a code (see the module notes)."""

    suffix: bytes  # b"" means auto: CR or LF
    max_length: int
    inter_char_timeout_s: float
    ignore: bytes = b""  # removed wherever a line starts with it (a trigger's ack)
    acks: int = 0  # how many `ignore` sequences were removed
    _buf: bytearray = field(default_factory=bytearray)
    _overflow: int = 0  # bytes of an over-long code thrown away so far, until its suffix
    _last_at: float | None = None

    @property
    def pending(self) -> int:
        return len(self._buf) + self._overflow

    def clear(self) -> None:
        self._buf.clear()
        self._overflow = 0
        self._last_at = None

    def expire(self, now: float) -> list[Line | Dropped]:
        """Drop what has waited for its suffix longer than the inter-character timeout."""
        if not self.pending or self._last_at is None or now - self._last_at <= self.inter_char_timeout_s:
            return []
        dropped = Dropped("too_long" if self._overflow else "incomplete", self.pending)
        self.clear()
        return [dropped]

    def feed(self, data: bytes, now: float) -> list[Line | Dropped]:
        out = self.expire(now)
        if not data:
            return out
        self._last_at = now
        self._buf += data
        while True:
            self._strip_ignored()
            end, width = self._find_end()
            if end < 0:
                break
            line = bytes(self._buf[:end])
            del self._buf[:end + width]
            if self._overflow:
                out.append(Dropped("too_long", self._overflow + len(line)))
                self._overflow = 0
            elif len(line) > self.max_length:
                out.append(Dropped("too_long", len(line)))
            elif line:  # an empty line (CRLF in auto mode, a bare suffix) is nothing
                out.append(Line(line))
        if len(self._buf) > self.max_length:  # too long already: keep only what may start a suffix
            keep = max(len(self.suffix) - 1, 0)
            self._overflow += len(self._buf) - keep
            del self._buf[:len(self._buf) - keep]
        return out

    def _strip_ignored(self) -> None:
        while self.ignore and self._buf.startswith(self.ignore):
            del self._buf[:len(self.ignore)]
            self.acks += 1

    def _find_end(self) -> tuple[int, int]:
        if self.suffix:
            return self._buf.find(self.suffix), len(self.suffix)
        ends = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
        return (min(ends), 1) if ends else (-1, 0)


def split_aim(raw: bytes) -> tuple[str, bytes]:
    """(symbology, rest) for a line that starts with an AIM identifier; ("unknown", raw) if not."""
    if len(raw) >= 3 and raw[0:1] == b"]" and 0x21 <= raw[1] <= 0x7E and 0x21 <= raw[2] <= 0x7E:
        return AIM_SYMBOLOGIES.get(chr(raw[1]), "unknown"), raw[3:]
    return "unknown", raw


def decode_text(raw: bytes, encoding: str, fallback: str = "") -> str | None:
    """The code's text in the first encoding it is valid in; None when in neither."""
    for name in (encoding, fallback):
        if not name:
            continue
        try:
            text = raw.decode(name)
        except UnicodeError:  # not only UnicodeDecodeError: punycode and idna raise plain UnicodeError
            continue
        return text.removeprefix("\ufeff")
    return None


def parse_hex(value: str) -> bytes:
    """Bytes from "7E 00 08 01", "7e000801" or "0x7E 0x00"; ValueError naming the problem."""
    cleaned = " ".join(part[2:] if part.lower().startswith("0x") else part for part in value.split())
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"{value!r} is not hex bytes (e.g. \"7E 00 08 01 00 02 01 AB CD\")") from None


# -- the driver --------------------------------------------------------------------------------------
@dataclass
class _Session:
    """One opening of the port: the port, its reader thread and what it saw."""

    port: Any
    assembler: LineAssembler
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    failure: str = ""
    next_trigger_at: float | None = None  # None: no trigger due
    send_stop: bool = False
    probe: bool = False  # the self-test asks for one trigger now, armed or not
    triggers: int = 0


class SerialQrScanner(SerialPortOwner, QrScanner):
    """A QR/barcode scanner that sends codes as suffixed lines on a serial port."""

    WHAT = "QR scanner"  # how faults name it

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the serial qr_scanner driver."""

        model_config = ConfigDict(extra="forbid")

        port: str = Field(
            min_length=1,
            description="Serial port or pyserial URL of the scanner, e.g. /dev/ttyACM0, "
            "/dev/serial/by-id/..., socket://host:port, or the emulator's link path",
        )
        baudrate: int = Field(default=9600, gt=0, description="Line speed; most scanners ship at 9600 baud 8N1")
        suffix: str = Field(
            default="\r",
            description='What ends each code: "\\r" (CR, the usual factory setting), "\\n", "\\r\\n", '
            '(also "CR", "LF", "CRLF"), or "auto" (CR or LF)',
        )
        encoding: str = Field(default="utf-8", description="Encoding of the codes' text")
        fallback_encoding: str = Field(
            default="gb18030", description="Tried when a code is not valid in `encoding`; empty for none"
        )
        max_length: int = Field(default=1024, ge=16, le=16384,
                                description="Longest code accepted, in bytes without the suffix")
        inter_char_timeout_s: float = Field(
            default=0.3, gt=0, le=10,
            description="A code whose next byte or suffix does not come within this time is dropped as incomplete",
        )
        duplicate_window_s: float = Field(
            default=3.0, ge=0, le=60, description="The same code read again within this time is one scan"
        )
        aim_id: bool = Field(default=False,
                             description="The scanner prefixes AIM symbology identifiers (]Q1 ...): strip and report")
        trigger_command: str = Field(default="", description="Hex bytes that make a command-triggered scanner read")
        trigger_ack: str = Field(default="", description="Hex bytes the scanner answers to the trigger (removed)")
        stop_command: str = Field(default="", description="Hex bytes that stop a triggered read (sent on disarm)")
        retrigger_s: float = Field(default=5.0, gt=0, le=120,
                                   description="While armed, the trigger is sent again this often")

        @field_validator("suffix")
        @classmethod
        def _known_suffix(cls, value: str) -> str:
            key = value if value in SUFFIXES else value.lower()
            if key not in SUFFIXES:
                raise ValueError('suffix is "\\r", "\\n", "\\r\\n", "CR", "LF", "CRLF" or "auto", not ' + repr(value))
            return key

        @field_validator("encoding", "fallback_encoding")
        @classmethod
        def _known_encoding(cls, value: str, info: Any) -> str:
            if not value and info.field_name == "fallback_encoding":
                return ""
            try:
                info = codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, gb18030, gbk)") from None
            if not getattr(info, "_is_text_encoding", True):  # hex, base64, rot13, zlib: the stdlib's own mark
                raise ValueError(f"{value!r} is a data transform, not a text encoding (e.g. utf-8, gb18030, gbk)")
            return info.name

        @field_validator("trigger_command", "trigger_ack", "stop_command")
        @classmethod
        def _hex(cls, value: str) -> str:
            parse_hex(value)
            return value

        @model_validator(mode="after")
        def _trigger_first(self) -> "SerialQrScanner.Params":
            if (self.trigger_ack or self.stop_command) and not self.trigger_command:
                raise ValueError("trigger_ack and stop_command belong to a trigger_command: set it too")
            return self

    def __init__(
        self,
        name: str,
        *,
        port: str,
        baudrate: int = 9600,
        suffix: str = "\r",
        encoding: str = "utf-8",
        fallback_encoding: str = "gb18030",
        max_length: int = 1024,
        inter_char_timeout_s: float = 0.3,
        duplicate_window_s: float = 3.0,
        aim_id: bool = False,
        trigger_command: str = "",
        trigger_ack: str = "",
        stop_command: str = "",
        retrigger_s: float = 5.0,
    ) -> None:
        self.params = self.Params(
            port=port, baudrate=baudrate, suffix=suffix, encoding=encoding, fallback_encoding=fallback_encoding,
            max_length=max_length, inter_char_timeout_s=inter_char_timeout_s,
            duplicate_window_s=duplicate_window_s, aim_id=aim_id, trigger_command=trigger_command,
            trigger_ack=trigger_ack, stop_command=stop_command, retrigger_s=retrigger_s,
        )
        super().__init__(name, self.params.duplicate_window_s)
        self._trigger = parse_hex(self.params.trigger_command)
        self._ack = parse_hex(self.params.trigger_ack)
        self._stop_command = parse_hex(self.params.stop_command)
        self._session: _Session | None = None
        self._lifecycle = threading.Lock()
        self._failure = ""  # why the port was lost or did not open, until it opens again
        self._last_warning: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    # -- words for technicians ---------------------------------------------------------------------
    def _hint(self) -> str:
        if self._networked:
            return "check that the serial-device server is powered and reachable, and its cable to the scanner"
        return f"check the scanner's USB/serial cable and power, and that {self.port_name} exists"

    # -- lifecycle -----------------------------------------------------------------------------------
    def _open(self) -> None:
        with self._lifecycle:
            self._end_session()
            try:
                port = serial.serial_for_url(self.port_name, baudrate=self.params.baudrate,
                                             timeout=_READ_SLICE_S, write_timeout=1.0)
            except (ValueError,) + LINK_ERRORS as exc:
                self._failure = f"cannot open {self._where()}: {exc}; {self._hint()}"
                raise DeviceDisconnected(self._failure) from None
            try:
                port.reset_input_buffer()  # codes read while nobody listened are stale
            except LINK_ERRORS as exc:
                port.close()
                self._failure = f"cannot open {self._where()}: {exc}; {self._hint()}"
                raise DeviceDisconnected(self._failure) from None
            assembler = LineAssembler(SUFFIXES[self.params.suffix], self.params.max_length,
                                      self.params.inter_char_timeout_s, self._ack)
            session = _Session(port, assembler)
            if self._trigger and self.armed:
                session.next_trigger_at = 0.0
            self._session = session
            self._failure = ""
            session.thread = threading.Thread(target=self._read_loop, args=(session,),
                                              name=f"qr-scanner-{self.name}", daemon=True)
            session.thread.start()
        log.info("%s online at %d baud", self._where(), self.params.baudrate)
        self.set_status(DeviceState.ONLINE, MediaState.NOT_SUPPORTED, "")

    def _close(self) -> None:
        with self._lifecycle:
            self._end_session()

    def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.stop.set()
        if session.thread is not None and session.thread is not threading.current_thread():
            session.thread.join(timeout=2.0)
        try:
            session.port.close()
        except LINK_ERRORS as exc:  # closing a vanished port may fail; it is closed anyway
            log.debug("%s: error while closing: %s", self._where(), exc)

    # -- the reader ------------------------------------------------------------------------------------
    def _read_loop(self, session: _Session) -> None:
        port = session.port
        try:
            while not session.stop.is_set():
                self._write_due(session)
                data = port.read(max(1, min(port.in_waiting, 4096)))
                now = time.monotonic()
                items = session.assembler.feed(data, now) if data else session.assembler.expire(now)
                for item in items:
                    self._take(session, item, now)
        except LINK_ERRORS as exc:
            if not session.stop.is_set():
                self._lost(session, exc)
        except Exception as exc:  # a bug must become a status the supervisor acts on, not a dead thread
            log.exception("%s: reader failed", self._where())
            self._lost(session, exc)

    def _write_due(self, session: _Session) -> None:
        """Trigger and stop commands, written by the reader thread only (one writer, in order)."""
        if not self._trigger:
            return
        if session.send_stop:
            session.send_stop = False
            if self._stop_command:
                session.port.write(self._stop_command)
        due = session.next_trigger_at
        now = time.monotonic()
        if session.probe or (due is not None and now >= due and self.armed):
            session.probe = False
            session.port.write(self._trigger)
            session.triggers += 1
            session.next_trigger_at = now + self.params.retrigger_s if self.armed else None

    def _take(self, session: _Session, item: Line | Dropped, now: float) -> None:
        if self._trigger and self.armed:
            session.next_trigger_at = now  # a command-triggered scanner reads once per trigger
        if isinstance(item, Dropped):
            self._drop(item.reason, item.length)
            return
        raw = item.raw
        symbology = "unknown"
        if self.params.aim_id:
            symbology, raw = split_aim(raw)
        text = decode_text(raw, self.params.encoding, self.params.fallback_encoding)
        if text is None:
            self._drop("undecodable", len(item.raw))
            return
        delivered = self._offer(text, symbology, raw)
        log.debug("%s: code of %d bytes %s", self._where(), len(raw), "delivered" if delivered else "not delivered")

    def _drop(self, reason: str, length: int) -> None:
        self._unreadable(reason, length)
        words = {
            "incomplete": "stopped mid-way (no suffix within "
                          f"{self.params.inter_char_timeout_s:g} s; check the scanner's suffix setting)",
            "too_long": f"was longer than {self.params.max_length} bytes",
            "undecodable": f"is not valid {self.params.encoding}"
                           + (f" nor {self.params.fallback_encoding}" if self.params.fallback_encoding else "")
                           + f" (check the baud rate {self.params.baudrate} and the scanner's encoding)",
        }[reason]
        now = time.monotonic()
        if now - self._last_warning.get(reason, -_WARN_EVERY_S) >= _WARN_EVERY_S:
            more = self._suppressed.pop(reason, 0)
            log.warning("%s: a code of %d bytes was dropped: it %s%s", self._where(), length, words,
                        f" ({more} more since the last warning)" if more else "")
            self._last_warning[reason] = now
        else:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1

    def _lost(self, session: _Session, exc: BaseException) -> None:
        args = exc.args
        reason = f"[Errno {args[0]}] {args[1]}" if len(args) == 2 and isinstance(args[0], int) else str(exc)
        message = f"{self._where()} lost ({reason or type(exc).__name__}); {self._hint()}"
        try:
            session.port.close()
        except LINK_ERRORS:
            pass
        log.warning("%s", message)
        self.set_status(DeviceState.OFFLINE, fault=message)
        self._failure = message
        session.failure = message  # last: poll() raises only once the status says why

    # -- arming ----------------------------------------------------------------------------------------
    def _arming_changed(self, armed: bool) -> None:
        session = self._session
        if session is None or not self._trigger:
            return
        if armed:
            session.next_trigger_at = 0.0  # the reader sends it within one read slice
        else:
            session.next_trigger_at = None
            session.send_stop = True

    # -- supervision -------------------------------------------------------------------------------------
    def poll(self) -> None:
        """Raise DeviceDisconnected when the port failed, or its path vanished."""
        session = self._session
        if session is None:
            raise DeviceDisconnected(self._failure or f"{self._where()} is not open")
        if session.failure:
            raise DeviceDisconnected(session.failure)
        if not self._networked and not os.path.exists(self.port_name):
            message = f"{self._where()} lost ({self.port_name} no longer exists); {self._hint()}"
            self.set_status(DeviceState.OFFLINE, fault=message)
            session.failure = self._failure = message
            raise DeviceDisconnected(message)
        if session.thread is not None and not session.thread.is_alive():
            raise DeviceDisconnected(session.failure or f"{self._where()}: the reader stopped; reopening")

    # -- self-test ------------------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """Port, the trigger's answer (when configured) and the share of unreadable codes."""
        opened_here = False
        if self._session is None:
            try:
                self.open()
                opened_here = True
            except DeviceError as exc:
                return [SelfTestResult("port opens", False, str(exc))]
        try:
            results = [SelfTestResult("port opens", True, f"{self.port_name} open at {self.params.baudrate} baud")]
            results.append(self._trigger_result())
            results.append(self._line_result())
            return results
        finally:
            if opened_here:
                self.close()

    def _trigger_result(self) -> SelfTestResult:
        session = self._session
        if not self._trigger:
            return SelfTestResult("scanner answers", True, (
                "this scanner sends only when it reads a code (no trigger command configured): "
                "present a code to check it"))
        if not self._ack:
            return SelfTestResult("scanner answers", True, (
                "trigger command configured without trigger_ack, so the scanner's answer cannot be "
                "checked: present a code to check it"))
        if session is None:
            return SelfTestResult("scanner answers", False, f"{self._where()} is not open")
        before = session.assembler.acks
        session.probe = True
        deadline = time.monotonic() + ACK_WAIT_S
        while session.assembler.acks == before and time.monotonic() < deadline and not session.failure:
            time.sleep(0.02)
        if not self.armed:
            session.send_stop = True
        if session.assembler.acks > before:
            return SelfTestResult("scanner answers", True, "the scanner acknowledged the trigger command")
        return SelfTestResult("scanner answers", False, (
            session.failure or f"{self._where()}: no answer to the trigger command within {ACK_WAIT_S:g} s; "
            f"check that the scanner is powered, in command-trigger mode, at {self.params.baudrate} baud, "
            "and the trigger_command/trigger_ack settings"))

    def _line_result(self) -> SelfTestResult:
        c = self.counters()
        bad = c["undecodable"] + c["too_long"] + c["incomplete"]
        detail = (f"{c['scanned']} codes delivered, {c['ignored']} ignored while not armed, {c['duplicates']} "
                  f"duplicates; dropped: {c['undecodable']} undecodable, {c['too_long']} too long, "
                  f"{c['incomplete']} incomplete")
        if bad >= 3 and bad > c["scanned"] + c["ignored"] + c["duplicates"]:
            return SelfTestResult("codes readable", False, (
                f"{detail}: most codes are unreadable; check the baud rate ({self.params.baudrate}), "
                f"the suffix ({self.params.suffix!r}) and the encoding ({self.params.encoding}) against the "
                "scanner's settings"))
        return SelfTestResult("codes readable", True, detail)
