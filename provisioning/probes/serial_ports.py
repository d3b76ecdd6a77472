"""Which device answers on which serial port, asked in an order that harms none of them.

1. ESC/POS real-time status, DLE EOT 1 (10 04 01), at 9600, 19200, 38400 and 115200 baud:
   a receipt printer answers one status byte whose fixed bits (bit 1 and 4 set, 0 and 7
   clear: devices/receipt_printer/escpos.py) line noise rarely has; the answer is
   confirmed with DLE EOT 4 (the paper sensor) before it counts. Three bytes are all a
   printer at a wrong speed sees, at worst one stray character on paper.
2. Only a port that did not answer as a printer gets the SAM (ID-card reader, GA/T 467)
   status request at 115200 baud, built and parsed with devices/idcard/protocol.py: a
   printer would print the frame's bytes as junk. A SAM that answers is asked its SAM ID
   too (printed on the module's label).
3. A port that answered neither is "garbage" (bytes that are neither) or "silent". QR
   scanners in serial mode never answer (they send only when they read a code), so with
   `listen()` detect waits on the silent ports for a line ending in CR/LF while the
   technician scans a code, and tells the suffix from it.

Ports held by another program are not probed (the bytes would be the kiosk's), nor the
system console. Nothing the devices send is kept beyond a count and a short hex sample;
a scanned code's text is never reported (it may be personal).
"""
from __future__ import annotations

import errno
import fcntl
import glob
import os
import re
import stat
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from devices.idcard import protocol as sam
from devices.receipt_printer import escpos as ep
from provisioning.probes import Finding, PortReport, stable_name

ESCPOS_BAUDS = (9600, 19200, 38400, 115200)  # the usual factory settings first
SAM_BAUD = 115200
LISTEN_BAUD = 9600  # QR scanners' usual factory setting
STABLE_FOLDERS = ("/dev/serial/by-id", "/dev/serial/by-path")
_SLICE_S = 0.02  # one blocking read; deadlines are checked between slices
_GRACE_S = 0.05  # after a printer's one status byte: anything more means it was not one
_SUFFIX_WAIT_S = 0.15  # after a CR: does an LF follow?
HEX_SAMPLE = 16  # garbage bytes shown in the report


def hex_sample(data: bytes) -> str:
    shown = data[:HEX_SAMPLE].hex(" ")
    return shown + (" ..." if len(data) > HEX_SAMPLE else "")


def is_url(port: str) -> bool:
    return "://" in port


# -- which ports ----------------------------------------------------------------------------------
def _number(path: str) -> tuple[str, int]:
    match = re.match(r"(.*?)(\d+)$", path)
    return (match.group(1), int(match.group(2))) if match else (path, -1)


def uart_present(path: str) -> bool:
    """A built-in ttyS port with a UART behind it: the kernel makes ttyS0-31 whether or not
    there is one, and says "type 0" (unknown) for the empty ones (pyserial's list_ports
    hides them by their sysfs subsystem, which newer kernels no longer tell apart)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        buf = bytearray(128)  # struct serial_struct starts with `int type`
        fcntl.ioctl(fd, termios.TIOCGSERIAL, buf, True)
        return struct.unpack_from("i", buf)[0] != 0
    except OSError:
        return False
    finally:
        os.close(fd)


def candidate_ports() -> list[str]:
    """USB serial adapters, USB CDC devices (most QR scanners) and built-in UARTs that exist."""
    usb = sorted(glob.glob("/dev/ttyUSB*"), key=_number) + sorted(glob.glob("/dev/ttyACM*"), key=_number)
    builtin = [p for p in sorted(glob.glob("/dev/ttyS*"), key=_number) if uart_present(p)]
    return usb + builtin


def not_a_port(port: str) -> str | None:
    """Why a --port given by the technician cannot be a serial port (None when it may be one)."""
    if is_url(port):
        try:
            serial.serial_for_url(port, do_not_open=True)
        except (ValueError, serial.SerialException) as exc:
            return f"is not a port URL pyserial knows ({exc}); use a device path or socket://HOST:PORT"
        return None
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        return ("does not exist: check the name (ls /dev/ttyUSB* /dev/ttyACM* /dev/serial/by-id/) and that the "
                "device is plugged in")
    except OSError as exc:
        return f"cannot be looked at ({exc.strerror})"
    if not stat.S_ISCHR(mode):
        return "is not a serial device (not a character device file)"
    return None


def _reason(exc: BaseException) -> str:
    found = re.findall(r"\[Errno (\d+)\] ([^:;'()\]\[]+)", str(exc))
    if found:
        code, words = found[-1]
        if int(code) == errno.EACCES:
            return (f"{words.strip()}: run as root, or add the user to the dialout group "
                    "(usermod -aG dialout USER, then log in again)")
        return words.strip()
    return str(exc) or type(exc).__name__


# -- one line ------------------------------------------------------------------------------------
class _Line:
    """One opened port, read in short slices against a deadline."""

    def __init__(self, port: str, baudrate: int) -> None:
        self.port = serial.serial_for_url(port, baudrate=baudrate, timeout=_SLICE_S, write_timeout=1.0)
        self.received = bytearray()  # everything that was not a recognised answer

    def close(self) -> None:
        try:
            self.port.close()
        except (OSError, serial.SerialException, termios.error):
            pass

    def ask(self, baudrate: int, command: bytes) -> None:
        if self.port.baudrate != baudrate:
            self.port.baudrate = baudrate
        self.port.reset_input_buffer()
        self.port.write(command)
        self.port.flush()

    def read(self, seconds: float, enough: Callable[[bytes], bool]) -> bytes:
        deadline = time.monotonic() + seconds
        data = bytearray()
        while time.monotonic() < deadline and not enough(bytes(data)):
            data += self.port.read(max(1, self.port.in_waiting))
        return bytes(data)


def _first_byte_then_quiet(data: bytes, line: _Line) -> bytes:
    """After the first byte, whatever else arrives within the grace time (one more read)."""
    return data + line.read(_GRACE_S, lambda more: False) if data else data


# -- ESC/POS -------------------------------------------------------------------------------------
def _paper_word(paper: int) -> str:
    return "out" if paper & ep.PAPER_END else "near_end" if paper & ep.PAPER_NEAR_END else "loaded"


def _printer_words(status: int, paper: int) -> str:
    words = {"out": "OUT OF PAPER", "near_end": "paper near its end", "loaded": "paper loaded"}
    return f"{'offline' if status & ep.PRINTER_OFFLINE else 'online'}, {words[_paper_word(paper)]}"


def probe_escpos(line: _Line, timeout: float) -> tuple[int, int, int] | None:
    """(baud rate, status byte, paper byte) of a printer answering DLE EOT 1, else None."""
    for baud in ESCPOS_BAUDS:
        line.ask(baud, ep.status_query(ep.STATUS_PRINTER))
        answer = _first_byte_then_quiet(line.read(timeout, bool), line)
        if len(answer) == 1 and ep.is_status_byte(answer[0]):
            line.ask(baud, ep.status_query(ep.STATUS_PAPER))  # confirm: a second real-time answer
            paper = _first_byte_then_quiet(line.read(timeout, bool), line)
            if len(paper) == 1 and ep.is_status_byte(paper[0]):
                return baud, answer[0], paper[0]
            answer += paper
        line.received += answer
    return None


# -- SAM -------------------------------------------------------------------------------------------
@dataclass
class SamAnswer:
    sw3: int
    sam_id: str = ""


def _sam_exchange(line: _Line, command: tuple[int, int], timeout: float) -> tuple[sam.Response | None, int]:
    """Send one SAM command; (its answer or None, damaged frames seen)."""
    reader = sam.FrameReader()
    damaged = 0
    line.ask(SAM_BAUD, sam.build_command(*command))
    deadline = time.monotonic() + timeout
    data = bytearray()
    while time.monotonic() < deadline:
        chunk = line.port.read(max(1, line.port.in_waiting))
        data += chunk
        reader.feed(chunk)
        for item in reader.frames():
            if isinstance(item, sam.FrameError):
                damaged += 1
                continue
            try:
                return item.as_response(), damaged
            except sam.MalformedResponse:
                damaged += 1
    line.received += data
    return None, damaged


def probe_sam(line: _Line, timeout: float) -> tuple[SamAnswer | None, int]:
    """The SAM's status (and ID) when an ID-card reader's SAM answers; (None, damaged frames) else."""
    answer, damaged = _sam_exchange(line, sam.SAM_STATUS, timeout)
    if answer is None:
        return None, damaged
    if (answer.sw1, answer.sw2) != (0, 0):  # a frame, but not a SAM's answer
        return None, damaged + 1
    result = SamAnswer(answer.sw3)
    if answer.sw3 == sam.SW3_SUCCESS:
        id_answer, _ = _sam_exchange(line, sam.SAM_ID, timeout)
        if id_answer is not None and id_answer.sw3 == sam.SW3_SUCCESS:
            try:
                result.sam_id = sam.format_sam_id(id_answer.data)
            except sam.MalformedResponse:
                pass
    return result, damaged


# -- text lines (QR scanners) ----------------------------------------------------------------------
def as_code_line(data: bytes) -> tuple[int, str] | None:
    """(characters, suffix) when `data` is one line of text ending in CR, LF or CR LF."""
    for suffix in (b"\r\n", b"\r", b"\n"):
        if data.endswith(suffix):
            body = data[: -len(suffix)]
            if not body or b"\r" in body or b"\n" in body:
                return None
            for encoding in ("utf-8", "gb18030"):
                try:
                    text = body.decode(encoding)
                except UnicodeDecodeError:
                    continue
                if text.isprintable():
                    return len(text), suffix.decode("ascii")
            return None
    return None


SUFFIX_WORDS = {"\r": "CR", "\n": "LF", "\r\n": "CR LF"}


def qr_finding(port: str, param_port: str, baud: int, chars: int, suffix: str, named: bool,
               confidence: str = "certain", when: str = "") -> tuple[Finding, PortReport]:
    detail = (f"sent a {chars}-character code ending in {SUFFIX_WORDS[suffix]} at {baud} baud{when}: "
              "a QR/barcode scanner in serial mode")
    finding = Finding("serial", "qr_scanner", "serial", {"port": param_port, "baudrate": baud, "suffix": suffix},
                      port, detail, confidence, facts={"code_length": chars})  # type: ignore[arg-type]
    return finding, PortReport(port, "qr_scanner", detail, named, baud)


# -- one port, all probes ---------------------------------------------------------------------------
def probe_port(port: str, named: bool, timeout: float, listen_baud: int = LISTEN_BAUD) -> \
        tuple[PortReport, Finding | None]:
    """Probe one port (printer first, then SAM); what it is, and the device it suggests."""
    param_port = port if named or is_url(port) else stable_name(port, STABLE_FOLDERS)
    try:
        line = _Line(port, ESCPOS_BAUDS[0])
    except (OSError, ValueError, serial.SerialException) as exc:
        return PortReport(port, "cannot_open", f"cannot be opened: {_reason(exc)}", named), None
    try:
        printer = probe_escpos(line, timeout)
        if printer is not None:
            baud, status, paper = printer
            detail = (f"answered the ESC/POS status query (DLE EOT 1: 0x{status:02X}) at {baud} baud: "
                      f"a receipt printer, {_printer_words(status, paper)}")
            return (PortReport(port, "receipt_printer", detail, named, baud),
                    Finding("serial", "receipt_printer", "escpos_serial", {"port": param_port, "baudrate": baud},
                            port, detail, facts={"online": not status & ep.PRINTER_OFFLINE,
                                                 "paper": _paper_word(paper)}))
        answer, damaged = probe_sam(line, timeout * 2)
        if answer is not None:
            if answer.sw3 == sam.SW3_SUCCESS:
                state = f"SAM ID {answer.sam_id}" if answer.sam_id else "SAM status OK"
            else:
                state = f"but reports 0x{answer.sw3:02X} ({sam.describe_sw3(answer.sw3)}): the reader needs service"
            detail = f"answered the SAM status request (GA/T 467) at {SAM_BAUD} baud: an ID-card reader, {state}"
            return (PortReport(port, "idcard", detail, named, SAM_BAUD),
                    Finding("serial", "idcard", "sam_serial", {"port": param_port, "baudrate": SAM_BAUD},
                            port, detail, facts={"sam_status": f"0x{answer.sw3:02X}", "sam_id": answer.sam_id}))
        data = bytes(line.received)
    except (OSError, serial.SerialException, termios.error) as exc:
        return PortReport(port, "cannot_open", f"failed while probing: {_reason(exc)}", named), None
    finally:
        line.close()
    code = as_code_line(data)
    if code is not None:  # someone scanned a code while we asked
        finding, report = qr_finding(port, param_port, listen_baud, code[0], code[1], named, "likely",
                                     " while being probed")
        return report, finding
    if data:
        frames = f"; {damaged} damaged SAM frame(s) among them: a reader at another baud rate or a bad cable" \
            if damaged else ""
        return PortReport(port, "garbage", f"answers, but not ESC/POS or SAM: {len(data)} bytes of garbage "
                          f"({hex_sample(data)}){frames}", named, received=data), None
    return PortReport(port, "silent", "silent: perhaps a QR scanner (they only send when they read a code): "
                      "run again with --listen 10 and scan a code within those 10 seconds to confirm",
                      named), None


# -- listening for a scanned code ---------------------------------------------------------------------
def _open_to_listen(port: str, baud: int) -> _Line | str:
    """The line opened and emptied of what came before, or why it cannot be opened."""
    try:
        line = _Line(port, baud)
        line.port.reset_input_buffer()
    except (OSError, ValueError, serial.SerialException, termios.error) as exc:
        return _reason(exc)
    return line


def listen_port(line: _Line, deadline: float) -> tuple[str, Any]:
    """Wait until `deadline` for one line: ("line", (chars, suffix)), ("bytes", data) when
    something that is no line came, ("silent", None), or ("error", reason). Closes `line`."""
    data = bytearray()
    try:
        while time.monotonic() < deadline:
            data += line.port.read(max(1, line.port.in_waiting))
            found = re.search(rb"[\r\n]", data)
            if found:
                end = found.start()
                if data[end:end + 1] == b"\r" and not data[end + 1:]:  # CR alone, or CR LF?
                    data += line.read(_SUFFIX_WAIT_S, lambda more: bool(more))
                first = re.match(rb"[^\r\n]*(\r\n|\r|\n)", bytes(data))
                piece = first.group(0) if first else bytes(data)
                code = as_code_line(piece)
                return ("line", code) if code else ("bytes", bytes(data))
    except (OSError, serial.SerialException, termios.error) as exc:
        return "error", _reason(exc)
    finally:
        line.close()
    return ("bytes", bytes(data)) if data else ("silent", None)


def listen(ports: list[PortReport], seconds: float, baud: int, ready: Callable[[], None] = lambda: None) \
        -> list[Finding]:
    """Listen on the silent ports at once; turn those that send a line into QR scanners.
    `ready` is called once every port is open and listened to (to tell the technician to scan)."""
    results: dict[str, tuple[str, Any]] = {}
    lines: dict[str, _Line] = {}
    for report in ports:
        opened = _open_to_listen(report.port, baud)
        if isinstance(opened, str):
            results[report.port] = ("error", opened)
        else:
            lines[report.port] = opened
    deadline = time.monotonic() + seconds

    def one(port: str, line: _Line) -> None:
        results[port] = listen_port(line, deadline)

    threads = [threading.Thread(target=one, args=item, name=f"listen-{item[0]}", daemon=True)
               for item in lines.items()]
    for t in threads:
        t.start()
    ready()
    for t in threads:
        t.join(seconds + 5)
    found: list[Finding] = []
    for report in ports:
        what, value = results.get(report.port, ("silent", None))
        if what == "line":
            param_port = report.port if report.named or is_url(report.port) else stable_name(report.port,
                                                                                              STABLE_FOLDERS)
            finding, new = qr_finding(report.port, param_port, baud, value[0], value[1], report.named)
            report.state, report.detail, report.baudrate = new.state, new.detail, new.baudrate
            found.append(finding)
        elif what == "bytes":
            report.state, report.received = "garbage", value
            report.detail = (f"sent {len(value)} bytes while we listened, but no line of text ending in CR/LF "
                             f"({hex_sample(value)}): a scanner at another speed than {baud} baud (try "
                             "--listen-baud 115200) or without a suffix (set CR in its setup codes)")
        elif what == "error":
            report.detail += f"; listening failed: {value}"
        else:
            report.detail = f"silent: nothing came within the {seconds:g} s listened (no scanner, or no code scanned)"
    return found
