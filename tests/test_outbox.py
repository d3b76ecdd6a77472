"""The outbox on its own: durable, encrypted at rest, key kept apart."""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from visit_doubles import AcceptingPlatform

from kiosk.delivery import Deliverer
from kiosk.outbox import (
    DELIVERED,
    UNREADABLE,
    DeferredOutbox,
    Outbox,
    OutboxError,
    OutboxKeyError,
    OutboxUnreadable,
    open_outbox,
)

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = {"citizen": {"id_number": "11010519491231002X", "name": "赵六"}, "answers": {"addr": "测试路1号"}}


def make(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox" / "outbox.db", tmp_path / "keys" / "outbox.key", "T-1")


def test_enqueue_is_encrypted_at_rest(tmp_path: Path) -> None:
    box = make(tmp_path)
    entry = box.enqueue("application", PAYLOAD, "k" * 32)
    assert entry.local_receipt.startswith("L") and entry.local_receipt.endswith("-T-1-000001")
    assert box.payload(entry) == PAYLOAD
    box.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "outbox").iterdir())
    for secret in ("11010519491231002X", "赵六", "测试路"):
        assert secret.encode() not in raw
    assert ((tmp_path / "keys" / "outbox.key").stat().st_mode & 0o777) == 0o600


def test_survives_reopen_and_delivery_erases_payload(tmp_path: Path) -> None:
    box = make(tmp_path)
    entry = box.enqueue("application", PAYLOAD, "a" * 32)
    box.close()
    box = make(tmp_path)
    assert [e.idempotency_key for e in box.due()] == ["a" * 32]
    box.mark_delivered(entry, "SQ-1")
    assert box.get(entry.id).remote_receipt == "SQ-1" and box.due() == []
    with pytest.raises(OutboxError, match="already delivered"):
        box.payload(box.get(entry.id))
    assert box.counts() == {"pending": 0, "delivered": 1, "rejected": 0}


def test_same_key_twice_refused(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.enqueue("application", PAYLOAD, "b" * 32)
    with pytest.raises(OutboxError, match="already queued"):
        box.enqueue("application", PAYLOAD, "b" * 32)


def test_key_beside_database_refused(tmp_path: Path) -> None:
    with pytest.raises(OutboxKeyError, match="must not sit beside"):
        Outbox(tmp_path / "o.db", tmp_path / "o.key", "T-1")


def test_an_outbox_that_cannot_open_at_start_is_opened_later(tmp_path: Path) -> None:
    """A key file that cannot be read at start (as on a full disk): the terminal still gets an
    outbox; it refuses to queue with the reason, has nothing due, and opens once the fault is
    gone, at its next try."""
    key = tmp_path / "keys" / "outbox.key"
    key.parent.mkdir()
    key.write_text("not a key")
    now = [0.0]
    box = open_outbox(tmp_path / "outbox" / "outbox.db", key, "T-1")
    assert isinstance(box, DeferredOutbox) and not box.opened
    box = DeferredOutbox(box._opener, OutboxError("first"), retry_s=30, clock=lambda: now[0])
    with pytest.raises(OutboxError, match="not open: first"):
        box.enqueue("application", PAYLOAD, "d" * 32)
    now[0] = 31.0  # the next try: still broken, the new reason is kept
    with pytest.raises(OutboxError, match="not open: outbox key file .* cannot be read"):
        box.counts()
    assert box.due() == []
    key.unlink()  # the technician removes the damaged file (on a full disk: space is freed)
    now[0] = 40.0
    assert box.due() == [] and not box.opened  # not before its next try
    now[0] = 62.0
    entry = box.enqueue("application", PAYLOAD, "d" * 32)
    assert box.opened and box.payload(entry) == PAYLOAD and box.counts()["pending"] == 1
    box.close()


def test_a_configuration_mistake_still_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(OutboxKeyError, match="must not sit beside"):
        open_outbox(tmp_path / "o.db", tmp_path / "o.key", "T-1")


def test_wrong_key_cannot_read(tmp_path: Path) -> None:
    box = make(tmp_path)
    entry = box.enqueue("application", PAYLOAD, "c" * 32)
    box.close()
    (tmp_path / "keys" / "outbox.key").write_text(os.urandom(16).hex())
    box = make(tmp_path)
    with pytest.raises(OutboxUnreadable, match="restore it from the backup") as raised:
        box.payload(entry)
    assert entry.local_receipt in str(raised.value) and "赵六" not in str(raised.value)


def test_failed_attempts_back_off_and_rejection_is_final(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "outbox" / "o.db", tmp_path / "keys" / "k", "T-1", clock=lambda: now[0])
    entry = box.enqueue("application", PAYLOAD, "d" * 32)
    box.mark_failed(entry, "down", 30)
    assert box.due() == []
    now[0] += 31
    assert len(box.due()) == 1 and box.get(entry.id).attempts == 1
    box.mark_failed(entry, "422 missing field", None)
    assert box.due() == [] and box.counts()["rejected"] == 1


def test_kill_minus_9_after_enqueue_loses_nothing(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from kiosk.outbox import Outbox
        box = Outbox(Path({str(tmp_path)!r}) / "outbox" / "o.db", Path({str(tmp_path)!r}) / "keys" / "k", "T-1")
        for n in range(5):
            box.enqueue("application", {{"n": n}}, f"key-{{n:04d}}-xxxxxxxx")
        print("queued", flush=True)
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "queued" in proc.stdout
    box = Outbox(tmp_path / "outbox" / "o.db", tmp_path / "keys" / "k", "T-1")
    assert [box.payload(e)["n"] for e in box.due()] == [0, 1, 2, 3, 4]


# -- scans queued with an application ------------------------------------------------------------------
def _scan(marker: bytes, size: int = 40_000) -> bytes:
    """A JPEG-like scan whose every stretch is recognisable (a copy in clear would be found)."""
    return b"\xff\xd8\xff\xe0" + (marker * (size // len(marker) + 1))[:size]


def _in_clear(tmp_path: Path, data: bytes) -> bool:
    raw = b"".join(p.read_bytes() for p in (tmp_path / "outbox").iterdir())
    return any(data[i:i + 24] in raw for i in range(4, len(data) - 24, 997))


def test_scans_survive_a_restart_sealed(tmp_path: Path) -> None:
    box = make(tmp_path)
    jpeg, pdf = _scan(b"JPEG-PAGE-OF-ZHAO-LIU "), b"%PDF-1.3\n" + _scan(b"PDF-PAGE-OF-ZHAO-LIU ")[4:]
    entry = box.enqueue("application", PAYLOAD, "s" * 32,
                        attachments=[("image/jpeg", bytearray(jpeg)), ("application/pdf", pdf),
                                     ("image/jpeg", jpeg)])  # the same paper for two materials: kept once
    box.close()
    assert not _in_clear(tmp_path, jpeg) and not _in_clear(tmp_path, pdf)
    box = make(tmp_path)
    (due,) = box.due()
    files = box.attachments(due)
    assert [(f.media_type, f.data) for f in files] == [("image/jpeg", jpeg), ("application/pdf", pdf)]
    assert files[0].sha256 == hashlib.sha256(jpeg).hexdigest() and "JPEG-PAGE" not in repr(files[0])
    box.mark_delivered(entry, "SQ-2")
    assert box.attachments(box.get(entry.id)) == []
    box.close()
    with sqlite3.connect(tmp_path / "outbox" / "outbox.db") as db:
        assert db.execute("SELECT count(*) FROM outbox_scans").fetchone() == (0,)


def test_a_scan_cannot_be_moved_to_another_entry(tmp_path: Path) -> None:
    box = make(tmp_path)
    mine = box.enqueue("application", PAYLOAD, "m" * 32, attachments=[("image/jpeg", _scan(b"MINE "))])
    other = box.enqueue("application", PAYLOAD, "o" * 32)
    box.close()
    with sqlite3.connect(tmp_path / "outbox" / "outbox.db") as db:
        db.execute("UPDATE outbox_scans SET entry_id=? WHERE entry_id=?", (other.id, mine.id))
    box = make(tmp_path)
    with pytest.raises(OutboxUnreadable, match="scan"):
        box.attachments(box.get(other.id))


def test_entries_queued_before_scans_existed_still_deliver(tmp_path: Path) -> None:
    """An outbox database from before the outbox_scans table: opened, extended, nothing lost."""
    db_path = tmp_path / "outbox" / "outbox.db"
    box = make(tmp_path)
    entry = box.enqueue("application", PAYLOAD, "e" * 32)
    box.close()
    with sqlite3.connect(db_path) as db:
        db.execute("DROP TABLE outbox_scans")
    box = make(tmp_path)
    (due,) = box.due()
    assert box.payload(due) == PAYLOAD and box.attachments(due) == []
    box.mark_delivered(entry, "SQ-3")
    assert box.counts()["delivered"] == 1


# -- rows that no longer open --------------------------------------------------------------------------------


def test_a_row_that_does_not_open_is_set_aside_and_the_next_rows_still_go(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged scan (or payload) stops only its own row: kept with its bytes and the reason,
    counted as unreadable, never sent, never deleted; the rows after it are delivered."""
    box = make(tmp_path)
    damaged = box.enqueue("application", PAYLOAD, "x" * 32, attachments=[("image/jpeg", _scan(b"ZHAO "))])
    good = box.enqueue("application", PAYLOAD, "y" * 32)
    with box._lock:
        box._db.execute("UPDATE outbox_scans SET sealed=zeroblob(64) WHERE entry_id=?", (damaged.id,))
    platform = AcceptingPlatform()
    assert Deliverer(box, platform).drain() == 1  # type: ignore[arg-type]
    assert platform.received == ["y" * 32] and box.get(good.id).state == DELIVERED
    kept = box.get(damaged.id)
    assert kept.state == UNREADABLE and damaged.local_receipt in kept.last_error and "scan" in kept.last_error
    assert box.counts() == {"pending": 0, "delivered": 1, "rejected": 0, UNREADABLE: 1}
    with box._lock:
        assert box._db.execute("SELECT payload IS NOT NULL FROM outbox WHERE id=?", (damaged.id,)).fetchone() == (1,)
        assert box._db.execute("SELECT count(*) FROM outbox_scans WHERE entry_id=?", (damaged.id,)).fetchone() == (1,)
    assert "set aside" in caplog.text and "赵六" not in caplog.text and "ZHAO" not in caplog.text
    assert Deliverer(box, platform).drain() == 0 and platform.received == ["y" * 32]  # not retried


def test_the_delivery_thread_makes_one_request_per_attempt(tmp_path: Path) -> None:
    """The delivery thread backs off by itself (minutes, in the outbox): its client must not
    also retry and sleep while it holds an entry's decrypted payload."""
    import requests
    from terminal_config import write_config

    from config.loader import load_config
    from govapi.signing import ECDSA_P256_SHA256, KeyPair
    from kiosk.platform_link import PlatformLink

    cfg = load_config(write_config(tmp_path, {}), environ={})
    cfg.platform.url = "http://platform.test.invalid"
    data_dir = tmp_path / "data"
    KeyPair.generate(ECDSA_P256_SHA256).save(data_dir / cfg.platform.key_file)
    link = PlatformLink(cfg, data_dir)
    calls: list[str] = []

    class Down(requests.Session):
        def request(self, method: str, url: str, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
            calls.append(f"{method} {url}")
            raise requests.ConnectionError("refused")

    link.background.session = Down()
    entry = link.outbox.enqueue("application", PAYLOAD, "e" * 32)
    try:
        assert link.deliverer.drain() == 0
        after = link.outbox.get(entry.id)
        assert calls == ["POST http://platform.test.invalid/v1/applications"], calls
        assert after.state == "pending" and after.attempts == 1 and "cannot reach" in after.last_error
    finally:
        link.stop()
