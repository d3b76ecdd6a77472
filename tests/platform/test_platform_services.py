"""好差评 ratings, 12345 consultations and appointments."""
from __future__ import annotations

import datetime as dt

import pytest
from govplatform_harness import Server, Terminal, card_from_emulator, new_key, new_visit, submission


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_rating_levels_1_to_5(terminal: Terminal, level: int) -> None:
    resp = terminal.call("POST", "/v1/ratings", {"level": level, "comment": "很方便"}, key=new_key())
    assert resp.status_code == 201 and resp.json()["level"] == level
    assert resp.json()["rating_number"].startswith("PJ")


@pytest.mark.parametrize("level", [0, 6, -1, 3.5, "5", True, None])
def test_rating_outside_1_to_5_is_422(terminal: Terminal, level: object) -> None:
    resp = terminal.call("POST", "/v1/ratings", {"level": level}, key=new_key())
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "level"


def test_rating_of_an_application(terminal: Terminal, catalogue: dict, resident_card: dict, server: Server) -> None:
    item = next(i for i in catalogue["items"] if i["kind"] == "certificate")
    receipt = terminal.call("POST", "/v1/applications", submission(item, resident_card),
                            key=new_key()).json()["receipt_number"]
    key = new_key()
    resp = terminal.call("POST", "/v1/ratings", {"level": 4, "receipt_number": receipt}, key=key)
    assert resp.status_code == 201
    assert terminal.call("POST", "/v1/ratings", {"level": 4, "receipt_number": receipt}, key=key).json() == resp.json()
    assert server.db_count("SELECT count(*) FROM ratings WHERE receipt_number = :r", r=receipt) == 1
    resp = terminal.call("POST", "/v1/ratings", {"level": 4, "receipt_number": "SQ20990101000001"}, key=new_key())
    assert resp.status_code == 404


@pytest.mark.parametrize("kind", ["consultation", "complaint", "suggestion", "help"])
def test_consultation_kinds(terminal: Terminal, kind: str) -> None:
    resp = terminal.call("POST", "/v1/consultations", {"kind": kind, "text": "退休手续需要哪些材料？",
                                                       "contact_phone": "13800000011"}, key=new_key())
    assert resp.status_code == 201
    data = resp.json()
    assert data["kind"] == kind and data["status"] == "received" and data["hotline"] == "12345"
    assert data["ticket_number"].startswith("GD")


def test_consultation_checks(terminal: Terminal) -> None:
    for body, field in [({"kind": "gossip", "text": "x"}, "kind"), ({"kind": "help", "text": "   "}, "text"),
                        ({"kind": "help", "text": ""}, "text"), ({"kind": "help", "text": "x" * 2001}, "text"),
                        ({"kind": "help", "text": "x", "contact_phone": "12"}, "contact_phone")]:
        resp = terminal.call("POST", "/v1/consultations", body, key=new_key())
        assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == field, body
    key = new_key()
    assert terminal.call("POST", "/v1/consultations", {"kind": "help", "text": "a"}, key=key).status_code == 201
    assert terminal.call("POST", "/v1/consultations", {"kind": "help", "text": "b"}, key=key).status_code == 409


def test_free_slots_and_booking(server: Server, catalogue: dict, resident_card: dict) -> None:
    t = server.enrol()
    item = next(i for i in catalogue["items"] if i["kind"] == "appointment")
    resp = t.call("GET", f"/v1/appointments/slots?item_id={item['id']}")
    assert resp.status_code == 200
    slots = resp.json()["slots"]
    assert slots, "the platform seeds a few days of slots"
    now = dt.datetime.now(dt.UTC)
    assert all(dt.datetime.fromisoformat(s["starts_at"]) > now and s["remaining"] > 0 for s in slots)
    slot = slots[0]

    visit = new_visit()
    token = t.identify(resident_card, visit_id=visit)["citizen_token"]
    body = {"slot_id": slot["slot_id"], "item_id": item["id"], "visit_id": visit}
    key = new_key()
    booked = t.call("POST", "/v1/appointments", body, token=token, key=key)
    assert booked.status_code == 201, booked.text
    assert booked.json()["slot"]["remaining"] == slot["remaining"] - 1
    assert booked.json()["booking_number"].startswith("YY")
    assert t.call("POST", "/v1/appointments", body, token=token, key=key).json() == booked.json()
    again = t.call("POST", "/v1/appointments", body, token=token, key=new_key())
    assert again.status_code == 409 and again.json()["error"] == "already_booked"
    assert server.db_count("SELECT booked FROM appointment_slots WHERE id = :i", i=slot["slot_id"]) == 1

    # fill the slot with other citizens, then it is full
    others = ["resident-long-term", "resident-rare-name", "resident-long-address"]
    results = []
    for name in others[: slot["remaining"]]:
        v = new_visit()
        tok = t.identify(card_from_emulator(name), visit_id=v)["citizen_token"]
        results.append(t.call("POST", "/v1/appointments", dict(body, visit_id=v), token=tok, key=new_key()))
    assert [r.status_code for r in results[:-1]] == [201] * (len(results) - 1)
    assert results[-1].status_code == 409 and results[-1].json()["error"] == "slot_full"
    free = t.call("GET", f"/v1/appointments/slots?item_id={item['id']}").json()["slots"]
    assert slot["slot_id"] not in [s["slot_id"] for s in free]


def test_booking_needs_token_of_this_visit(server: Server, catalogue: dict, resident_card: dict) -> None:
    t = server.enrol()
    item = next(i for i in catalogue["items"] if i["kind"] == "appointment")
    slot = t.call("GET", f"/v1/appointments/slots?item_id={item['id']}").json()["slots"][-1]
    body = {"slot_id": slot["slot_id"], "item_id": item["id"], "visit_id": new_visit()}
    assert t.call("POST", "/v1/appointments", body, key=new_key()).status_code == 401
    token = t.identify(resident_card)["citizen_token"]
    resp = t.call("POST", "/v1/appointments", body, token=token, key=new_key())
    assert resp.status_code == 403 and "another visit" in resp.json()["message"]


def test_slots_for_unknown_item_and_unknown_slot(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    assert terminal.call("GET", "/v1/appointments/slots?item_id=no-such-item").status_code == 404
    assert terminal.call("GET", "/v1/appointments/slots").status_code == 422
    item = next(i for i in catalogue["items"] if i["kind"] != "appointment")
    assert terminal.call("GET", f"/v1/appointments/slots?item_id={item['id']}").json()["slots"] == []
    visit = new_visit()
    token = terminal.identify(resident_card, visit_id=visit)["citizen_token"]
    resp = terminal.call("POST", "/v1/appointments", {"slot_id": 999999, "item_id": item["id"], "visit_id": visit},
                         token=token, key=new_key())
    assert resp.status_code == 404
