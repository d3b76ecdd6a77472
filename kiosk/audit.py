"""The maintenance audit log: who did what on the terminal, and how it ended.

One JSON object per line, appended and synced to disk before the action is reported done,
in an owner-only file (0600) inside an owner-only folder (0700):

    {"time": "2026-11-27T08:15:02.123Z", "terminal": "DEMO-0001", "who": "pin",
     "action": "self_test", "outcome": "failed", "failed": ["receipt_printer"]}

`who` names the technician's credential, never a person behind a citizen's card: "pin", a
technician card's masked number ("card:110101********1234"), "card" for a card that was
refused (its number is a citizen's and is not written), or "" before anyone logged in.
Extra fields are short facts (device names, counts, fault words); every text passes the
shared masking rules once more, so an ID or phone number cannot slip in through a fault.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from govapi.masking import mask_numbers

log = logging.getLogger(__name__)

_MAX_TEXT = 300  # a fault sentence, not a dump


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _clean(value: Any) -> Any:
    """JSON-ready, short, and masked once more."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v) for v in value]
    return mask_numbers(str(value))[:_MAX_TEXT]


class AuditLog:
    """Append-only, synced after every line; safe to call from any thread."""

    def __init__(self, path: Path, terminal_id: str, *,
                 now: Callable[[], datetime.datetime] = utc_now) -> None:
        self.path = Path(path)
        self.terminal_id = terminal_id
        self.now = now
        self._lock = threading.Lock()

    def _prepare(self) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # an existing folder too: the log says who serviced the terminal

    def record(self, who: str, action: str, outcome: str, **facts: Any) -> dict[str, Any]:
        """Write one line and sync it; returns what was written. An unwritable log is logged
        loudly and raised: an action that cannot be audited must not go unnoticed."""
        stamp = self.now().astimezone(datetime.timezone.utc)
        entry: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "terminal": self.terminal_id, "who": _clean(who), "action": action, "outcome": _clean(outcome)}
        for key, value in facts.items():
            if key not in entry:
                entry[key] = _clean(value)
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            try:
                self._prepare()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                log.exception("the maintenance audit log %s cannot be written", self.path)
                raise
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first (lines that are not JSON, e.g. cut by a power loss, skipped)."""
        try:
            with self.path.open("rb") as fh:
                for raw in fh:
                    try:
                        yield json.loads(raw)
                    except ValueError:
                        continue
        except FileNotFoundError:
            return

    def last(self, action: str) -> dict[str, Any] | None:
        """The newest entry of `action`, or None."""
        found = None
        for entry in self.entries():
            if entry.get("action") == action:
                found = entry
        return found
