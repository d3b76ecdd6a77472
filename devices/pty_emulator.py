"""What every serial-device emulator does around its protocol: plug, serve, unplug.

`ServedEmulator` owns the lifecycle (start/stop/unplug/replug, the serving thread and the
wake pipe that stops it); `PtyEmulator` adds the pseudo-terminal a driver opens as it
opens /dev/ttyS0, with a stable `link` symlink re-pointed on replug, and a select loop
that hands the subclass what the driver wrote. Emulators with another line (the SAM
emulator's TCP mode) derive from `ServedEmulator` and use `open_raw_pty`/`point_link`.
"""
from __future__ import annotations

import abc
import errno
import logging
import os
import select
import threading
import tty
from pathlib import Path
from typing import Self


def open_raw_pty() -> tuple[int, int]:
    """A raw pty: (non-blocking master, slave). Keep the slave open, so the master never
    reads EIO between driver opens."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave


def point_link(link: str, target: str) -> None:
    """Point `link` at `target` atomically: the driver never sees a missing link while plugged."""
    Path(link).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{link}.tmp{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def remove_link(link: str | None) -> None:
    if link and os.path.islink(link):
        os.unlink(link)


def _close_fds(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class ServedEmulator(abc.ABC):
    """A device line served in its own thread; subclasses open and close the line and serve it."""

    NAME = "emulator"  # for log lines
    THREAD_NAME = "emulator"

    def __init__(self) -> None:
        self.port: str | None = None  # what the driver opens right now (changes on replug)
        self._log = logging.getLogger(type(self).__module__)
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Open the line, serve it, and return what the driver should open."""
        if self._thread is not None:
            raise RuntimeError("emulator already running")
        return self._plug()

    def stop(self) -> None:
        """Stop serving and close the line. Safe to call twice."""
        self._unplug()

    def unplug(self) -> None:
        """Like pulling the cable: the line closes and the driver's next I/O fails."""
        self._unplug()

    def replug(self) -> str:
        """Like plugging the cable back in: the line opens again; returns what to open."""
        if self._thread is not None:
            raise RuntimeError("emulator is plugged in")
        self._on_replug()
        return self._plug()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for subclasses --------------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> str:
        """Open the line, set `port`; return what the driver should open."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Close the line (the serving thread has exited). Safe to call twice."""

    @abc.abstractmethod
    def _serve(self) -> None:
        """Answer the driver until `_stop` is set (runs on the serving thread)."""

    def _on_replug(self) -> None:
        """Forget what a power-cycled device forgets."""

    # -- plumbing --------------------------------------------------------------------------------
    def _plug(self) -> str:
        self._wake_r, self._wake_w = os.pipe()
        try:
            target = self._open()
        except OSError:
            self._close_wake()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        self._log.info("%s serving on %s%s", self.NAME, self.port,
                       f" (link {target})" if target != self.port else "")
        return target

    def _unplug(self) -> None:
        thread = self._thread
        if thread is not None:
            self._stop.set()
            self._wake()
            thread.join(timeout=5)
            self._thread = None
        # the serving thread has exited, so no one is blocked on these descriptors
        self._close()
        self._close_wake()

    def _close_wake(self) -> None:
        _close_fds(self._wake_r, self._wake_w)
        self._wake_r = self._wake_w = None

    def _wake(self) -> None:
        """Get the serving loop out of its select (to stop, or to look at new work)."""
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass


class PtyEmulator(ServedEmulator):
    """An emulator on a raw pty (and optional `link` to it); subclasses get the driver's bytes
    in `_on_bytes` and answer with `_write`, or queue output via `_poll`/`_on_writable`."""

    def __init__(self, link: str | None = None) -> None:
        super().__init__()
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self._reading = False  # bytes taken from the pty are still being handled (for idle())

    def _open(self) -> str:
        self._master, self._slave = open_raw_pty()
        self.port = os.ttyname(self._slave)
        if self.link:
            point_link(self.link, self.port)
        return self.link or self.port

    def _close(self) -> None:
        _close_fds(self._master, self._slave)
        self._master = self._slave = None
        remove_link(self.link)

    # -- hooks -----------------------------------------------------------------------------------
    def _read_size(self) -> int:
        return 4096

    def _on_bytes(self, data: bytes) -> None:
        """What the driver wrote; runs in the serving thread."""

    def _poll(self) -> tuple[float, bool]:
        """Seconds the loop may sleep, and whether to wake when the pty takes bytes."""
        return 0.5, False

    def _on_writable(self) -> None:
        """The pty takes bytes now (asked for by `_poll`)."""

    def _write(self, data: bytes) -> int:
        """Write what the pty takes now (BlockingIOError when full); 0 when unplugged."""
        master = self._master
        return 0 if master is None else os.write(master, data)

    # -- the loop --------------------------------------------------------------------------------
    def _serve(self) -> None:
        master, wake = self._master, self._wake_r
        assert master is not None and wake is not None
        try:
            while not self._stop.is_set():
                timeout, want_write = self._poll()
                ready_r, ready_w, _ = select.select([master, wake], [master] if want_write else [], [], timeout)
                if wake in ready_r:
                    try:
                        os.read(wake, 512)
                    except OSError:
                        pass
                if self._stop.is_set():
                    return
                if master in ready_r:
                    self._receive(master)
                if master in ready_w:
                    self._on_writable()
        except Exception:  # the emulator must say why it went quiet
            self._log.exception("%s stopped", self.NAME)

    def _receive(self, master: int) -> None:
        self._reading = True
        try:
            data = os.read(master, self._read_size())
        except BlockingIOError:
            self._reading = False
            return
        except OSError as exc:
            self._reading = False
            if exc.errno == errno.EIO:  # no slave open at this instant
                self._stop.wait(0.05)
                return
            raise
        try:
            self._on_bytes(data)
        finally:
            self._reading = False
