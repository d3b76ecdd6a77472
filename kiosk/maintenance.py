"""The maintenance screen's brain: a technician's login, the device checks, and the audit.

States: locked (nobody at it) -> asking (the PIN pad is up, a technician card may be placed)
-> open (the maintenance screen) -> locked. Only the attract screen may ask for it (a hidden
gesture, `CornerTaps`), never a citizen's visit. A technician proves who they are with the
configured PIN or their own card; both are stored only as salted PBKDF2-HMAC-SHA256 hashes
(`python -m kiosk.maintenance hash-pin` / `hash-card`). A citizen's card placed while the PIN
pad is up never opens it: it counts as a failed login, its data are wiped at once and its
number is not written anywhere. Too many failures in a row lock logins out for a while (the
lockout survives a restart: it is read back from the audit log).

Open, the technician can see every device's status with its fault in words, run the
self-test of every device (kiosk.device_checks on the devices the terminal already has open,
never opening a port again), print a test page on the receipt printer, restart one device,
and see the outbox backlog. Every login, failure, lockout and action is written to the audit
log (kiosk/audit.py) with its outcome. The screen renders `MaintenanceView`s and forwards
touches, like the visit's screens.

Nothing here knows about Kivy; time comes from an injected clock, and slow work (the PIN's
hash, the checks, a restart) runs on a worker so a touch never waits for it.
"""
from __future__ import annotations

import argparse
import datetime
import enum
import getpass
import hashlib
import hmac
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from govapi.masking import mask_id_number
from kiosk.audit import AuditLog
from kiosk.device_restart import restart_device

log = logging.getLogger(__name__)

SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000  # about 0.3 s on a 2-core terminal; tests put fewer in their hashes
PIN_MIN, PIN_MAX = 4, 12
PROGRESS_LINES = 6  # progress lines kept for the screen while the checks run
PAGES = ("devices", "checks", "outbox")


class MaintenanceState(str, enum.Enum):
    LOCKED = "locked"
    ASKING = "asking"  # the PIN pad is up; a technician card may be placed instead
    OPEN = "open"


class NotNow(RuntimeError):
    """An action the current state does not offer (a stale touch); ignored by the app."""


# -- credentials -----------------------------------------------------------------------------
def make_hash(kind: str, secret: str, salt: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<hex>` of `secret`; `kind` ("pin" or "card") keeps a card's
    hash from ever passing as a PIN's."""
    digest = hashlib.pbkdf2_hmac("sha256", f"{kind}:{secret}".encode(), salt.encode(), iterations)
    return f"{SCHEME}${iterations}${digest.hex()}"


def _iterations(stored: str) -> int | None:
    parts = stored.split("$")
    if len(parts) != 3 or parts[0] != SCHEME or not parts[1].isdecimal():
        return None
    return int(parts[1])


def check_hash(kind: str, secret: str, salt: str, stored: str) -> bool:
    iterations = _iterations(stored)
    if iterations is None or not secret:
        return False
    return hmac.compare_digest(make_hash(kind, secret, salt, iterations), stored)


def card_number(identity: Any) -> str:
    """The number a technician card is known by: the holder's ID number."""
    return str(getattr(identity, "id_number", "") or "").strip().upper()


def matching_card(number: str, salt: str, stored: list[str]) -> bool:
    """Whether `number` is one of the technician cards (one hash per iteration count in use)."""
    if not number:
        return False
    by_iterations: dict[int, list[str]] = {}
    for one in stored:
        iterations = _iterations(one)
        if iterations is not None:
            by_iterations.setdefault(iterations, []).append(one)
    for iterations, hashes in by_iterations.items():
        mine = make_hash("card", number, salt, iterations)
        if any(hmac.compare_digest(mine, one) for one in hashes):
            return True
    return False


class CornerTaps:
    """The hidden gesture: `taps` touches within `within_s` seconds (in the screen's corner)."""

    def __init__(self, taps: int = 5, within_s: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.taps, self.within_s, self.clock = taps, within_s, clock
        self._times: list[float] = []

    def tap(self) -> bool:
        """One touch in the corner; True when it completes the gesture."""
        now = self.clock()
        self._times = [t for t in self._times if now - t <= self.within_s] + [now]
        if len(self._times) >= self.taps:
            self._times = []
            return True
        return False

    def reset(self) -> None:
        self._times = []


# -- what the screen shows -------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceRow:
    name: str
    device_class: str
    state: str  # DeviceState value: online, offline, hardware_error, busy, no_device
    media: str  # MediaState value
    fault: str  # the device's own words; "" when all is well
    ok: bool  # online, and its media (paper, card slot) not jammed or out


@dataclass(frozen=True)
class CheckRow:
    """One device's self-test (or test print), as the pass/fail table shows it."""

    name: str
    device_class: str
    passed: bool
    results: tuple[tuple[str, bool, str], ...]  # (what was checked, passed, what was found)
    printed: bool | None = None  # a test page: printed, not printed; None when none was asked
    duration_s: float = 0.0
    print_detail: str = ""  # what the test page did, in words (what to look for on the paper)


@dataclass(frozen=True)
class MaintenanceView:
    state: MaintenanceState
    language: str
    terminal_id: str = ""
    reason: str = ""  # why it changed: "request", "digit", "wrong_pin", "opened", "self_test", ...
    message_key: str | None = None
    message_values: dict[str, str] = field(default_factory=dict)
    # the PIN pad
    pin_length: int = 0  # digits typed so far (the pad shows dots, never digits)
    pin_max: int = PIN_MAX
    checking: bool = False  # the PIN's hash is being checked
    pin_enabled: bool = False
    cards_enabled: bool = False  # a technician card may be placed instead
    locked_out: bool = False
    # the maintenance screen
    who: str = ""  # "pin" or "card:<masked number>"
    page: str = "devices"  # one of PAGES
    devices: tuple[DeviceRow, ...] = ()
    task: str | None = None  # "self_test", "test_print" or "restart" while it runs
    task_device: str = ""
    progress: tuple[tuple[str, str], ...] = ()  # (device, what is being checked) while checks run
    checks_kind: str = ""  # what the table shows: "self_test" or "test_print"
    checks: tuple[CheckRow, ...] = ()
    outbox: tuple[tuple[str, int], ...] | None = None  # (state, count); None: no platform here
    printer: str = ""  # the receipt printer a test page goes to ("" when the terminal has none)


Listener = Callable[[MaintenanceView], None]


def _background(work: Callable[[], None], name: str) -> None:
    threading.Thread(target=work, name=name, daemon=True).start()


class Maintenance:
    def __init__(self, cfg: Any, devices: Mapping[str, Any], audit: AuditLog, *,
                 may_open: Callable[[], bool] = lambda: True,
                 outbox_counts: Callable[[], dict[str, int]] | None = None,
                 receipt_printer: str = "", location: str = "", language: str = "zh-CN",
                 clock: Callable[[], float] = time.time,
                 checker: Callable[..., list[Any]] | None = None,
                 run: Callable[[Callable[[], None], str], None] = _background) -> None:
        self.cfg = cfg  # config.schema.MaintenanceSection
        self.devices = devices  # the terminal's own dict: filled when the terminal starts
        self.audit = audit
        self.may_open = may_open  # True only on the attract screen, never during a visit
        self.outbox_counts = outbox_counts
        self.receipt_printer = receipt_printer
        self.location = location  # printed on the test page, with the terminal's id
        self.default_language = language
        self.clock = clock
        self._checker = checker
        self._run = run
        # set by the terminal: a supervisor reopens a closed device by itself (restart waits for it)
        self.reopen_by_supervisor = False
        self.state = MaintenanceState.LOCKED
        self.language = language
        self.who = ""
        self._pin: list[str] = []
        self._checking = False
        self._failures = 0
        self._locked_until = self._restore_lockout()
        self._message: str | None = None
        self._message_values: dict[str, str] = {}
        self._page = "devices"
        self._task: str | None = None
        self._task_device = ""
        self._progress: list[tuple[str, str]] = []
        self._checks_kind = ""
        self._checks: tuple[CheckRow, ...] = ()
        self._outbox: tuple[tuple[str, int], ...] | None = None
        self._session = 0  # a new number per login: a slow worker never writes into the next one
        self._last_activity = clock()
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []

    # -- observation ------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def active(self) -> bool:
        """The PIN pad or the maintenance screen is up: cards and codes are not a citizen's now."""
        return self.state is not MaintenanceState.LOCKED

    @property
    def pin_enabled(self) -> bool:
        return bool(self.cfg.pin_hash)

    @property
    def cards_enabled(self) -> bool:
        return bool(self.cfg.technician_cards)

    def locked_out(self) -> bool:
        return self._locked_until is not None and self.clock() < self._locked_until

    def view(self, reason: str = "") -> MaintenanceView:
        with self._lock:
            is_open = self.state is MaintenanceState.OPEN
            return MaintenanceView(
                self.state, self.language, self.audit.terminal_id, reason, self._message,
                dict(self._message_values), len(self._pin), PIN_MAX, self._checking, self.pin_enabled,
                self.cards_enabled, self.locked_out(), self.who if is_open else "", self._page,
                self._device_rows() if is_open else (), self._task, self._task_device,
                tuple(self._progress), self._checks_kind, self._checks if is_open else (),
                self._outbox if is_open else None, self._printer_name())

    def _device_rows(self) -> tuple[DeviceRow, ...]:
        rows = []
        for name, device in list(self.devices.items()):
            try:
                status = device.status()
                state, media, fault = status.device.value, status.media.value, status.fault
            except Exception as exc:  # a broken driver is a fault to show, not a crash
                state, media, fault = "hardware_error", "unknown", f"status() failed: {exc}"
            fault = "" if fault == "closed" and state == "online" else fault
            ok = state == "online" and media not in ("jammed", "out")
            rows.append(DeviceRow(name, str(getattr(device, "device_class", "device")), state, media, fault, ok))
        return tuple(rows)

    def _printer_name(self) -> str:
        if self.receipt_printer and self.receipt_printer in self.devices:
            return self.receipt_printer
        return ""

    def _publish(self, reason: str) -> None:
        view = self.view(reason)
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("maintenance listener failed")

    def _say(self, reason: str, message: str | None = None, **values: Any) -> None:
        self._message = message
        self._message_values = {k: str(v) for k, v in values.items()}
        self._publish(reason)

    def _audit(self, action: str, outcome: str, *, who: str | None = None, **facts: Any) -> None:
        try:
            self.audit.record(self.who if who is None else who, action, outcome, **facts)
        except OSError:
            pass  # already logged loudly by the audit log; the technician still sees the outcome

    def _require(self, state: MaintenanceState) -> None:
        if self.state is not state:
            raise NotNow(f"not possible while maintenance is {self.state.value}")

    # -- the way in -------------------------------------------------------------------------
    def request(self, language: str | None = None) -> bool:
        """The hidden gesture was made: show the PIN pad (only from the attract screen)."""
        with self._lock:
            if self.state is not MaintenanceState.LOCKED:
                return False
            if not self.may_open():
                self._audit("request", "refused_visit", who="")
                log.info("maintenance asked for during a visit: refused")
                return False
            if not (self.pin_enabled or self.cards_enabled):
                self._audit("request", "refused_no_credential", who="")
                log.warning("maintenance asked for, but no PIN hash and no technician card is configured")
                return False
            self.state = MaintenanceState.ASKING
            self.language = language or self.default_language
            self._pin = []
            self._last_activity = self.clock()
            self._audit("request", "pin_pad", who="")
            if self.locked_out():
                self._say("request", "maintenance.locked_out", minutes=self._minutes_left())
            else:
                self._say("request", None)
            return True

    def press_digit(self, digit: str) -> None:
        with self._lock:
            self._require(MaintenanceState.ASKING)
            if not (len(digit) == 1 and digit.isdigit()) or self._checking or self.locked_out():
                return
            self._last_activity = self.clock()
            if len(self._pin) < PIN_MAX:
                self._pin.append(digit)
            self._say("digit", None)

    def clear_pin(self) -> None:
        with self._lock:
            self._require(MaintenanceState.ASKING)
            self._pin = []
            self._last_activity = self.clock()
            self._say("clear", None)

    def submit_pin(self) -> None:
        """确定 on the pad: the typed digits are checked on a worker (the hash takes a moment)."""
        with self._lock:
            self._require(MaintenanceState.ASKING)
            if self._checking:
                return
            pin, self._pin = "".join(self._pin), []
            self._last_activity = self.clock()
            if not pin:
                self._say("empty", "maintenance.pin_empty")
                return
            self._checking = True
            self._say("checking", None)
        def check() -> None:
            self.enter_pin(pin)

        self._run(check, "maintenance-pin")

    def enter_pin(self, pin: str) -> bool:
        """Check a PIN against the configured hash; opens the maintenance screen when right."""
        with self._lock:
            self._checking = False
            if self.state is not MaintenanceState.ASKING:
                return False
            self._last_activity = self.clock()
            if self.locked_out():
                self._audit("login", "refused_locked_out", who="pin")
                self._say("locked_out", "maintenance.locked_out", minutes=self._minutes_left())
                return False
            if not self.pin_enabled:
                self._audit("login", "refused_pin_disabled", who="pin")
                self._say("pin_disabled", "maintenance.pin_disabled")
                return False
            salt, stored = self.cfg.salt, self.cfg.pin_hash
        right = check_hash("pin", pin, salt, stored)  # slow on purpose: outside the lock
        with self._lock:
            if self.state is not MaintenanceState.ASKING:
                return False
            if right:
                self._open("pin")
                return True
            self._failed("pin", "wrong_pin", "maintenance.pin_wrong")
            return False

    def technician_card(self, identity: Any) -> bool:
        """A card was read while maintenance is up. A technician's card opens the screen; any
        other card is refused; every card's data is wiped here at once."""
        try:
            with self._lock:
                if self.state is MaintenanceState.OPEN:
                    self._last_activity = self.clock()
                    self._audit("card", "ignored_while_open")
                    return False
                if self.state is not MaintenanceState.ASKING:
                    return False
                self._last_activity = self.clock()
                if identity is None:
                    self._say("card_unreadable", "maintenance.card_unreadable")
                    return False
                if self.locked_out():
                    self._audit("login", "refused_locked_out", who="card")
                    self._say("locked_out", "maintenance.locked_out", minutes=self._minutes_left())
                    return False
                salt, stored = self.cfg.salt, list(self.cfg.technician_cards)
            number = card_number(identity)
            right = matching_card(number, salt, stored)
            masked = mask_id_number(number) if right else ""
            del number
            with self._lock:
                if self.state is not MaintenanceState.ASKING:
                    return False
                if right:
                    self._open(f"card:{masked}")
                    return True
                # a citizen's card (or an unknown one): its number goes nowhere, not even masked
                self._failed("card", "not_technician_card", "maintenance.card_refused")
                return False
        finally:
            if identity is not None and hasattr(identity, "wipe"):
                identity.wipe()

    def _failed(self, who: str, outcome: str, message: str) -> None:
        self._failures += 1
        left = self.cfg.max_failures - self._failures
        self._audit("login", outcome, who=who, failures=self._failures)
        if left <= 0:
            self._locked_until = self.clock() + self.cfg.lockout_minutes * 60
            self._failures = 0
            until = datetime.datetime.fromtimestamp(self._locked_until, datetime.timezone.utc)
            self._audit("lockout", "locked", who=who, minutes=self.cfg.lockout_minutes,
                        until=until.isoformat(timespec="seconds").replace("+00:00", "Z"))
            log.warning("maintenance logins locked out for %s minutes after %s failures",
                        self.cfg.lockout_minutes, self.cfg.max_failures)
            self._say("locked_out", "maintenance.locked_out", minutes=self._minutes_left())
        else:
            self._say(outcome, message, left=left)

    def _minutes_left(self) -> int:
        if self._locked_until is None:
            return 0
        return max(1, int(-(-(self._locked_until - self.clock()) // 60)))

    def _restore_lockout(self) -> float | None:
        """A lockout still running when the terminal restarted (a restart must not reset it)."""
        entry = self.audit.last("lockout")
        if not entry or not entry.get("until"):
            return None
        try:
            until = datetime.datetime.fromisoformat(str(entry["until"]).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
        return until if until > self.clock() else None

    def _open(self, who: str) -> None:
        self.state = MaintenanceState.OPEN
        self.who = who
        self._failures = 0
        self._session += 1
        self._page = "devices"
        self._checks, self._checks_kind, self._outbox, self._progress = (), "", None, []
        self._last_activity = self.clock()
        self._audit("login", "ok", who=who)
        log.info("maintenance opened (%s)", who)
        self._say("opened", None)

    def cancel(self) -> None:
        """取消 on the PIN pad."""
        with self._lock:
            self._require(MaintenanceState.ASKING)
            self._audit("cancel", "cancelled", who="")
            self._lock_again("cancelled")

    def close(self, outcome: str = "closed") -> None:
        """退出 on the maintenance screen (or the idle close)."""
        with self._lock:
            self._require(MaintenanceState.OPEN)
            self._audit("close", outcome)
            log.info("maintenance closed (%s)", outcome)
            self._lock_again(outcome)

    def _lock_again(self, reason: str) -> None:
        self.state = MaintenanceState.LOCKED
        self.who = ""
        self._pin = []
        self._checking = False
        self._session += 1
        self._task, self._task_device, self._progress = None, "", []
        self._checks, self._outbox = (), None
        self.language = self.default_language
        self._say(reason, None)

    def set_language(self, language: str) -> None:
        with self._lock:
            self.language = language
            self._last_activity = self.clock()
            self._publish("language")

    # -- time -------------------------------------------------------------------------------
    def touch(self) -> None:
        """Any touch while the pad or the screen is up: the technician is still there."""
        with self._lock:
            self._last_activity = self.clock()

    def tick(self) -> None:
        """About once a second: the pad and the open screen close themselves when left alone."""
        with self._lock:
            now = self.clock()
            if self.state is MaintenanceState.ASKING:
                if self._message == "maintenance.locked_out" and not self.locked_out():
                    self._locked_until = None
                    self._say("lockout_over", None)
                elif now - self._last_activity >= self.cfg.pin_pad_timeout_s and not self._checking:
                    self._audit("cancel", "timeout", who="")
                    self._lock_again("timeout")
            elif self.state is MaintenanceState.OPEN:
                if self._task is not None:
                    self._last_activity = now  # waiting for the checks is not leaving
                elif now - self._last_activity >= self.cfg.idle_minutes * 60:
                    self.close("idle")

    def device_changed(self) -> None:
        """A device's status changed: the open list shows it at once."""
        with self._lock:
            if self.state is MaintenanceState.OPEN and self._page == "devices":
                self._publish("device")

    # -- actions on the open screen -----------------------------------------------------------
    def _start_task(self, task: str, device: str = "") -> int:
        self._require(MaintenanceState.OPEN)
        if self._task is not None:
            self._say("busy", "maintenance.busy")
            raise NotNow(f"{self._task} is still running")
        self._task, self._task_device = task, device
        self._last_activity = self.clock()
        return self._session

    def _task_done(self, session: int, reason: str, message: str | None = None, **values: Any) -> None:
        with self._lock:
            if session != self._session:
                return  # the technician left meanwhile: nothing to show
            self._task, self._task_device, self._progress = None, "", []
            self._say(reason, message, **values)

    def show_devices(self) -> None:
        """设备状态: the list of devices with their status (refreshed)."""
        with self._lock:
            self._require(MaintenanceState.OPEN)
            self._page = "devices"
            self._last_activity = self.clock()
            rows = self._device_rows()
            self._audit("status", "shown", faulty=[r.name for r in rows if not r.ok])
            self._say("devices", None)

    def show_outbox(self) -> None:
        """待发送: how many applications and ratings wait for the platform."""
        with self._lock:
            self._require(MaintenanceState.OPEN)
            self._page = "outbox"
            self._last_activity = self.clock()
            if self.outbox_counts is None:
                self._outbox = None
                self._audit("outbox", "no_platform")
                self._say("outbox", "maintenance.outbox.none")
                return
            try:
                counts = dict(self.outbox_counts())
            except Exception as exc:  # a broken database is a fault to show
                self._outbox = None
                self._audit("outbox", "error", error=str(exc))
                self._say("outbox", "maintenance.outbox.error")
                return
            self._outbox = tuple(sorted(counts.items()))
            self._audit("outbox", "shown", counts=counts)
            self._say("outbox", None)

    def self_test(self) -> None:
        """自检: every device's self-test, on a worker, with progress; then the pass/fail table."""
        with self._lock:
            session = self._start_task("self_test")
            self._page = "checks"
            self._progress, self._checks, self._checks_kind = [], (), "self_test"
            devices = dict(self.devices)
            self._say("self_test", None)

        def work() -> None:
            try:
                checks = self._check(devices, session, print_test_page=False)
            except Exception as exc:
                log.exception("the self-test failed")
                self._audit("self_test", "error", error=f"{type(exc).__name__}: {exc}")
                self._task_done(session, "self_test_done", "maintenance.task_error")
                return
            failed = [c.name for c in checks if not c.passed]
            self._audit("self_test", "failed" if failed else "passed", devices=len(checks), failed=failed,
                        duration_s=round(sum(c.duration_s for c in checks), 2))
            with self._lock:
                if session == self._session:
                    self._checks = tuple(_row(c) for c in checks)
            self._task_done(session, "self_test_done",
                            "maintenance.self_test_failed" if failed else "maintenance.self_test_passed",
                            failed=len(failed), total=len(checks))

        self._run(work, "maintenance-self-test")

    def test_print(self) -> None:
        """打印测试页: the receipt printer's self-test with a test page, for that device only."""
        with self._lock:
            name = self._printer_name()
            if not name:
                self._require(MaintenanceState.OPEN)
                self._audit("test_print", "no_printer")
                self._say("test_print", "maintenance.no_printer")
                return
            session = self._start_task("test_print", name)
            self._page = "checks"
            self._progress, self._checks, self._checks_kind = [], (), "test_print"
            device = self.devices[name]
            self._say("test_print", None)

        def work() -> None:
            try:
                checks = self._check({name: device}, session, print_test_page=True)
            except Exception as exc:
                log.exception("the test print failed")
                self._audit("test_print", "error", device=name, error=f"{type(exc).__name__}: {exc}")
                self._task_done(session, "test_print_done", "maintenance.task_error")
                return
            printed = bool(checks and checks[0].printed)
            fault = "" if printed else "; ".join(r.detail for c in checks for r in c.results if not r.passed)
            self._audit("test_print", "printed" if printed else "not_printed", device=name,
                        **({"fault": fault} if fault else {}))
            with self._lock:
                if session == self._session:
                    self._checks = tuple(_row(c) for c in checks)
            self._task_done(session, "test_print_done",
                            "maintenance.printed" if printed else "maintenance.not_printed", device=name)

        self._run(work, "maintenance-test-print")

    def restart(self, name: str) -> None:
        """重启: close the device and bring it up again (by the supervisor when one runs)."""
        with self._lock:
            if name not in self.devices:
                self._require(MaintenanceState.OPEN)
                raise NotNow(f"no device {name!r}")
            session = self._start_task("restart", name)
            device = self.devices[name]
            by_supervisor = self.reopen_by_supervisor
            self._say("restart", None)

        def work() -> None:
            outcome, fault = restart_device(device, by_supervisor)
            self._audit("restart", outcome, device=name, **({"fault": fault} if fault else {}))
            key = "maintenance.restarted" if outcome == "online" else "maintenance.restart_failed"
            self._task_done(session, "restart_done", key, device=name, fault=fault or "-")

        self._run(work, "maintenance-restart")

    def _check(self, devices: dict[str, Any], session: int, *, print_test_page: bool) -> list[Any]:
        checker = self._checker
        if checker is None:
            from kiosk.device_checks import check_devices

            checker = check_devices

        def progress(name: str, what: str) -> None:
            with self._lock:
                if session != self._session:
                    return
                self._progress = (self._progress + [(name, what)])[-PROGRESS_LINES:]
                self._publish("progress")

        return list(checker(devices, print_test_page=print_test_page, progress=progress,
                            terminal_id=self.audit.terminal_id, location=self.location))


def _row(check: Any) -> CheckRow:
    results = tuple((str(r.name), bool(r.passed), str(r.detail)) for r in getattr(check, "results", ()))
    return CheckRow(str(check.name), str(getattr(check, "device_class", "")), bool(check.passed), results,
                    getattr(check, "printed", None), float(getattr(check, "duration_s", 0.0) or 0.0),
                    str(getattr(check, "print_detail", "") or ""))


# -- the helper a technician runs to make the hashes -------------------------------------------
def _ask_secret(prompt: str, confirm: bool) -> str:
    """From the terminal without echo (twice), or one line from a pipe."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise SystemExit("maintenance: the two entries differ; nothing printed")
    return first.strip()


def _salt(args: argparse.Namespace) -> tuple[str, bool]:
    """The salt to hash with, and whether it is new (then its line is printed too)."""
    if args.salt:
        return args.salt, False
    try:
        from config.loader import load_config

        salt = load_config(args.config).maintenance.salt
    except Exception as exc:  # no usable config: a new salt, said so
        print(f"maintenance: the configuration could not be read ({exc}); making a new salt", file=sys.stderr)
        salt = ""
    return (salt, False) if salt else (secrets.token_hex(16), True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kiosk.maintenance",
        description="Make the salted hashes the [maintenance] section stores instead of a PIN or a card number. "
                    "The secret is read without echo (or one line from a pipe); the TOML lines go to stdout.")
    parser.add_argument("command", choices=("hash-pin", "hash-card"),
                        help="hash-pin: the technician PIN (4-12 digits); hash-card: a technician's ID number")
    parser.add_argument("--config", help="the terminal's configuration file, for its salt "
                        "(default: as the kiosk finds it)")
    parser.add_argument("--salt", help="use this salt (default: the configured one, else a new random one)")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS}; fewer only for tests)")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.salt is not None and len(args.salt) < 16:
        parser.error("--salt must be at least 16 characters")
    if args.command == "hash-pin":
        secret = _ask_secret("technician PIN: ", confirm=True)
        if not (secret.isdigit() and PIN_MIN <= len(secret) <= PIN_MAX):
            print(f"maintenance: a PIN is {PIN_MIN} to {PIN_MAX} digits", file=sys.stderr)
            return 2
        if len(secret) < 6 or len(set(secret)) == 1:
            print("maintenance: warning: a PIN of 6 or more varied digits is much harder to guess", file=sys.stderr)
    else:
        secret = _ask_secret("technician's ID number: ", confirm=False).upper()
        if not (len(secret) in (15, 18) and secret[:-1].isdigit()):
            print("maintenance: an ID number is 18 characters (or 15 digits)", file=sys.stderr)
            return 2
    salt, new_salt = _salt(args)
    print("# paste into the terminal's configuration file (never the PIN or the number itself)")
    print("[maintenance]")
    if new_salt:
        print(f'salt = "{salt}"')
    if args.command == "hash-pin":
        print(f'pin_hash = "{make_hash("pin", secret, salt, args.iterations)}"')
    else:
        print(f'technician_cards = ["{make_hash("card", secret, salt, args.iterations)}"]'
              "  # add to the list when there are more technicians")
    if new_salt:
        print("maintenance: a new salt was made: every PIN and card hash must use it (pass --salt to reuse it)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
