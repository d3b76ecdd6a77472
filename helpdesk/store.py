"""The console's durable data: staff, sessions, login lock-outs, the audit trail, help calls.

One SQLite file in the console's data folder (owner-only, write-ahead log), so a restart of
the console keeps the queue of help calls and the audit. The audit table is append-only:
triggers refuse UPDATE and DELETE, so not even a bug in this program can rewrite history.
Nothing personal of a citizen is stored here: calls carry terminal, step and times; audit
details pass the shared masking rules (ID and phone numbers) before they are written.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govapi.masking import mask_numbers
from helpdesk.passwords import DUMMY_HASH, hash_password, verify_password

ROLES = ("viewer", "agent", "supervisor")
LOCKOUT_FAILURES = 5
LOCKOUT_S = 15 * 60
_MAX_DETAIL = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'agent', 'supervisor')),
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    sid TEXT PRIMARY KEY,
    staff TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS lockouts (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    staff TEXT NOT NULL,
    action TEXT NOT NULL,
    terminal TEXT NOT NULL DEFAULT '',
    call_id TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS calls (
    terminal TEXT NOT NULL,
    call_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'accepted', 'ended')),
    step TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    accepted_at REAL,
    ended_at REAL,
    staff TEXT NOT NULL DEFAULT '',
    staff_display TEXT NOT NULL DEFAULT '',
    end_reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (terminal, call_id)
);
CREATE INDEX IF NOT EXISTS calls_state ON calls (state, created_at);
"""


class StoreError(Exception):
    """The console's database cannot be opened or written: a disk or permission problem."""


class UnknownStaff(LookupError):
    """No staff member of that name."""


class CallTaken(Exception):
    """Another staff member took the call first, or it ended."""


@dataclass(frozen=True)
class Staff:
    name: str
    display_name: str
    role: str
    active: bool = True


@dataclass(frozen=True)
class LoginResult:
    staff: Staff | None
    outcome: str  # "ok", "wrong", "locked", "inactive"
    locked_until: float = 0.0


@dataclass(frozen=True)
class Call:
    terminal: str
    call_id: str
    state: str
    step: str
    language: str
    location: str
    created_at: float
    accepted_at: float | None
    ended_at: float | None
    staff: str
    staff_display: str
    end_reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _utc_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(text: str) -> str:
    return mask_numbers(str(text))[:_MAX_DETAIL]


class Store:
    """Thread-safe: one connection, one lock (the console's writes are few and small)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the console database {self.path}: {exc}; check the --data folder "
                             "exists and belongs to the user running the console") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- staff ----------------------------------------------------------------------------------
    def add_staff(self, name: str, display_name: str, role: str, password: str) -> Staff:
        """Create or replace a staff member (a new password, role or display name)."""
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not name.isprintable() or name.strip() != name:
            raise ValueError("a staff name is 1 to 64 printable characters without spaces around it")
        with self._write() as db:
            db.execute("INSERT INTO staff (name, display_name, role, password_hash, active, created_at) "
                       "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
                       "display_name = excluded.display_name, "
                       "role = excluded.role, password_hash = excluded.password_hash, active = 1",
                       (name, display_name or name, role, hash_password(password), _utc_iso()))
            db.execute("DELETE FROM lockouts WHERE name = ?", (name,))
        return Staff(name, display_name or name, role)

    def staff(self, name: str) -> Staff:
        rows = self._read("SELECT name, display_name, role, active FROM staff WHERE name = ?", (name,))
        if not rows:
            raise UnknownStaff(name)
        n, display, role, active = rows[0]
        return Staff(n, display, role, bool(active))

    def list_staff(self) -> list[Staff]:
        return [Staff(n, d, r, bool(a)) for n, d, r, a in
                self._read("SELECT name, display_name, role, active FROM staff ORDER BY name")]

    def check_login(self, name: str, password: str, now: float) -> LoginResult:
        """Verify a login; 5 failures in a row lock the name for 15 minutes (even unknown
        names, so the lock-out does not tell which names exist)."""
        rows = self._read("SELECT failures, locked_until FROM lockouts WHERE name = ?", (name,))
        failures, locked_until = rows[0] if rows else (0, 0.0)
        if locked_until > now:
            return LoginResult(None, "locked", locked_until)
        if locked_until:  # a lock-out that has run out starts the count again
            failures = 0
        found = self._read("SELECT name, display_name, role, active, password_hash FROM staff WHERE name = ?", (name,))
        stored = found[0][4] if found else DUMMY_HASH
        good = verify_password(password, stored) and bool(found)
        if good and not found[0][3]:
            return LoginResult(None, "inactive")
        with self._write() as db:
            if good:
                db.execute("DELETE FROM lockouts WHERE name = ?", (name,))
            else:
                failures += 1
                until = now + LOCKOUT_S if failures >= LOCKOUT_FAILURES else 0.0
                db.execute("INSERT INTO lockouts (name, failures, locked_until) VALUES (?, ?, ?) "
                           "ON CONFLICT (name) DO UPDATE SET failures = excluded.failures, "
                           "locked_until = excluded.locked_until", (name, failures, until))
                if until:
                    return LoginResult(None, "locked", until)
        if not good:
            return LoginResult(None, "wrong")
        n, display, role, active, _ = found[0]
        return LoginResult(Staff(n, display, role, bool(active)), "ok")

    # -- sessions: a cookie is only good while its server-side session is open ----------------
    def open_session(self, staff: str) -> str:
        sid = secrets.token_urlsafe(24)
        with self._write() as db:
            db.execute("INSERT INTO sessions (sid, staff, created_at) VALUES (?, ?, ?)", (sid, staff, _utc_iso()))
        return sid

    def session_open(self, sid: str, staff: str) -> bool:
        return bool(self._read("SELECT 1 FROM sessions WHERE sid = ? AND staff = ? AND ended_at IS NULL", (sid, staff)))

    def end_session(self, sid: str) -> None:
        with self._write() as db:
            db.execute("UPDATE sessions SET ended_at = ? WHERE sid = ? AND ended_at IS NULL", (_utc_iso(), sid))

    # -- audit -----------------------------------------------------------------------------------
    def audit(self, staff: str, action: str, outcome: str, *, terminal: str = "", call_id: str = "",
              details: str = "") -> None:
        """One line of the audit trail; details are masked (ID and phone numbers) and short."""
        with self._write() as db:
            db.execute("INSERT INTO audit (at, staff, action, terminal, call_id, outcome, details) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (_utc_iso(), _clean(staff)[:64], action, terminal[:64], call_id[:64], _clean(outcome),
                        _clean(details)))

    def audit_lines(self, limit: int = 200, *, staff: str | None = None, action: str | None = None
                    ) -> list[dict[str, Any]]:
        """The newest lines first."""
        sql = "SELECT id, at, staff, action, terminal, call_id, outcome, details FROM audit"
        where: list[str] = []
        args: list[Any] = []
        if staff is not None:
            where.append("staff = ?")
            args.append(staff)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        keys = ("id", "at", "staff", "action", "terminal", "call_id", "outcome", "details")
        return [dict(zip(keys, row)) for row in self._read(sql, tuple(args))]

    # -- help calls ------------------------------------------------------------------------------
    _CALL_COLUMNS = ("terminal, call_id, state, step, language, location, created_at, accepted_at, ended_at, "
                     "staff, staff_display, end_reason")

    def call_waiting(self, terminal: str, call_id: str, *, step: str, language: str, location: str,
                     now: float) -> Call:
        """A terminal says a call waits; repeated announcements keep the first time."""
        with self._write() as db:
            db.execute("INSERT INTO calls (terminal, call_id, state, step, language, location, created_at) "
                       "VALUES (?, ?, 'waiting', ?, ?, ?, ?) ON CONFLICT (terminal, call_id) DO UPDATE SET "
                       "step = excluded.step, language = excluded.language, location = excluded.location",
                       (terminal, call_id, step[:32], language[:8], location[:120], now))
        return self.call(terminal, call_id)

    def update_call_step(self, terminal: str, call_id: str, step: str) -> None:
        with self._write() as db:
            db.execute("UPDATE calls SET step = ? WHERE terminal = ? AND call_id = ?", (step[:32], terminal, call_id))

    def claim_call(self, terminal: str, call_id: str, staff: Staff, now: float) -> Call:
        """Take a waiting call for `staff`; CallTaken when someone else has it or it ended."""
        with self._write() as db:
            rows = db.execute("SELECT state, staff FROM calls WHERE terminal = ? AND call_id = ?",
                              (terminal, call_id)).fetchall()
            if not rows:
                raise LookupError(f"no help call {call_id} from terminal {terminal}")
            state, owner = rows[0]
            if state == "ended":
                raise CallTaken("the call has ended")
            if state == "accepted" and owner != staff.name:
                raise CallTaken(f"the call was taken by {owner}")
            db.execute("UPDATE calls SET state = 'accepted', staff = ?, staff_display = ?, accepted_at = ? "
                       "WHERE terminal = ? AND call_id = ?", (staff.name, staff.display_name, now, terminal, call_id))
        return self.call(terminal, call_id)

    def release_call(self, terminal: str, call_id: str, staff: str) -> None:
        """Back to waiting when the terminal did not confirm the accept."""
        with self._write() as db:
            db.execute("UPDATE calls SET state = 'waiting', staff = '', staff_display = '', accepted_at = NULL "
                       "WHERE terminal = ? AND call_id = ? AND state = 'accepted' AND staff = ?",
                       (terminal, call_id, staff))

    def reopen_call(self, terminal: str, call_id: str, state: str) -> Call:
        """A call ended only because its terminal dropped off, announced again when it came back:
        waiting again, or accepted by the same staff member as before."""
        with self._write() as db:
            if state == "accepted":
                db.execute("UPDATE calls SET state = 'accepted', ended_at = NULL, end_reason = '' "
                           "WHERE terminal = ? AND call_id = ? AND state = 'ended'", (terminal, call_id))
            else:
                db.execute("UPDATE calls SET state = 'waiting', ended_at = NULL, end_reason = '', staff = '', "
                           "staff_display = '', accepted_at = NULL WHERE terminal = ? AND call_id = ? "
                           "AND state = 'ended'", (terminal, call_id))
        return self.call(terminal, call_id)

    def end_call(self, terminal: str, call_id: str, reason: str, now: float) -> Call | None:
        with self._write() as db:
            db.execute("UPDATE calls SET state = 'ended', ended_at = ?, end_reason = ? "
                       "WHERE terminal = ? AND call_id = ? AND state != 'ended'",
                       (now, reason[:40], terminal, call_id))
        try:
            return self.call(terminal, call_id)
        except LookupError:
            return None

    def end_calls_of(self, terminal: str, reason: str, now: float, *, keep: str = "") -> list[Call]:
        """End every open call of a terminal but `keep` (a new call replaces an old one)."""
        open_calls = [c for c in self.open_calls() if c.terminal == terminal and c.call_id != keep]
        for c in open_calls:
            self.end_call(terminal, c.call_id, reason, now)
        return open_calls

    def call(self, terminal: str, call_id: str) -> Call:
        rows = self._read(f"SELECT {self._CALL_COLUMNS} FROM calls WHERE terminal = ? AND call_id = ?",
                          (terminal, call_id))
        if not rows:
            raise LookupError(f"no help call {call_id} from terminal {terminal}")
        return Call(*rows[0])

    def open_calls(self) -> list[Call]:
        """Waiting and accepted calls, oldest first: the queue."""
        return [Call(*r) for r in self._read(f"SELECT {self._CALL_COLUMNS} FROM calls WHERE state != 'ended' "
                                             "ORDER BY created_at")]

    def recent_calls(self, limit: int = 50) -> list[Call]:
        return [Call(*r) for r in self._read(f"SELECT {self._CALL_COLUMNS} FROM calls ORDER BY created_at DESC "
                                             "LIMIT ?", (limit,))]
