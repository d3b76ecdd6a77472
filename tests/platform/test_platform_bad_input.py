"""Bad input gets a 4xx with a message a technician can act on; never a 500."""
from __future__ import annotations

import pytest
import requests
from govplatform_harness import Server, Terminal, check_contract, new_key, new_visit


def test_malformed_json_is_400(terminal: Terminal) -> None:
    resp = terminal.call("POST", "/v1/ratings", raw=b'{"level": 5,,}', key=new_key())
    assert resp.status_code == 400 and resp.json()["error"] == "malformed_json"
    assert "not valid JSON" in resp.json()["message"]


def test_not_utf8_is_4xx(terminal: Terminal) -> None:
    resp = terminal.call("POST", "/v1/ratings", raw=b'{"comment": "\xff\xfe"}', key=new_key())
    assert resp.status_code in (400, 422) and resp.json()["message"]


@pytest.mark.parametrize("raw", [b"[]", b"5", b'"text"', b"null", b""])
def test_body_of_the_wrong_shape_is_422(terminal: Terminal, raw: bytes) -> None:
    resp = terminal.call("POST", "/v1/consultations", raw=raw, key=new_key())
    assert resp.status_code == 422, resp.text
    assert resp.json()["fields"]


def test_wrong_types_name_the_field(terminal: Terminal, resident_card: dict) -> None:
    resp = terminal.call("POST", "/v1/citizens/identify", {"visit_id": new_visit(),
                                                           "card": dict(resident_card, birth_date=19900307)})
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "card.birth_date"
    resp = terminal.call("POST", "/v1/citizens/identify", {"visit_id": new_visit(), "card": resident_card,
                                                           "face_check": {"method": "x", "passed": "yes"}})
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "face_check.passed"
    resp = terminal.call("POST", "/v1/citizens/identify", {"visit_id": 7, "card": resident_card, "extra": 1})
    fields = {p["field"]: p["problem"] for p in resp.json()["fields"]}
    assert resp.status_code == 422 and "visit_id" in fields and fields["extra"] == "not a known field: remove it"


def test_naive_submitted_at_is_422(terminal: Terminal, catalogue: dict, resident_card: dict) -> None:
    from govplatform_harness import submission

    body = submission(catalogue["items"][0], resident_card, submitted_at="2025-03-01T10:00:00")
    resp = terminal.call("POST", "/v1/applications", body, key=new_key())
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "submitted_at"


def test_huge_body_is_413(terminal: Terminal) -> None:
    raw = b'{"kind": "help", "text": "' + b"x" * (1024 * 1024) + b'"}'
    resp = terminal.call("POST", "/v1/consultations", raw=raw, key=new_key())
    assert resp.status_code == 413 and resp.json()["error"] == "body_too_large"
    assert "1048576" in resp.json()["message"]


def test_huge_chunked_body_is_413(server: Server) -> None:
    def chunks():  # no Content-Length: the platform counts as it reads
        for _ in range(40):
            yield b"x" * 65536

    resp = requests.post(f"{server.url}/v1/terminals/enrol", data=chunks(), timeout=30,
                         headers={"Content-Type": "application/json"})
    check_contract(resp)
    assert resp.status_code == 413


def test_unknown_path_and_method(terminal: Terminal, server: Server) -> None:
    resp = terminal.call("GET", "/v1/nothing-here")
    assert resp.status_code == 404 and "no such endpoint" in resp.json()["message"]
    resp = requests.delete(f"{server.url}/v1/health", timeout=5)  # only GET /v1/health is unsigned
    assert resp.status_code == 401
    resp = terminal.call("DELETE", "/v1/health")
    assert resp.status_code == 405 and resp.json()["error"] == "method_not_allowed"


def test_enrol_with_junk(server: Server) -> None:
    for body in [b"{", b'{"enrolment_code": 5}', b'{"enrolment_code": "x", "terminal_id": "../../etc"}']:
        resp = requests.post(f"{server.url}/v1/terminals/enrol", data=body, timeout=5,
                             headers={"Content-Type": "application/json"})
        check_contract(resp)
        assert 400 <= resp.status_code < 500, resp.text


def test_logs_hold_no_personal_data(server: Server, terminal: Terminal, catalogue: dict,
                                    resident_card: dict) -> None:
    from govplatform_harness import submission

    terminal.identify(resident_card)
    item = next(i for i in catalogue["items"] if i["kind"] == "certificate")
    assert terminal.call("POST", "/v1/applications", submission(item, resident_card), key=new_key()).status_code == 201
    log = server.log_text()
    assert "110101********0011" in log  # masked ID numbers are there to tell visits apart
    for secret in (resident_card["id_number"], resident_card["name"], resident_card["address"]):
        assert secret not in log


def test_absurd_headers_and_bodies_are_4xx(terminal: Terminal, resident_card: dict) -> None:
    from govapi.signing import sign_headers

    headers = sign_headers(terminal.keys, terminal.terminal_id, "GET", "/v1/catalogue", b"")
    for name, value in [("X-Timestamp", "1" + "0" * 400), ("X-Timestamp", "-5"), ("X-Timestamp", "1_7"),
                        ("X-Terminal-Id", terminal.terminal_id + "x" * 64)]:
        resp = terminal.call("GET", "/v1/catalogue", sign=False, headers={**headers, name: value})
        assert resp.status_code == 401, (name, value, resp.text)
    deep = b"[" * 100_000 + b"]" * 100_000
    resp = terminal.call("POST", "/v1/ratings", raw=deep, key=new_key())
    assert 400 <= resp.status_code < 500
    resp = terminal.call("POST", "/v1/consultations", {"kind": "help", "text": "a\x00b"}, key=new_key())
    assert resp.status_code == 422 and "NUL" in resp.json()["message"]
    resp = terminal.call("POST", "/v1/citizens/identify", {"visit_id": new_visit(),
                                                           "card": dict(resident_card, name="张\x00三")})
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "card.name"


def test_unexpected_error_is_a_logged_500_without_personal_data(tmp_path, caplog) -> None:
    """The safety net: a bug (not bad input) answers 500 with a reference; the log masks ID numbers."""
    import asyncio
    import logging

    import httpx

    from govplatform.app import create_app
    from govplatform.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, database_url=""))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("lookup failed for 110101199003070011")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform") as client:
            return await client.get("/boom")

    with caplog.at_level(logging.ERROR, logger="govplatform.errors"):
        resp = asyncio.run(get())
    app.state.platform.db.dispose()
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"] == "internal" and "reference" in body["message"]
    assert "110101199003070011" not in resp.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "110101********0011" in logged and "110101199003070011" not in logged
    assert body["message"].split("reference ")[1].split(")")[0] in logged
