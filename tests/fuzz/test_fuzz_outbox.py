"""Fuzzing the outbox's reading of its own rows (kiosk/outbox.py): SM4-GCM sealed payloads and
scans, read back from SQLite by kiosk/delivery.py. The bytes are the terminal's own, but a
disk that fails, a power cut mid-write or an outbox key file replaced (SM4Box creates a new key
when the file is missing) hands back bytes that no longer open.

Round trip: any application payload and its scans come back exactly as queued. Damage: a
row that no longer opens must be a documented OutboxError that delivery reports and steps
over, not an exception that stops every later row from being delivered.
"""
from __future__ import annotations

import functools
import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fuzzing import fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from visit_doubles import AcceptingPlatform

from kiosk.delivery import Deliverer
from kiosk.outbox import DELIVERED, UNREADABLE, Outbox, OutboxUnreadable

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_keys = (f"fuzz-{n}" for n in itertools.count())


@functools.cache
def outbox() -> Outbox:
    root = Path(tempfile.mkdtemp(prefix="fuzz-outbox-"))
    return Outbox(root / "outbox" / "outbox.db", root / "keys" / "outbox.key", "ZJ-FUZZ-0001")


@fuzz(100)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6),
       st.lists(st.tuples(st.sampled_from(["image/jpeg", "application/pdf", "image/png"]), st.binary(max_size=300)),
                max_size=3))
def test_a_queued_application_and_its_scans_come_back_exactly(payload: dict[str, Any],
                                                             scans: list[tuple[str, bytes]]) -> None:
    box = outbox()
    entry = box.enqueue("application", payload, next(_keys), attachments=scans)
    assert box.payload(entry) == payload
    kept: dict[bytes, str] = {}
    for media_type, data in scans:
        kept[data] = media_type  # the same bytes twice are kept once (in the first one's place)
    assert [(a.media_type, a.data) for a in box.attachments(entry)] == [(t, d) for d, t in kept.items()]




@example(b"\x00" * 40)
@fuzz(100)
@given(st.binary(max_size=80))
def test_a_row_that_no_longer_opens_is_reported_and_the_next_rows_still_go(damaged: bytes) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-outbox-damaged-"))
    box = Outbox(root / "outbox" / "outbox.db", root / "keys" / "outbox.key", "ZJ-FUZZ-0001")
    try:
        first = box.enqueue("application", {"n": 1}, "k-1")
        second = box.enqueue("application", {"n": 2}, "k-2")
        with box._lock:
            box._db.execute("UPDATE outbox SET payload=? WHERE id=?", (damaged, first.id))
        with pytest.raises(OutboxUnreadable) as raised:
            box.payload(box.get(first.id))
        assert first.local_receipt in str(raised.value)
        platform = AcceptingPlatform()
        Deliverer(box, platform).drain()  # type: ignore[arg-type]
        assert box.get(second.id).state == DELIVERED and platform.received == ["k-2"]
        # set aside, not deleted: its bytes kept as they were, the reason there for the technician
        kept = box.get(first.id)
        assert kept.state == UNREADABLE and "does not open" in kept.last_error
        with box._lock:
            assert box._db.execute("SELECT payload FROM outbox WHERE id=?", (first.id,)).fetchone()[0] == damaged
        assert box.counts()[UNREADABLE] == 1 and box.due() == []
        Deliverer(box, platform).drain()  # type: ignore[arg-type]
        assert platform.received == ["k-2"]  # never sent in a later round either
    finally:
        box.close()
