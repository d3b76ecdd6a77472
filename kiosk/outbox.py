"""A durable outbox: what the citizen confirmed is never lost, and arrives exactly once.

Every submission is written here first (SQLite in WAL mode, synchronous=FULL, so a
power cut after `enqueue` returns cannot lose it), then delivered. The idempotency key
is stored with the row before the first attempt, so a crash between "the platform
accepted" and "we marked it delivered" only causes a repeat that the platform answers
with the first receipt: exactly once in effect.

Personal data in the payload is encrypted at rest with SM4-GCM; the key lives in its own
file, apart from the database (a copied database alone reveals nothing). A delivered
row keeps only its receipts: the payload is erased.

Scans that travel with an application are attachments: one sealed row each in
`outbox_scans` (by the entry and the scan's SHA-256), written in the same transaction as
the entry, so an application is never queued without its scans. Rows of their own rather
than base64 inside the payload: the payload stays small and is read on every attempt, a
scan is read only to be uploaded, and is erased with the payload on delivery. Each is
sealed bound to its entry's key and its digest, so one cannot be swapped into another row.
Entries queued before attachments existed simply have none.

A row that no longer opens (a damaged disk, a power cut mid-write, the key file replaced)
can never be sent as it is: delivery sets it aside as `unreadable`, keeping its sealed
bytes and the reason for the technician (restoring the key may open it again), and goes
on with the others. Nothing is deleted.

An outbox that cannot be opened at start (a full disk, a damaged key file) must not keep the
terminal from starting: systemd would restart it in a loop and the help desk would only see
"lost". `DeferredOutbox` stands in for it: the terminal comes up, a submission is refused
calmly (OutboxError), the help desk is told (counts() raises), and opening is tried again
every `retry_s` until it works.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

log = logging.getLogger(__name__)

PENDING, DELIVERED, REJECTED = "pending", "delivered", "rejected"
UNREADABLE = "unreadable"  # set aside: its sealed bytes no longer open (kept, never sent)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  local_receipt TEXT NOT NULL UNIQUE,
  created_at REAL NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  remote_receipt TEXT,
  delivered_at REAL,
  payload BLOB
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_at);
CREATE TABLE IF NOT EXISTS outbox_scans (
  entry_id INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  PRIMARY KEY (entry_id, sha256)
);
"""


class OutboxError(Exception):
    """The outbox cannot store or read (disk, key file): the technician must look."""


class OutboxKeyError(OutboxError):
    """The encryption key file is missing, unreadable or not a key."""


class OutboxPlacementError(OutboxKeyError):
    """The key file sits beside the database: a configuration mistake, not a passing fault."""


class OutboxUnreadable(OutboxError):
    """One row's sealed payload or scan no longer opens with the outbox key: that row cannot
    be sent (the others can). The message names the row, never its content."""


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    idempotency_key: str
    local_receipt: str
    state: str
    attempts: int
    last_error: str
    remote_receipt: str | None


@dataclass(frozen=True)
class Attachment:
    """A file queued with an entry (a scan), opened for its upload."""

    sha256: str
    media_type: str
    data: bytes

    def __repr__(self) -> str:  # never the content
        return f"Attachment({self.sha256[:12]}..., {self.media_type}, {len(self.data)} bytes)"


def _scan_aad(idempotency_key: str, sha256: str) -> bytes:
    return f"{idempotency_key}\nscan:{sha256}".encode()


class SM4Box:
    """SM4-GCM with a 16-byte key from its own owner-only file (created on first use)."""

    def __init__(self, key_file: Path) -> None:
        self.key = self._load_or_create(key_file)

    @staticmethod
    def _load_or_create(path: Path) -> bytes:
        if not path.exists():
            # written whole to a temporary file, synced, then linked into place: a full disk or a
            # power cut leaves either no key file (made again at the next start) or a whole one,
            # never an empty one that would stop every later start
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(os.urandom(16).hex())
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, path)  # fails if another process made one meanwhile: theirs is kept
            except FileExistsError:
                pass
            except OSError as exc:
                raise OutboxKeyError(f"outbox key file {path} cannot be written ({exc}): free space on "
                                     f"{path.parent} and start again") from None
            finally:
                tmp.unlink(missing_ok=True)
        try:
            key = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise OutboxKeyError(f"outbox key file {path} cannot be read ({exc}); queued data "
                                 "cannot be decrypted without it: restore it from the backup") from None
        if len(key) != 16:
            raise OutboxKeyError(f"outbox key file {path} does not hold a 16-byte SM4 key")
        return key

    def seal(self, plaintext: bytes | bytearray, bound_to: bytes) -> bytes:
        nonce = os.urandom(12)
        enc = Cipher(algorithms.SM4(self.key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(bound_to)
        return nonce + enc.update(plaintext) + enc.finalize() + enc.tag

    def open(self, sealed: bytes, bound_to: bytes) -> bytes:
        nonce, body, tag = sealed[:12], sealed[12:-16], sealed[-16:]
        dec = Cipher(algorithms.SM4(self.key), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(bound_to)
        return dec.update(body) + dec.finalize()


class Outbox:
    def __init__(self, db_path: Path, key_file: Path, terminal_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        if key_file.resolve().parent == db_path.resolve().parent:
            raise OutboxPlacementError(f"the outbox key {key_file} must not sit beside the database "
                                 f"{db_path}: put it in another folder")
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox folder {db_path.parent} cannot be made ({exc}): check the disk") from None
        self.box = SM4Box(key_file)
        self.path = db_path
        self.terminal_id = terminal_id
        self.clock = clock
        self._lock = threading.Lock()
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=ON")  # erased payloads and scans are zeroed in the file
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if db is not None:  # a full disk is retried every 30 s: no descriptor left behind each time
                db.close()
            raise OutboxError(f"outbox database {db_path} cannot be opened ({exc}): check the disk") from None
        self._db = db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _local_receipt(self, row_id: int) -> str:
        day = datetime.datetime.fromtimestamp(self.clock()).strftime("%Y%m%d")
        return f"L{day}-{self.terminal_id}-{row_id:06d}"

    def enqueue(self, kind: str, payload: dict[str, Any], idempotency_key: str,
                attachments: Sequence[tuple[str, bytes | bytearray]] = ()) -> Entry:
        """Store durably, with its attachments ((media type, bytes), e.g. scans; the same bytes
        twice are kept once); returns the entry (with its local receipt) once it is on disk."""
        plaintext = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        sealed = self.box.seal(plaintext, idempotency_key.encode())
        files: dict[str, tuple[str, int, bytes]] = {}
        for media_type, data in attachments:
            digest = hashlib.sha256(data).hexdigest()
            files[digest] = (media_type, len(data), self.box.seal(data, _scan_aad(idempotency_key, digest)))
        now = self.clock()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT INTO outbox(kind, idempotency_key, local_receipt, created_at, next_attempt_at,"
                    " payload) VALUES (?, ?, ?, ?, ?, ?)",
                    (kind, idempotency_key, f"tmp-{idempotency_key}", now, now, sealed))
                row_id = int(cur.lastrowid or 0)
                self._db.execute("UPDATE outbox SET local_receipt=? WHERE id=?",
                                 (self._local_receipt(row_id), row_id))
                self._db.executemany(
                    "INSERT INTO outbox_scans(entry_id, sha256, media_type, size, sealed) VALUES (?, ?, ?, ?, ?)",
                    [(row_id, digest, media_type, size, box) for digest, (media_type, size, box) in files.items()])
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise OutboxError(f"idempotency key {idempotency_key} is already queued") from None
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(f"cannot queue the submission ({exc}): check free disk space") from None
        return self.get(row_id)

    def get(self, row_id: int) -> Entry:
        with self._lock:
            row = self._db.execute(
                "SELECT id, kind, idempotency_key, local_receipt, state, attempts, last_error,"
                " remote_receipt FROM outbox WHERE id=?", (row_id,)).fetchone()
        if row is None:
            raise OutboxError(f"no outbox entry {row_id}")
        return Entry(*row)

    def payload(self, entry: Entry) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT payload FROM outbox WHERE id=?", (entry.id,)).fetchone()
        if row is None or row[0] is None:
            raise OutboxError(f"outbox entry {entry.local_receipt} has no payload (already delivered)")
        try:
            return json.loads(self.box.open(row[0], entry.idempotency_key.encode()))
        except (InvalidTag, ValueError, TypeError) as exc:  # ValueError: too short, not UTF-8 or not JSON
            raise self._unreadable(entry, "payload", exc) from None

    def attachments(self, entry: Entry) -> list[Attachment]:
        """The entry's files, opened, in the order they were queued; [] for an entry without any
        (and for one delivered: they are erased with the payload)."""
        with self._lock:
            rows = self._db.execute("SELECT sha256, media_type, sealed FROM outbox_scans WHERE entry_id=?"
                                    " ORDER BY rowid", (entry.id,)).fetchall()
        out = []
        for digest, media_type, sealed in rows:
            try:
                data = self.box.open(sealed, _scan_aad(entry.idempotency_key, digest))
            except (InvalidTag, ValueError, TypeError) as exc:
                raise self._unreadable(entry, f"scan {digest[:12]}...", exc) from None
            if hashlib.sha256(data).hexdigest() != digest:  # sealed wrongly at enqueue: never send it
                raise OutboxUnreadable(f"outbox entry {entry.local_receipt}: a queued scan does not match its "
                                       "digest (damaged on disk); the entry is kept, not sent")
            out.append(Attachment(digest, media_type, data))
        return out

    def _unreadable(self, entry: Entry, part: str, exc: Exception) -> OutboxUnreadable:
        """The error for a row that does not open: its number and why, never any of its bytes."""
        why = "wrong key or damaged bytes" if isinstance(exc, InvalidTag) else "damaged bytes"
        return OutboxUnreadable(f"outbox entry {entry.local_receipt}: the sealed {part} does not open "
                                f"({type(exc).__name__}: {why}); if the outbox key file was replaced, restore "
                                "it from the backup; the entry is kept, not sent")

    def due(self, limit: int = 20) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, idempotency_key, local_receipt, state, attempts, last_error,"
                " remote_receipt FROM outbox WHERE state='pending' AND next_attempt_at<=?"
                " ORDER BY id LIMIT ?", (self.clock(), limit)).fetchall()
        return [Entry(*r) for r in rows]

    def mark_delivered(self, entry: Entry, remote_receipt: str) -> None:
        """Keep the receipts, erase the personal payload and the scans (in one transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE outbox SET state='delivered', remote_receipt=?, delivered_at=?,"
                                 " payload=NULL, last_error='' WHERE id=?",
                                 (remote_receipt, self.clock(), entry.id))
                self._db.execute("DELETE FROM outbox_scans WHERE entry_id=?", (entry.id,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                    self._db.execute("ROLLBACK")
                raise OutboxError(f"cannot record a delivery in {self.path} ({exc}): is the disk full?") from exc
            try:  # the old pages with the payload also sit in the write-ahead log: fold it in and empty it
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("outbox: the write-ahead log was not emptied after a delivery: %s", exc)

    def mark_failed(self, entry: Entry, error: str, retry_in_s: float | None) -> None:
        """A failed attempt: try again later, or (retry_in_s None) rejected for good."""
        with self._lock:
            if retry_in_s is None:
                self._db.execute("UPDATE outbox SET state='rejected', attempts=attempts+1, last_error=?"
                                 " WHERE id=?", (error[:500], entry.id))
            else:
                self._db.execute("UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt_at=?"
                                 " WHERE id=?", (error[:500], self.clock() + retry_in_s, entry.id))

    def set_aside(self, entry: Entry, reason: str) -> None:
        """A row that cannot be sent as it is (it does not open): kept with its sealed bytes and
        the reason, out of the delivery rounds, counted as unreadable for the technician."""
        with self._lock:
            self._db.execute("UPDATE outbox SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                             (UNREADABLE, reason[:500], entry.id))

    def counts(self) -> dict[str, int]:
        """Backlog figures for the help desk (`unreadable` only when some row was set aside)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        out = {PENDING: 0, DELIVERED: 0, REJECTED: 0}
        out.update({state: n for state, n in rows})
        return out


class DeferredOutbox:
    """An outbox not opened yet (see the module notes): every use tries to open it, at most once
    per `retry_s`; until then it raises the OutboxError that stopped it, except `due()`, which
    is empty (the delivery thread has nothing to send, and says so once per try)."""

    def __init__(self, opener: Callable[[], Outbox], error: OutboxError, *, retry_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._opener = opener
        self._error = error
        self._retry_s = retry_s
        self._clock = clock
        self._next_try = clock() + retry_s
        self._box: Outbox | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._box is not None

    def _outbox(self) -> Outbox:
        with self._lock:
            if self._box is None and self._clock() >= self._next_try:
                self._next_try = self._clock() + self._retry_s
                try:
                    self._box = self._opener()
                    log.info("outbox: opened at last; submissions are accepted again")
                except OutboxError as exc:
                    self._error = exc
                    log.warning("outbox: still cannot be opened, next try in %.0f s: %s", self._retry_s, exc)
            if self._box is None:
                raise OutboxError(f"the outbox is not open: {self._error}")
            return self._box

    def due(self, limit: int = 20) -> list[Entry]:
        try:
            box = self._outbox()
        except OutboxError:
            return []
        return box.due(limit)

    def close(self) -> None:
        with self._lock:
            if self._box is not None:
                self._box.close()

    def __getattr__(self, name: str) -> Any:  # enqueue, get, payload, counts, ...: the opened outbox's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._outbox(), name)


def open_outbox(db_path: Path, key_file: Path, terminal_id: str, *, retry_s: float = 30.0) -> Outbox | DeferredOutbox:
    """The terminal's outbox, or, when it cannot be opened now, a DeferredOutbox that keeps
    trying (a key file beside the database is a configuration mistake: that one still raises)."""
    def opener() -> Outbox:
        return Outbox(db_path, key_file, terminal_id)

    try:
        return opener()
    except OutboxPlacementError:
        raise
    except OutboxError as exc:
        log.error("outbox: cannot be opened at start (%s); the terminal starts without accepting "
                  "submissions and tries again every %.0f s", exc, retry_s)
        return DeferredOutbox(opener, exc, retry_s=retry_s)
