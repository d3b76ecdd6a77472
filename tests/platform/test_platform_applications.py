"""Applications: idempotent submission, catalogue validation, fan-out, status and history."""
from __future__ import annotations

from typing import Any

from govplatform_harness import (
    PASSED_FACE,
    Server,
    Terminal,
    answers_for,
    card_from_emulator,
    find_item,
    materials_for,
    new_key,
    submission,
    synthetic_card,
)


def _bundle(catalogue: dict[str, Any]) -> dict[str, Any]:
    """A personal "一件事" with cooperating departments and a material that may be promised."""
    return find_item(catalogue, lambda i: i["kind"] == "bundle" and i["category"] == "个人"
                     and i["cooperating_departments"] and any(m["promise_allowed"] for m in i["materials"]))


def _count_by_key(server: Server, terminal: Terminal, key: str) -> int:
    return server.db_count("SELECT count(*) FROM applications a JOIN idempotency_records r ON "
                           "r.response LIKE '%' || a.receipt_number || '%' WHERE r.terminal_id = :t AND r.key = :k",
                           t=terminal.terminal_id, k=key)


def test_submit_fans_out_to_every_department(terminal: Terminal, server: Server, catalogue: dict,
                                             resident_card: dict) -> None:
    item = _bundle(catalogue)
    body = submission(item, resident_card, face_check=PASSED_FACE)
    resp = terminal.call("POST", "/v1/applications", body, key=new_key())
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert data["status"] == "accepted" and data["receipt_number"].startswith("SQ")
    expected = [item["lead_department"]["id"]] + [d["id"] for d in item["cooperating_departments"]]
    assert [d["department"] for d in data["departments"]] == expected
    assert data["departments"][0]["role"] == "lead"
    assert all(d["role"] == "cooperating" for d in data["departments"][1:])
    rows = server.db_count("SELECT count(*) FROM department_tasks t JOIN applications a ON a.id = t.application_id "
                           "WHERE a.receipt_number = :r", r=data["receipt_number"])
    assert rows == len(expected)


def test_repeat_with_same_key_and_body_gives_the_same_receipt_once(terminal: Terminal, server: Server,
                                                                   catalogue: dict, resident_card: dict) -> None:
    item = _bundle(catalogue)
    body = submission(item, resident_card)
    key = new_key()
    first = terminal.call("POST", "/v1/applications", body, key=key)
    assert first.status_code == 201
    before = server.db_count("SELECT count(*) FROM applications")
    again = terminal.call("POST", "/v1/applications", body, key=key)  # freshly signed: a retry, not a replay
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert server.db_count("SELECT count(*) FROM applications") == before
    assert server.db_count("SELECT count(*) FROM applications WHERE receipt_number = :r",
                           r=first.json()["receipt_number"]) == 1
    assert _count_by_key(server, terminal, key) == 1


def test_same_key_with_another_body_is_409(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    item = _bundle(catalogue)
    key = new_key()
    body = submission(item, resident_card)
    assert terminal.call("POST", "/v1/applications", body, key=key).status_code == 201
    other = dict(body, visit_id="visit-other-000")
    resp = terminal.call("POST", "/v1/applications", other, key=key)
    assert resp.status_code == 409 and resp.json()["error"] == "idempotency_conflict"
    assert "new key" in resp.json()["message"]
    # the same key on another endpoint is a conflict too
    resp = terminal.call("POST", "/v1/ratings", {"level": 5}, key=key)
    assert resp.status_code == 409


def test_keys_are_per_terminal(server: Server, catalogue: dict, resident_card: dict) -> None:
    a, b = server.enrol(), server.enrol()
    item = _bundle(catalogue)
    key = new_key()
    ra = a.call("POST", "/v1/applications", submission(item, resident_card), key=key)
    rb = b.call("POST", "/v1/applications", submission(item, resident_card), key=key)
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["receipt_number"] != rb.json()["receipt_number"]


def test_missing_key_is_422(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    resp = terminal.call("POST", "/v1/applications", submission(_bundle(catalogue), resident_card))
    assert resp.status_code == 422
    assert {"field": "header.Idempotency-Key", "problem": "required"} in resp.json()["fields"]
    resp = terminal.call("POST", "/v1/applications", submission(_bundle(catalogue), resident_card), key="short")
    assert resp.status_code == 422


def test_missing_required_field_is_422(terminal: Terminal, server: Server, catalogue: dict,
                                       resident_card: dict) -> None:
    item = _bundle(catalogue)
    required = next(f for f in item["form"] if f["required"])
    answers = answers_for(item)
    del answers[required["key"]]
    before = server.db_count("SELECT count(*) FROM applications")
    key = new_key()
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, answers=answers), key=key)
    assert resp.status_code == 422
    assert {"field": f"answers.{required['key']}", "problem": f"required ({required['label']['zh-CN']})"} \
        in resp.json()["fields"]
    assert server.db_count("SELECT count(*) FROM applications") == before
    # a refusal is not remembered: the corrected submission may use the same key
    assert terminal.call("POST", "/v1/applications", submission(item, resident_card), key=key).status_code == 201


def test_promise_only_where_allowed(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    item = find_item(catalogue, lambda i: any(not m["promise_allowed"] for m in i["materials"])
                     and any(m["promise_allowed"] for m in i["materials"]))
    strict = next(m for m in item["materials"] if not m["promise_allowed"])
    lenient = next(m for m in item["materials"] if m["promise_allowed"])
    mats = [dict(m, provided="promise") if m["id"] == strict["id"] else m for m in materials_for(item)]
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, materials=mats), key=new_key())
    assert resp.status_code == 422
    n = next(i for i, m in enumerate(mats) if m["id"] == strict["id"])
    problem = next(p for p in resp.json()["fields"] if p["field"] == f"materials[{n}].provided")
    assert "cannot be promised" in problem["problem"]

    mats = [{"id": m["id"], "provided": "promise"} if m["id"] == lenient["id"] else m for m in materials_for(item)]
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, materials=mats), key=new_key())
    assert resp.status_code == 201, resp.text
    token = terminal.identify(resident_card)["citizen_token"]
    detail = terminal.call("GET", f"/v1/applications/{resp.json()['receipt_number']}", token=token).json()
    assert [c["material_id"] for c in detail["commitments"]] == [lenient["id"]]
    assert detail["commitments"][0]["commitment"] == lenient["commitment"]


def test_required_material_missing_and_unknown_material(terminal: Terminal, catalogue: dict,
                                                        resident_card: dict) -> None:
    item = find_item(catalogue, lambda i: any(m["required"] for m in i["materials"]))
    required = next(m for m in item["materials"] if m["required"])
    mats = [m for m in materials_for(item) if m["id"] != required["id"]] + [{"id": "no_such_paper", "provided": "scan"}]
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, materials=mats), key=new_key())
    assert resp.status_code == 422
    problems = {p["field"]: p["problem"] for p in resp.json()["fields"]}
    assert f"required material '{required['id']}'" in problems["materials"]
    assert f"materials[{len(mats) - 1}].id" in problems


def test_e_licence_only_when_the_citizen_holds_it(terminal: Terminal, catalogue: dict) -> None:
    card = card_from_emulator("resident")
    item = find_item(catalogue, lambda i: any(m["e_licence"] == "id_card" for m in i["materials"]))
    held = materials_for(item, held={"id_card", "household_register", "social_security_card",
                                      "property_certificate", "driving_licence"})
    resp = terminal.call("POST", "/v1/applications", submission(item, card, materials=held), key=new_key())
    assert resp.status_code == 201, resp.text
    stranger = synthetic_card()  # the platform holds no file, so no e-licences
    resp = terminal.call("POST", "/v1/applications", submission(item, stranger, materials=held), key=new_key())
    assert resp.status_code == 422 and "holds no e-licence" in resp.text


def test_answer_types_are_checked(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    item = find_item(catalogue, lambda i: any(f["type"] == "choice" for f in i["form"]))
    choice = next(f for f in item["form"] if f["type"] == "choice")
    answers = dict(answers_for(item), **{choice["key"]: "not-a-choice", "no_such_field": "x"})
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, answers=answers), key=new_key())
    assert resp.status_code == 422
    fields = {p["field"] for p in resp.json()["fields"]}
    assert {f"answers.{choice['key']}", "answers.no_such_field"} <= fields


def test_unknown_item_is_404(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    body = submission(catalogue["items"][0], resident_card, item_id="no-such-item")
    resp = terminal.call("POST", "/v1/applications", body, key=new_key())
    assert resp.status_code == 404 and "no-such-item" in resp.json()["message"]


def test_status_and_my_applications(server: Server, catalogue: dict, resident_card: dict) -> None:
    t = server.enrol()
    item = _bundle(catalogue)
    accepted = t.call("POST", "/v1/applications", submission(item, resident_card), key=new_key())
    receipt = accepted.json()["receipt_number"]
    token = t.identify(resident_card)["citizen_token"]
    resp = t.call("GET", f"/v1/applications/{receipt}", token=token)
    assert resp.status_code == 200
    detail = resp.json()
    assert detail["status"] == "accepted" and detail["title"] == item["title"]
    assert detail["history"][0]["status"] == "accepted"
    assert len(detail["history"]) == 1 + len(detail["departments"])
    mine = t.call("GET", "/v1/citizens/me/applications", token=token).json()["applications"]
    assert receipt in [a["receipt_number"] for a in mine]
    # another citizen sees neither the application nor that it exists
    other = t.identify(card_from_emulator("resident-long-term"))["citizen_token"]
    resp = t.call("GET", f"/v1/applications/{receipt}", token=other)
    assert resp.status_code == 404
    assert receipt not in str(t.call("GET", "/v1/citizens/me/applications", token=other).json())
    assert t.call("GET", f"/v1/applications/{receipt}").status_code == 401


def test_face_check_required_for_submissions_when_configured(strict_server: Server, resident_card: dict) -> None:
    t = strict_server.enrol()
    item = t.call("GET", "/v1/catalogue").json()["items"][0]
    body = submission(item, resident_card)
    resp = t.call("POST", "/v1/applications", body, key=new_key())
    assert resp.status_code == 403 and resp.json()["error"] == "face_check"
