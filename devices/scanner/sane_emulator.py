"""An emulated SANE scanner: SANE's own test backend, scripted through its config file.

The real driver (devices.scanner.sane_driver) goes through libsane and the dll backend
exactly as with a USB scanner; the scanner behind it is the `test` backend that ships
with sane-backends ("Noname frontend-tester"). start() writes a SANE config dir with
dll.conf holding only `test` (otherwise every backend installed is probed, for
seconds) and test.conf with the scripted behaviour, and returns the dir; a terminal
puts it into the driver's `config_dir` (ADDRESS_PARAM) and "test" into `device`
(DRIVER_DEFAULTS).

What the test backend can be made to do (`scanimage -d test --help -A` lists it):

- its picture: Grid (10 mm black and white squares, the default here: a page with
  detail), Solid white (an empty glass), Solid black (a dead lamp), Color pattern;
- the status sane_read() returns: SANE_STATUS_JAMMED, NO_DOCS (feeder empty),
  COVER_OPEN, IO_ERROR, DEVICE_BUSY, ACCESS_DENIED ...: jam(), feeder_empty(),
  cover_open(), io_error(), busy(), denied(); clear() ends the fault. A fault stays
  until cleared, as a real jam stays until someone removes the paper;
- slowness: a pause after each buffer it sends (read-delay, 1-200 ms): slow(ms);
- the scan area ends at 200 x 200 mm (an A4 page is cut to that), any resolution up to
  1200 dpi; its document feeder reports empty after 10 pages.

The test backend reads test.conf only in sane_init, which is process-global: so a
change of script writes test.conf and reloads SANE (devices.scanner.sane_library),
which is what power-cycling the emulated scanner looks like to the driver: its handle
is closed and it reopens it (the driver does so by itself, with its own settings).
unplug() drops `test` from dll.conf and reloads: the scanner is gone from SANE's list,
as a USB scanner pulled out; replug() brings it back. There is one libsane per process,
so one emulator scripts it at a time: the last one started takes over (the one before
stops following). By default every emulator of a process uses the same dir, removed
when the process ends, so SANE never has to switch config dirs between tests.

Standalone, to try a scripted scanner with scanimage::

    python -m devices.scanner.sane_emulator      # prints the dir; then in another shell:
    SANE_CONFIG_DIR=<dir> scanimage -d test --format=png -o /tmp/scan.png
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from devices.scanner import sane_library

PICTURES = {"grid": "Grid", "white": "Solid white", "black": "Solid black", "colour": "Color pattern",
            "color": "Color pattern"}
FAULTS = {
    "jam": "SANE_STATUS_JAMMED",
    "feeder_empty": "SANE_STATUS_NO_DOCS",
    "cover_open": "SANE_STATUS_COVER_OPEN",
    "io_error": "SANE_STATUS_IO_ERROR",
    "busy": "SANE_STATUS_DEVICE_BUSY",
    "denied": "SANE_STATUS_ACCESS_DENIED",
}

CONSOLE_HELP = """emulated SANE scanner (the test backend): type a command and Enter
  picture grid|white|black|colour
                        what lies on the glass: a grid page, nothing (white), a dead lamp (black)
  jam | feeder_empty | cover_open | io_error | busy | denied
                        the next scans fail with that SANE status, until `clear`
  clear                 no fault
  slow MS               pause MS milliseconds (1-200) after each buffer; slow 0 = full speed
  unplug | replug       the scanner leaves SANE's device list / comes back
  status                the scripted state
  help                  this text"""

_current_lock = threading.Lock()
_current: SaneTestEmulator | None = None  # the emulator whose script the process's test backend follows
_cleanup_registered: set[str] = set()


def default_config_dir() -> Path:
    """One dir per process (see module notes)."""
    return Path(tempfile.gettempdir()) / f"kiosk-sane-test-{os.getpid()}"


def _remove_at_exit(path: Path) -> None:
    """The per-process dir outlives each emulator (SANE may be re-initialised on it later) and
    goes when the process ends."""
    key = str(path)
    if key not in _cleanup_registered:
        _cleanup_registered.add(key)
        atexit.register(shutil.rmtree, key, True)


class SaneTestEmulator:
    """SANE's test backend in a config dir of its own, scripted (see module notes)."""

    ADDRESS_PARAM = "config_dir"
    DRIVER_DEFAULTS = {"device": "test"}

    def __init__(self, config_dir: str = "", picture: str = "grid", devices: int = 1) -> None:
        if picture.lower() not in PICTURES:
            raise ValueError(f"picture {picture!r}: one of {', '.join(sorted(set(PICTURES) - {'color'}))}")
        if not 1 <= devices <= 4:
            raise ValueError("devices: 1 to 4 test scanners (test:0 ... test:3)")
        self.dir = Path(config_dir) if config_dir else default_config_dir()
        self.picture = PICTURES[picture.lower()]
        self.devices = devices
        self.fault = "Default"
        self.delay_ms = 0
        self.plugged = True
        self._made_dir = False
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def current(self) -> bool:
        """True while the process's test backend follows this emulator's script."""
        return _current is self

    def start(self) -> str:
        """Write the config dir and return it (the driver's config_dir). A later emulator
        of the same process takes over from this one (there is one libsane per process)."""
        global _current
        with _current_lock:
            _current = self
        if not self.dir.exists():
            self.dir.mkdir(parents=True)
            self._made_dir = True
        if self.dir == default_config_dir():
            _remove_at_exit(self.dir)
            self._made_dir = False
        self.plugged = True
        self._apply()
        return str(self.dir)

    def stop(self) -> None:
        """The scanner goes away; a dir this emulator made is removed. Safe to call twice;
        does nothing once another emulator has taken over."""
        global _current
        with _current_lock:
            if _current is not self:
                return
            _current = None
        self.plugged = False
        self._write()
        self._reload()
        if self._made_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._made_dir = False

    def __enter__(self) -> SaneTestEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------------
    def set_picture(self, picture: str) -> None:
        """What lies on the glass: grid, white (nothing), black (dead lamp), colour."""
        if picture.lower() not in PICTURES:
            raise ValueError(f"picture {picture!r}: grid, white, black or colour")
        self.picture = PICTURES[picture.lower()]
        self._apply()

    def jam(self) -> None:
        self._fault("jam")

    def feeder_empty(self) -> None:
        self._fault("feeder_empty")

    def cover_open(self) -> None:
        self._fault("cover_open")

    def io_error(self) -> None:
        self._fault("io_error")

    def busy(self) -> None:
        self._fault("busy")

    def denied(self) -> None:
        self._fault("denied")

    def clear(self) -> None:
        """No fault any more (the paper was removed, the cover closed...)."""
        self.fault = "Default"
        self._apply()

    def slow(self, delay_ms: int) -> None:
        """Pause `delay_ms` (1-200) after each buffer the scanner sends; 0: full speed."""
        delay_ms = int(delay_ms)
        if not (delay_ms == 0 or 1 <= delay_ms <= 200):
            raise ValueError("slow: 0 (full speed) or 1 to 200 ms after each buffer")
        self.delay_ms = delay_ms
        self._apply()

    def unplug(self) -> None:
        """The scanner disappears from SANE's device list."""
        self.plugged = False
        self._apply()

    def replug(self) -> None:
        self.plugged = True
        self._apply()

    def describe(self) -> str:
        state = "unplugged" if not self.plugged else f"picture {self.picture!r}"
        fault = "" if self.fault == "Default" else f", reads fail with {self.fault}"
        slow = f", {self.delay_ms} ms pause per buffer" if self.delay_ms else ""
        return f"SANE test scanner in {self.dir}: {state}{fault}{slow}"

    def _fault(self, name: str) -> None:
        self.fault = FAULTS[name]
        self._apply()

    # -- the config dir ----------------------------------------------------------------------------
    def _apply(self) -> None:
        """Write the script and power-cycle the backend (see module notes)."""
        if not self.current:
            raise RuntimeError("this SANE test emulator is not running (stopped, or another one of this "
                               "process took over)")
        self._write()
        self._reload()

    def _write(self) -> None:
        with self._lock:
            if not self.dir.exists():
                return
            (self.dir / "dll.conf").write_text("test\n" if self.plugged else "# unplugged\n", encoding="ascii")
            lines = [
                f"number_of_devices {self.devices}",
                f'test-picture "{self.picture}"',
                f'read-status-code "{self.fault}"',
                "depth 8",
            ]
            if self.delay_ms:
                lines += ["read-delay true", f"read-delay-duration {self.delay_ms * 1000}",
                          "read-limit true", "read-limit-size 4096"]
            (self.dir / "test.conf").write_text("\n".join(lines) + "\n", encoding="ascii")

    def _reload(self) -> None:
        if sane_library.config_dir() == str(self.dir.resolve()):
            sane_library.reload("emulated scanner re-scripted")

    # -- console -----------------------------------------------------------------------------------
    def command(self, line: str) -> str:
        """Carry out one console command (see CONSOLE_HELP); bad input is answered, never raised."""
        words = line.split()
        if not words:
            return ""
        verb, args = words[0].lower(), words[1:]
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb == "status" and not args:
                return self.describe()
            if verb == "picture" and len(args) == 1:
                self.set_picture(args[0])
                return f"the test scanner now scans {self.picture!r}"
            if verb in FAULTS and not args:
                self._fault(verb)
                return f"scans now fail with {FAULTS[verb]} until `clear`"
            if verb == "clear" and not args:
                self.clear()
                return "no fault"
            if verb == "slow" and len(args) == 1:
                self.slow(int(args[0]))
                return f"{self.delay_ms} ms pause after each buffer" if self.delay_ms else "full speed"
            if verb == "unplug" and not args:
                self.unplug()
                return "the scanner is gone from SANE's device list"
            if verb == "replug" and not args:
                self.replug()
                return "the scanner is back"
        except (ValueError, OSError, RuntimeError) as exc:
            return f"error: {exc}"
        return f"unknown scanner command {line.strip()!r}; type help"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.scanner.sane_emulator",
                                     description="Write a scripted SANE test-backend config dir; type commands "
                                     "on standard input (help lists them).")
    parser.add_argument("--dir", default="", help="config dir (default: one in the temp dir)")
    parser.add_argument("--picture", default="grid")
    args = parser.parse_args(argv)
    emulator = SaneTestEmulator(args.dir, args.picture)
    print(f"config_dir {emulator.start()}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() in ("quit", "exit"):
                break
            answer = emulator.command(line)
            if answer:
                print(answer, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
