"""The outbox on its own: durable, encrypted at rest, key kept apart."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kiosk.outbox import Outbox, OutboxError, OutboxKeyError

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


def test_wrong_key_cannot_read(tmp_path: Path) -> None:
    box = make(tmp_path)
    entry = box.enqueue("application", PAYLOAD, "c" * 32)
    box.close()
    (tmp_path / "keys" / "outbox.key").write_text(os.urandom(16).hex())
    box = make(tmp_path)
    with pytest.raises(Exception):
        box.payload(entry)


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
