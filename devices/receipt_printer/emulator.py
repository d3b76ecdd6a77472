"""A Chinese ESC/POS thermal receipt printer, emulated on a pseudo-terminal.

The real driver opens the slave side of the pty (or the stable `link` symlink to it)
exactly as it opens /dev/ttyS0. Everything it sends is parsed as a printer would
(emulator_model.PrinterModel: Chinese-mode text in the model's encoding, styles, native
QR codes, pictures, feeds, cuts, status queries answered in real time; unknown commands
recorded, never fatal). Each receipt, up to its cut, is rendered to a PNG
(emulator_render.py) in `out_dir` by a background thread, for a person to check.

Scripting (methods, and the console's `command()`): paper_low, paper_out, paper_ok,
jam/clear_jam (cutter error: DLE EOT 3 bit 3), open_cover/close_cover, silent (stops
answering status queries, as some models do without paper; `silent_without_paper` makes
paper_out do that too), run_out_after(n_lines) (the paper ends mid-receipt), busy
(the printer sends XOFF and, with `flow_control="xonxoff"`, a driver that honours it
stops; bytes past `buffer_bytes` received while busy are lost, as in a real overflow),
unplug/replug. While the paper is out, jammed or the cover is open, print data is
discarded like a real printer does; status queries are still answered.

With `baudrate` the emulator reads its line no faster than a real 8N1 line delivers
(10 bits a byte), so timing figures (bench/receipt_print.py) are those of the wire.

Standalone::

    python -m devices.receipt_printer.emulator --link /tmp/kiosk/printer --out /tmp/receipts
"""
from __future__ import annotations

import argparse
import logging
import queue
import select
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Callable

from devices.emulator_cli import run_standalone
from devices.pty_emulator import PtyEmulator
from devices.receipt_printer import escpos as ep
from devices.receipt_printer.document import PAPER_DOTS
from devices.receipt_printer.emulator_model import Counters, PaperState, PrinterModel
from devices.receipt_printer.emulator_render import Receipt, save_png

log = logging.getLogger(__name__)

XON = b"\x11"
XOFF = b"\x13"

__all__ = ["CONSOLE_HELP", "Counters", "EscPosEmulator", "PaperState", "PrinterModel", "Receipt"]


# -- the pty and its thread ------------------------------------------------------------------------
CONSOLE_HELP = """receipt printer emulator commands:
  low | out | ok       paper near end / out of paper / a new roll loaded
  runout N             the paper runs out after N more printed lines
  jam | unjam          paper jammed at the cutter / cleared
  cover | close        open / close the paper cover
  silent | answer      stop / resume answering status queries
  busy | ready         send XOFF and hold / send XON
  receipts             list the printed receipts and their PNG files
  status               what the sensors say
  unplug | replug      pull the printer's cable out / plug it back in
  help                 this text"""


class EscPosEmulator(PtyEmulator):
    """An ESC/POS receipt printer on a pseudo-terminal, served in its own thread."""

    NAME = "ESC/POS emulator"
    THREAD_NAME = "escpos-emulator"

    # the emulator prints instantly: the driver need not wait for paper to come out
    DRIVER_DEFAULTS = {"print_speed_mm_s": 0.0}

    def __init__(
        self,
        link: str | None = None,
        out_dir: str | None = None,
        encoding: str = "gb18030",
        paper_width: int = 80,
        baudrate: int | None = None,
        chinese_at_power_up: bool = True,
        flow_control: str = "xonxoff",
        buffer_bytes: int = 4096,
        silent_without_paper: bool = False,
        render: bool = True,
    ) -> None:
        if paper_width not in PAPER_DOTS:
            raise ValueError(f"paper_width {paper_width} mm unknown; known: {sorted(PAPER_DOTS)}")
        if baudrate is not None and baudrate <= 0:
            raise ValueError(f"baudrate must be positive, not {baudrate}")
        if flow_control not in ("xonxoff", "none"):
            raise ValueError("the emulator's flow_control is 'xonxoff' or 'none' (a pty has no RTS/CTS lines)")
        if buffer_bytes < 16:
            raise ValueError("buffer_bytes below 16 is no printer")
        super().__init__(link)
        self.out_dir = Path(out_dir) if out_dir else None
        self.paper_width = paper_width
        self.dots = PAPER_DOTS[paper_width]
        self.baudrate = baudrate
        self.flow_control = flow_control
        self.buffer_bytes = buffer_bytes
        self.render_png = render
        self.model = PrinterModel(encoding, paper_width, chinese_at_power_up, on_receipt=self._queue_render)
        self.model.state.silent_without_paper = silent_without_paper
        self._lock = threading.RLock()
        self._busy = False
        self._busy_received = 0
        self._renders: queue.Queue[Receipt | None] = queue.Queue()
        self._render_thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Open the pty, serve it, and return what the driver should open (the link when given)."""
        if self._thread is not None:
            raise RuntimeError("emulator already running")
        if self.render_png and self._render_thread is None:
            if self.out_dir is None:
                self.out_dir = Path(tempfile.mkdtemp(prefix="escpos-emulator-"))
            self._render_thread = threading.Thread(target=self._render_loop, name="escpos-render", daemon=True)
            self._render_thread.start()
        return self._plug()

    def stop(self) -> None:
        """Stop serving, close the pty, remove the link, render what is pending. Safe twice."""
        self._unplug()
        with self._lock:
            self.model.finish_partial()
        thread, self._render_thread = self._render_thread, None
        if thread is not None:
            self._renders.put(None)
            thread.join(timeout=30)

    def _on_replug(self) -> None:
        with self._lock:
            self._busy = False

    # -- scripting ------------------------------------------------------------------------------
    def paper_low(self) -> None:
        """The near-end sensor sees the end of the roll coming."""
        with self._lock:
            self.model.state.paper = "low"

    def paper_out(self) -> None:
        """No paper: print data is discarded, DLE EOT 4 says paper end."""
        with self._lock:
            self.model.state.paper = "out"
            self.model.state.lines_left = None

    def paper_ok(self) -> None:
        """A new roll is loaded."""
        with self._lock:
            self.model.state.paper = "ok"
            self.model.state.lines_left = None

    def run_out_after(self, n_lines: int) -> None:
        """The paper ends after `n_lines` more printed lines (a QR code, a picture or a feed
        counts as one)."""
        if n_lines < 1:
            raise ValueError("run_out_after needs at least 1 line")
        with self._lock:
            self.model.state.lines_left = n_lines

    def jam(self) -> None:
        """Paper jammed at the cutter: the printer goes offline and reports a cutter error."""
        with self._lock:
            self.model.state.jammed = True

    def clear_jam(self) -> None:
        with self._lock:
            self.model.state.jammed = False

    def open_cover(self) -> None:
        with self._lock:
            self.model.state.cover_open = True

    def close_cover(self) -> None:
        with self._lock:
            self.model.state.cover_open = False

    def silent(self, on: bool = True) -> None:
        """Stop answering status queries (on) or answer again (off); printing is unaffected."""
        with self._lock:
            self.model.state.silent = bool(on)

    def busy(self, on: bool = True) -> None:
        """Send XOFF and count what still arrives (a real buffer overflows past `buffer_bytes`),
        or send XON again. Without flow control nothing is sent and the buffer just fills.

        When the driver's tty honours XON/XOFF (IXON), this returns once the kernel has
        acted on the XOFF, so a test's next write is held for sure."""
        with self._lock:
            self._busy = bool(on)
            self._busy_received = 0
            if self.flow_control == "xonxoff":
                self._send(XOFF if on else XON)
        if on and self.flow_control == "xonxoff" and self._ixon():
            deadline = time.monotonic() + 2.0
            while not self.line_held() and time.monotonic() < deadline:
                time.sleep(0.002)

    def _ixon(self) -> bool:
        slave = self._slave
        if slave is None:
            return False
        try:
            return bool(termios.tcgetattr(slave)[0] & termios.IXON)
        except termios.error:
            return False

    def line_held(self) -> bool:
        """True while the driver's side of the pty is stopped by our XOFF (it cannot write)."""
        slave = self._slave
        if slave is None:
            return False
        try:
            _, writable, _ = select.select([], [slave], [], 0)
        except (OSError, ValueError):
            return False
        return not writable

    # -- results --------------------------------------------------------------------------------
    def receipts(self, timeout: float = 10.0) -> list[Receipt]:
        """Finished receipts (cut, or torn off when the paper ran out), their PNGs rendered."""
        if self._render_thread is not None:
            deadline = time.monotonic() + timeout
            while self._renders.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.01)
        with self._lock:
            return list(self.model.receipts)

    def current(self) -> Receipt:
        """The receipt being printed (no cut yet)."""
        with self._lock:
            return self.model.current

    @property
    def counters(self) -> Counters:
        return self.model.counters

    def idle(self) -> bool:
        """True when every byte written to the pty so far has been read and parsed."""
        master = self._master
        if master is None:
            return True
        if self._reading:
            return False
        with self._lock:
            try:
                ready, _, _ = select.select([master], [], [], 0)
            except (OSError, ValueError):
                return True
            return not ready

    def _queue_render(self, receipt: Receipt) -> None:
        if self.render_png and self._render_thread is not None:
            self._renders.put(receipt)

    def _render_loop(self) -> None:
        while True:
            receipt = self._renders.get()
            try:
                if receipt is None:
                    return
                assert self.out_dir is not None
                path = save_png(receipt, self.dots, self.out_dir)
                log.info("ESC/POS emulator: receipt %d printed to %s", receipt.number, path)
            except Exception:  # a broken render must not stop the printer
                log.exception("ESC/POS emulator: receipt not rendered")
            finally:
                self._renders.task_done()

    # -- console --------------------------------------------------------------------------------
    def describe(self) -> str:
        s = self.model.state
        words = {"ok": "paper loaded", "low": "paper near end", "out": "out of paper"}[s.paper]
        extra = [w for w, on in (("jammed", s.jammed), ("cover open", s.cover_open),
                                  ("silent", not s.answers), ("busy (XOFF)", self._busy)) if on]
        if s.lines_left is not None:
            extra.append(f"paper ends in {s.lines_left} lines")
        return ", ".join([words, *extra])

    def command(self, line: str) -> str:
        """Carry out one console command (see CONSOLE_HELP); unknown input is answered, never raised."""
        words = line.split()
        if not words:
            return ""
        verb, args = words[0].lower(), words[1:]
        actions: dict[str, tuple[Callable[[], None], str]] = {
            "low": (self.paper_low, "paper near its end"),
            "out": (self.paper_out, "out of paper"),
            "ok": (self.paper_ok, "a new roll is loaded"),
            "jam": (self.jam, "paper jammed at the cutter"),
            "unjam": (self.clear_jam, "jam cleared"),
            "cover": (self.open_cover, "cover open"),
            "close": (self.close_cover, "cover closed"),
            "silent": (lambda: self.silent(True), "the printer no longer answers status queries"),
            "answer": (lambda: self.silent(False), "the printer answers status queries again"),
            "busy": (lambda: self.busy(True), "the printer is busy (XOFF sent)"),
            "ready": (lambda: self.busy(False), "the printer is ready (XON sent)"),
            "unplug": (self.unplug, "printer unplugged"),
        }
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb in actions and not args:
                action, answer = actions[verb]
                action()
                return answer
            if verb == "replug" and not args:
                return f"printer plugged in again on {self.replug()}"
            if verb == "runout" and len(args) == 1:
                self.run_out_after(int(args[0]))
                return f"the paper runs out after {int(args[0])} more lines"
            if verb == "status" and not args:
                return self.describe()
            if verb == "receipts" and not args:
                done = self.receipts()
                if not done:
                    return "no receipt printed yet"
                return "\n".join(
                    f"#{r.number} {'cut' if r.cut else 'NOT CUT (paper ran out)'}, {len(r.lines())} lines, "
                    f"{len(r.qr_codes())} QR: {r.png or 'not rendered'}" for r in done)
        except (ValueError, RuntimeError, OSError) as exc:
            return f"error: {exc}"
        return f"unknown printer command {line.strip()!r}; type help"

    # -- serving --------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self._master is None or not data:
            return
        if self.baudrate:  # the answer takes its time on the wire
            self._stop.wait(len(data) * 10.0 / self.baudrate)
        try:
            self._write(data)
        except BlockingIOError:
            log.warning("ESC/POS emulator: nobody reads the port; %d answer bytes dropped", len(data))
        except OSError as exc:
            log.info("ESC/POS emulator: answer not delivered (%s)", exc)

    def _read_size(self) -> int:
        # with pacing, read at most 10 ms of line time at once, then wait for it to have arrived
        return max(1, self.baudrate // 1000) if self.baudrate else 65536

    def _on_bytes(self, data: bytes) -> None:
        if self.baudrate and data and self._stop.wait(len(data) * 10.0 / self.baudrate):
            return
        with self._lock:
            if self._busy:
                room = max(0, self.buffer_bytes - self._busy_received)
                self._busy_received += len(data)
                if len(data) > room:
                    self.model.counters.overflowed += len(data) - room
                    data = data[:room]
            answer = self.model.feed(data) if data else b""
            self._reading = False
        if answer:
            self._send(answer)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.receipt_printer.emulator",
        description="Serve an emulated ESC/POS receipt printer on a pseudo-terminal; receipts become PNGs.",
    )
    parser.add_argument("--link", help="keep a symlink to the pty here (configure the driver's port with it)")
    parser.add_argument("--out", help="folder for the receipt PNGs (default: a new temporary folder)")
    parser.add_argument("--encoding", default="gb18030", choices=ep.ENCODINGS)
    parser.add_argument("--paper-width", type=int, default=80, choices=sorted(PAPER_DOTS))
    parser.add_argument("--baudrate", type=int, help="emulate the timing of a serial line at this baud rate")
    args = parser.parse_args(argv)
    return run_standalone(lambda: EscPosEmulator(link=args.link, out_dir=args.out, encoding=args.encoding,
                                                  paper_width=args.paper_width, baudrate=args.baudrate),
                          lambda emu, path: [f"port {path}; receipts go to {emu.out_dir}", CONSOLE_HELP],
                          (OSError, ValueError))


if __name__ == "__main__":
    sys.exit(_main())
