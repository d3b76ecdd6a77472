"""systemd's service notification protocol (sd_notify) and the kiosk's liveness rule.

Under systemd (deploy/systemd/kiosk.service: Type=notify, WatchdogSec=) the service manager
gives the kiosk a datagram socket in $NOTIFY_SOCKET and, with a watchdog, its timeout in
$WATCHDOG_USEC. The kiosk sends newline-separated `KEY=value` lines to that socket:

    READY=1          the first attract frame is on the screen (headless: the terminal started)
    STATUS=...       one line for `systemctl status kiosk`: "attract, 7 devices online"
    WATCHDOG=1       still alive; missing for WatchdogSec and systemd kills and restarts us
    STOPPING=1       a clean stop has begun

Outside systemd (no $NOTIFY_SOCKET: development, tests, scripts/start.sh) every call is a
no-op. The protocol is a few lines of socket code, written here rather than taken from PyPI:
`sdnotify` (last release 2017) has no watchdog interval, ignores $WATCHDOG_PID and swallows
every error; `systemd-python` needs libsystemd's headers and a compiler on every terminal.
Abstract socket names ("@..." in the variable) are supported; the vsock addresses newer
systemd can hand to virtual machines are not (logged once, then ignored).

What "alive" means (the reason a watchdog exists on a kiosk is a frozen screen, not a dead
process, which Restart= already covers):

- touchscreen: `FrameHeartbeat.beat()` runs on the Kivy UI thread from the Clock and pings
  only if at least one frame was completed (Window `on_flip`, dispatched after drawing) since
  the previous beat; each beat asks for one more frame, so an idle attract screen still draws
  one frame per beat. A blocked UI thread (a deadlock, a long call, the visit's lock held
  forever: `visit.tick()` runs on the same thread every second and waits on that lock) runs
  no beats; drawing that never completes dispatches no `on_flip`. Either way pings stop and
  systemd restarts the service although the process is still there.
- headless: the main loop pings after each `visit.tick()` returned (so again: the loop turns
  and the visit's lock is free).

The environment variables are read once and removed from os.environ (as sd_notify's
`unset_environment`), so the programs the kiosk starts (emulators, pcscd, cupsd, espeak)
never talk to the kiosk's notification socket.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """One service's notification channel. `socket_path` None: every call does nothing."""

    def __init__(self, socket_path: str | None = None, watchdog_usec: int | None = None,
                 watchdog_pid: int | None = None) -> None:
        self.socket_path = socket_path or None
        self._address: str | bytes | None = None
        if self.socket_path:
            if self.socket_path.startswith("@"):  # abstract namespace: leading NUL byte
                self._address = b"\0" + self.socket_path[1:].encode()
            elif self.socket_path.startswith("/"):
                self._address = self.socket_path
            else:
                log.warning("NOTIFY_SOCKET %r is not a Unix socket path; systemd notifications are off",
                            self.socket_path)
        # the watchdog is ours only if systemd meant this process (WATCHDOG_PID, when given)
        usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        if usec is not None and watchdog_pid is not None and watchdog_pid != os.getpid():
            usec = None
        self.watchdog_usec = usec
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False
        self._status: str | None = None
        self.sent: list[str] = []  # the last messages sent (for logs and tests), at most 20

    @classmethod
    def from_env(cls, env: MutableMapping[str, str] | None = None, unset: bool = True) -> Notifier:
        """From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID; removes them from `env`."""
        env = os.environ if env is None else env

        def number(name: str) -> int | None:
            raw = env.get(name, "").strip()
            try:
                return int(raw) if raw else None
            except ValueError:
                log.warning("%s=%r is not a number; ignored", name, raw)
                return None

        notifier = cls(env.get("NOTIFY_SOCKET"), number("WATCHDOG_USEC"), number("WATCHDOG_PID"))
        if unset:
            for name in ENV_VARS:
                env.pop(name, None)
        return notifier

    # -- the protocol --------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send `KEY=value` lines as one datagram. False when not under systemd or it failed;
        a failure is logged once and never raised: the kiosk must not stop over it."""
        if self._address is None or not lines:
            return False
        message = "\n".join(lines)
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message.encode("utf-8"), self._address)
            except OSError as exc:
                if not self._failed:
                    log.warning("systemd notification %r not sent to %s: %s", message, self.socket_path, exc)
                    self._failed = True
                return False
            if self._failed:
                log.info("systemd notifications reach %s again", self.socket_path)
                self._failed = False
            self.sent = (self.sent + [message])[-20:]
            return True

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1"]
        if status is not None:
            self._status = _one_line(status)
            lines.append(f"STATUS={self._status}")
        return self.notify(*lines)

    def status(self, text: str, *, only_if_changed: bool = False) -> bool:
        text = _one_line(text)
        if only_if_changed and text == self._status:
            return False
        self._status = text
        return self.notify(f"STATUS={text}")

    def ping(self) -> bool:
        """WATCHDOG=1: call only where the liveness rule holds (see the module's doc)."""
        return self.notify("WATCHDOG=1") if self.watchdog_usec is not None else False

    def stopping(self, status: str | None = None) -> bool:
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    # -- the watchdog's timing ---------------------------------------------------------------
    def interval(self) -> float | None:
        """The watchdog timeout in seconds ($WATCHDOG_USEC), None when there is no watchdog."""
        return self.watchdog_usec / 1_000_000 if self.watchdog_usec is not None else None

    def ping_period(self) -> float | None:
        """How often to ping: half the timeout, as systemd recommends; None: never."""
        timeout = self.interval()
        return timeout / 2 if timeout is not None else None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- the process's own channel ---------------------------------------------------------------
_default: Notifier | None = None
_default_lock = threading.Lock()


def get() -> Notifier:
    """This process's notifier, made from the environment at the first call (main.py calls it
    before any child process starts, so none inherits the variables)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Notifier.from_env()
            if _default.enabled:
                log.info("systemd notifications to %s; watchdog %s", _default.socket_path,
                         f"{_default.interval():g} s" if _default.interval() else "off")
        return _default


def ready(status: str | None = None) -> bool:
    return get().ready(status)


def status(text: str) -> bool:
    return get().status(text, only_if_changed=True)


def ping() -> bool:
    return get().ping()


def stopping(status: str | None = None) -> bool:
    return get().stopping(status)


def interval() -> float | None:
    return get().interval()


def ping_period() -> float | None:
    return get().ping_period()


# -- what is shown in `systemctl status` ------------------------------------------------------
def describe(terminal: Any) -> str:
    """The status line: the visit's step and the devices, e.g. `attract, 7 devices online`
    (then which are not online); never anything about the citizen."""
    try:
        step = getattr(terminal.visit.step, "value", str(terminal.visit.step))
        devices: Mapping[str, Any] = getattr(terminal, "devices", {}) or {}
        down = []
        for name, device in devices.items():
            state = getattr(device.status().device, "value", "")
            if state != "online":
                down.append(f"{name} {state}")
        text = f"{step}, {len(devices) - len(down)} devices online"
        return text + (f"; not online: {', '.join(sorted(down))}" if down else "")
    except Exception as exc:  # noqa: BLE001  (a status line must never stop a ping)
        return f"status unknown ({type(exc).__name__})"


# -- the touchscreen's liveness ---------------------------------------------------------------
class FrameHeartbeat:
    """Pings for the UI thread, only after frames were drawn (no Kivy import: the app wires it).

    The app binds `frame` to Window `on_flip` and calls `beat` from its Clock every
    `notifier.ping_period()` seconds, then asks the window for a new frame. `beat` pings when
    the frame counter moved since the previous beat and sends the status line when it changed.
    """

    def __init__(self, notifier: Notifier, status: Callable[[], str] | None = None) -> None:
        self.notifier = notifier
        self.status_source = status
        self.frames = 0
        self.pings = 0
        self.missed = 0  # beats without a new frame since the last ping
        self._frames_at_last_beat = 0

    def frame(self, *_args: Any) -> None:
        """A frame was drawn (Window on_flip, UI thread). Never stops the event."""
        self.frames += 1

    def beat(self, *_args: Any) -> bool:
        """On the UI thread: ping if a frame was drawn since the last beat. True if it pinged."""
        if self.frames == self._frames_at_last_beat:
            self.missed += 1
            if self.missed == 1:
                log.warning("watchdog: no frame drawn since the last check; not pinging")
            return False
        if self.missed:
            log.info("watchdog: frames again after %d missed checks", self.missed)
        self.missed = 0
        self._frames_at_last_beat = self.frames
        if self.status_source is not None:
            self.notifier.status(self.status_source(), only_if_changed=True)
        if self.notifier.ping():
            self.pings += 1
        return True
