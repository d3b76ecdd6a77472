"""预约取号: checking in with the appointment code of a booking, on the real platform process.

A booking's slot is moved in the platform's own database to put it inside (or outside) the
check-in window; everything else goes through the signed API and the contract check. The
module has a platform of its own: moved slots would change what other modules' tests see
as the next free slot.
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from govplatform_harness import Server, Terminal, new_key, new_visit, start_server

from govapi.appointment_codes import booking_for_code, code_for_booking, make_appointment_code

_slots = itertools.count()  # each test books a slot of its own (one booking per citizen and slot)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("govplatform-checkin"))


@pytest.fixture(scope="module")
def items(own: Server) -> dict[str, Any]:
    return own.enrol().call("GET", "/v1/catalogue").json()


def book(server: Server, t: Terminal, catalogue: dict[str, Any], card: dict[str, Any],
         starts_in: dt.timedelta) -> dict[str, Any]:
    item = next(i for i in catalogue["items"] if i["kind"] == "appointment")
    slots = t.call("GET", f"/v1/appointments/slots?item_id={item['id']}").json()["slots"]
    slot = slots[next(_slots)]
    visit = new_visit()
    token = t.identify(card, visit_id=visit)["citizen_token"]
    booked = t.call("POST", "/v1/appointments", {"slot_id": slot["slot_id"], "item_id": item["id"],
                                                 "visit_id": visit}, token=token, key=new_key())
    assert booked.status_code == 201, booked.text
    starts = dt.datetime.now(dt.UTC).replace(tzinfo=None) + starts_in
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE appointment_slots SET starts_at = :s, ends_at = :e WHERE id = :i"),
                     {"s": starts, "e": starts + dt.timedelta(minutes=30), "i": slot["slot_id"]})
    engine.dispose()
    return booked.json()


def check_in(t: Terminal, code: str, key: str | None = None) -> Any:
    return t.call("POST", "/v1/appointments/check-in", {"appointment_code": code}, key=key or new_key())


def test_the_code_stands_for_the_booking_number() -> None:
    code = code_for_booking("YY20261127000042")
    assert code == make_appointment_code("261127000042") and len(code) == 15
    assert booking_for_code(code) == "YY20261127000042"
    assert booking_for_code(code[:-1] + ("0" if code[-1] != "0" else "1")) is None


def test_check_in_gives_a_queue_number_once(own: Server, items: dict, resident_card: dict) -> None:
    server, catalogue = own, items
    t = server.enrol()
    booked = book(server, t, catalogue, resident_card, dt.timedelta(minutes=10))
    assert booked["appointment_code"] == code_for_booking(booked["booking_number"])
    first = check_in(t, booked["appointment_code"])
    assert first.status_code == 201, first.text
    ticket = first.json()
    assert ticket["booking_number"] == booked["booking_number"]
    assert ticket["ticket_number"].startswith("A") and len(ticket["ticket_number"]) == 4
    assert ticket["counter"]["zh-CN"] and ticket["title"]["zh-CN"] and ticket["waiting_ahead"] >= 0
    again = check_in(server.enrol(), booked["appointment_code"])  # scanned again, at another terminal
    assert again.status_code == 201 and again.json()["ticket_number"] == ticket["ticket_number"]
    assert server.db_count("SELECT count(*) FROM appointment_bookings WHERE booking_number = :b "
                           "AND status = 'checked_in'", b=booked["booking_number"]) == 1


def test_later_check_ins_wait_behind_earlier_ones(own: Server, items: dict, resident_card: dict) -> None:
    server, catalogue = own, items
    t = server.enrol()
    one = check_in(t, book(server, t, catalogue, resident_card, dt.timedelta(minutes=5))["appointment_code"])
    two = check_in(t, book(server, t, catalogue, resident_card, dt.timedelta(minutes=5))["appointment_code"])
    assert one.status_code == two.status_code == 201
    assert two.json()["waiting_ahead"] == one.json()["waiting_ahead"] + 1
    assert two.json()["ticket_number"] > one.json()["ticket_number"]


@pytest.mark.parametrize(("starts_in", "error"), [(dt.timedelta(hours=3), "too_early"),
                                                  (dt.timedelta(hours=-2), "too_late")])
def test_outside_the_window_is_409(own: Server, items: dict, resident_card: dict,
                                   starts_in: dt.timedelta, error: str) -> None:
    server, catalogue = own, items
    t = server.enrol()
    booked = book(server, t, catalogue, resident_card, starts_in)
    resp = check_in(t, booked["appointment_code"])
    assert resp.status_code == 409 and resp.json()["error"] == error, resp.text


def test_unknown_and_malformed_codes(own: Server) -> None:
    terminal = own.enrol()
    unknown = check_in(terminal, make_appointment_code("000101999999"))
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    good = make_appointment_code("261127000042")
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    for code in (bad_check, "YY123", "XX2611270000421", ""):
        resp = check_in(terminal, code)
        assert resp.status_code == 422, (code, resp.text)
    unsigned = terminal.call("POST", "/v1/appointments/check-in", {"appointment_code": good}, key=new_key(),
                             sign=False)
    assert unsigned.status_code == 401
