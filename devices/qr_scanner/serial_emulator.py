"""A serial QR scanner emulator: codes as suffixed lines on the far end of a pseudo-terminal.

The real driver opens the slave side of the pty (or the stable `link` symlink to it)
exactly as it opens /dev/ttyACM0, so its framing, decoding, arming and reconnect code
all run in tests. The emulator behaves like a scanner in serial mode:

- `scan(text)`: a code is read; its bytes (in the emulator's `encoding`, or the one
  given) go out followed by `suffix`, prefixed with the AIM identifier "]Q1" when
  `aim_id` is set;
- faults: `scan_garbage()` (bytes invalid in UTF-8 and GB18030), `scan_partial(text)`
  (the code stops mid-way, no suffix), `scan_twice(text)` (a continuous-mode scanner
  reading the same code twice in a row), `slow(cps)` (characters a second), and
  `unplug()`/`replug()`: unplug closes the pty (the driver's next read fails like a
  pulled cable) and removes `link`; replug makes a new pty and re-points `link`, so a
  driver configured with the link finds the scanner again;
- command-trigger mode (`trigger`, hex): nothing is sent until the trigger command
  arrives; then the emulator answers `trigger_ack` (hex) if set, and the code held in
  front of it (the last scan_*(), until `remove()`), once per trigger.

With `baudrate` the bytes leave at the pace of an 8N1 line of that speed.

A console hands a typed line to `command()` and shows the answer (`help` lists the
commands); bad input is answered, never raised.

Standalone::

    python -m devices.qr_scanner.serial_emulator --link /tmp/kiosk/qr
"""
from __future__ import annotations

import argparse
import sys
import threading
import time

from devices.emulator_cli import run_standalone
from devices.pty_emulator import PtyEmulator

GARBAGE = b"\xff\xfe\x80\xc3\x28\xa0\xff"  # invalid as UTF-8 (lone continuation, bad pair) and as GB18030
AIM_QR = b"]Q1"
_SUFFIXES = {"\r": b"\r", "\n": b"\n", "\r\n": b"\r\n", "cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}

CONSOLE_HELP = """emulated serial QR scanner: type a command and Enter
  scan TEXT             a code is read (the rest of the line is its text, Chinese is fine)
  twice TEXT            the same code read twice in a row (continuous mode)
  partial TEXT          a code cut off mid-way (no suffix follows)
  garbage               bytes that are text in no encoding (wrong baud rate, noise)
  slow CPS | slow off   send CPS characters a second / at line speed again
  remove                trigger mode: take the held code away
  unplug | replug       pull the scanner's cable / plug it back in
  status                what the emulator is doing
  help                  this text"""


def _hex(value: str) -> bytes:
    try:
        return bytes.fromhex(value.replace("0x", "").replace("0X", ""))
    except ValueError:
        raise ValueError(f"{value!r} is not hex bytes (e.g. \"7E 00 08 01 00 02 01 AB CD\")") from None


class SerialQrEmulator(PtyEmulator):
    """A serial QR scanner served on a pty in its own thread."""

    NAME = "QR scanner emulator"
    THREAD_NAME = "qr-serial-emulator"
    ADDRESS_PARAM = "port"  # the SerialQrScanner parameter that start()'s path goes into

    def __init__(
        self,
        link: str | None = None,
        suffix: str = "\r",
        encoding: str = "utf-8",
        baudrate: int | None = None,
        trigger: str = "",
        trigger_ack: str = "",
        aim_id: bool = False,
    ) -> None:
        key = suffix if suffix in _SUFFIXES else suffix.lower()
        if key not in _SUFFIXES:
            raise ValueError(f'suffix is "\\r", "\\n" or "\\r\\n" (or CR, LF, CRLF), not {suffix!r}')
        "".encode(encoding)  # LookupError for an unknown encoding, now rather than at the first scan
        if baudrate is not None and baudrate <= 0:
            raise ValueError(f"baudrate must be positive, not {baudrate}")
        super().__init__(link)
        self.suffix = _SUFFIXES[key]
        self.encoding = encoding
        self.baudrate = baudrate
        self.trigger = _hex(trigger)
        self.trigger_ack = _hex(trigger_ack)
        self.aim_id = aim_id
        self._lock = threading.Lock()
        self._out = bytearray()  # bytes waiting to go out
        self._held: bytes | None = None  # trigger mode: what the next trigger sends
        self._rx = bytearray()
        self._cps: float | None = None
        self._next_byte_at = 0.0
        self.triggers = 0  # trigger commands received since start

    # -- lifecycle ---------------------------------------------------------------------------------
    def _close(self) -> None:
        super()._close()
        with self._lock:  # unplugged: queued bytes are lost
            self._out.clear()
            self._rx.clear()

    # -- scripting -----------------------------------------------------------------------------------
    def _line(self, text: str, encoding: str | None) -> bytes:
        return (AIM_QR if self.aim_id else b"") + text.encode(encoding or self.encoding)

    def _present(self, data: bytes) -> None:
        """Send now, or in trigger mode hold it in front of the scanner until triggered."""
        with self._lock:
            if self.trigger:
                self._held = data
            else:
                self._out += data
        self._wake()

    def scan(self, text: str, encoding: str | None = None) -> None:
        """A code is read: its bytes and the suffix go out (held until triggered in trigger mode)."""
        self._present(self._line(text, encoding) + self.suffix)

    def scan_twice(self, text: str, encoding: str | None = None) -> None:
        """The same code read twice in a row, as a scanner in continuous mode does."""
        line = self._line(text, encoding) + self.suffix
        self._present(line + line)

    def scan_partial(self, text: str, fraction: float = 0.5, encoding: str | None = None) -> None:
        """A code cut off mid-way: only the first `fraction` of its bytes, no suffix. The
        line then stays silent until the next scan."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction {fraction}: a part of the code, between 0 and 1")
        data = self._line(text, encoding)
        if len(data) < 2:
            raise ValueError("a partial code needs a text of at least two bytes")
        self._present(data[:max(1, int(len(data) * fraction))])

    def scan_garbage(self, data: bytes = GARBAGE) -> None:
        """Bytes that are no text (wrong baud rate, line noise), then the suffix."""
        self._present(data + self.suffix)

    def remove(self) -> None:
        """Trigger mode: the code is taken away; triggers get only the ack from now."""
        with self._lock:
            self._held = None

    def slow(self, cps: float | None) -> None:
        """Send `cps` characters a second from now; None: at line speed again."""
        if cps is not None and not 0 < float(cps) <= 100000:
            raise ValueError(f"slow({cps}): characters a second above 0 (or None for line speed)")
        with self._lock:
            self._cps = None if cps is None else float(cps)
        self._wake()

    def idle(self) -> bool:
        """True when nothing is waiting to be sent."""
        with self._lock:
            return not self._out

    # -- serving ---------------------------------------------------------------------------------------
    def _pace(self) -> float | None:
        """Seconds a byte takes, or None for as fast as the pty takes them."""
        if self._cps:
            return 1.0 / self._cps
        if self.baudrate:
            return 10.0 / self.baudrate  # 8N1: ten bits a byte
        return None

    def _poll(self) -> tuple[float, bool]:
        """Wait for the pty only when a byte is due; until then sleep."""
        with self._lock:
            pending = bool(self._out)
            pace = self._pace()
        if not pending:
            return 0.5, False
        wait = self._next_byte_at - time.monotonic() if pace else 0.0
        return (wait, False) if wait > 0 else (0.5, True)

    def _on_bytes(self, data: bytes) -> None:
        if not self.trigger:
            return  # a scanner in serial mode ignores what the host sends
        with self._lock:
            self._rx += data
            while True:
                at = self._rx.find(self.trigger)
                if at < 0:
                    break
                del self._rx[:at + len(self.trigger)]
                self.triggers += 1
                self._out += self.trigger_ack + (self._held or b"")
            if len(self._rx) > len(self.trigger):
                del self._rx[:len(self._rx) - len(self.trigger) + 1]
        self._wake()

    def _on_writable(self) -> None:
        with self._lock:
            pace = self._pace()
            chunk = bytes(self._out[:1] if pace else self._out[:4096])
        if not chunk:
            return
        try:
            sent = self._write(chunk)
        except BlockingIOError:  # nobody reads the port and its buffer is full: try later
            time.sleep(0.01)
            return
        with self._lock:
            del self._out[:sent]
        if pace:
            self._next_byte_at = time.monotonic() + pace

    # -- console ---------------------------------------------------------------------------------------------
    def status_text(self) -> str:
        with self._lock:
            waiting, held, cps = len(self._out), self._held is not None, self._cps
        where = f"on {self.port}" + (f" (link {self.link})" if self.link else "") if self.running else "unplugged"
        speed = f"{cps:g} characters a second" if cps else (f"{self.baudrate} baud" if self.baudrate else "full speed")
        mode = f"trigger mode ({self.triggers} triggers, code {'held' if held else 'not held'})" if self.trigger \
            else "serial mode"
        return f"QR scanner {where}, {mode}, {speed}, {waiting} bytes waiting"

    def command(self, line: str) -> str:
        """Carry out one console command (see CONSOLE_HELP); returns the answer to show.
        Unknown or bad input is answered, never raised."""
        words = line.split(maxsplit=1)
        if not words:
            return ""
        verb, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb == "scan" and rest:
                self.scan(rest)
                return f"code of {len(rest)} characters read"
            if verb == "twice" and rest:
                self.scan_twice(rest)
                return "the same code read twice"
            if verb == "partial" and rest:
                self.scan_partial(rest)
                return "a code cut off mid-way was sent"
            if verb == "garbage" and not rest:
                self.scan_garbage()
                return "garbage sent"
            if verb == "slow" and rest:
                self.slow(None if rest.lower() in ("off", "normal") else float(rest))
                return "line speed" if rest.lower() in ("off", "normal") else f"{float(rest):g} characters a second"
            if verb == "remove" and not rest:
                self.remove()
                return "code taken away"
            if verb == "unplug" and not rest:
                self.unplug()
                return "scanner unplugged"
            if verb == "replug" and not rest:
                return f"scanner plugged in again at {self.replug()}"
            if verb == "status" and not rest:
                return self.status_text()
        except (ValueError, RuntimeError, OSError, LookupError, UnicodeEncodeError) as exc:
            return f"error: {exc}"
        return f"unknown QR scanner command {line.strip()!r}; type help"



def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.qr_scanner.serial_emulator",
        description="Serve an emulated serial QR scanner on a pseudo-terminal; type commands on standard "
        "input (help lists them).",
    )
    parser.add_argument("--link", help="keep a symlink to the pty here (configure the driver's port with it)")
    parser.add_argument("--suffix", default="CR", help="CR, LF or CRLF (default CR)")
    parser.add_argument("--encoding", default="utf-8")
    parser.add_argument("--baudrate", type=int, help="pace the line like a real one at this speed")
    args = parser.parse_args(argv)
    return run_standalone(lambda: SerialQrEmulator(args.link, args.suffix, args.encoding, args.baudrate),
                          lambda emu, path: [f"port {emu.port}" + (f" link {args.link}" if args.link else "")],
                          (ValueError, LookupError, OSError))


if __name__ == "__main__":
    sys.exit(_main())
