"""Certificates, public verification and progress pages, and text messages through the platform.

One platform process of this module's own (started in about a second) with a public URL and
a rate limit of its own: the public pages are limited per client address, and this module
must neither be slowed by nor eat into what other modules (the fuzzer) do on the shared one.
Every answer goes through the harness, so it is checked against govapi/openapi.json.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from govplatform_harness import (
    Server,
    Terminal,
    answers_for,
    card_from_emulator,
    check_contract,
    find_item,
    new_key,
    start_server,
    submission,
    synthetic_card,
)
from sqlalchemy import create_engine, text

PUBLIC_URL = "https://zwfw.example.gov.cn"
RATE_LIMIT = 40  # public requests per minute per address on this module's server
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{16}$")  # Crockford base32


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("govplatform-certificates"),
                            public_url=PUBLIC_URL + "/", public_rate_limit_per_minute=str(RATE_LIMIT))


@pytest.fixture(scope="module")
def kiosk(own_server: Server) -> Terminal:
    return own_server.enrol("T-CERT-0001")


@pytest.fixture(scope="module")
def items(kiosk: Terminal) -> dict[str, dict[str, Any]]:
    resp = kiosk.call("GET", "/v1/catalogue")
    assert resp.status_code == 200
    return {item["id"]: item for item in resp.json()["items"]}


def _apply(t: Terminal, item: dict[str, Any], card: dict[str, Any], **answers: str) -> str:
    body = submission(item, card, answers={**answers_for(item), **answers})
    resp = t.call("POST", "/v1/applications", body, key=new_key())
    assert resp.status_code == 201, resp.text
    return str(resp.json()["receipt_number"])


def _certificate(t: Terminal, receipt: str, card: dict[str, Any]) -> requests.Response:
    token = t.identify(card)["citizen_token"]
    return t.call("GET", f"/v1/applications/{receipt}/certificate", token=token)


def _public(server: Server, path: str, accept: str | None = None) -> requests.Response:
    """A phone's request: no signature, no token; checked against the contract like every other."""
    resp = requests.get(server.url + path, headers={"Accept": accept} if accept else {}, timeout=10)
    check_contract(resp)
    return resp


def _rows(server: Server, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _month(value: str) -> int:
    year, month = value.split("-")
    return int(year) * 12 + int(month) - 1


# -- issuing -------------------------------------------------------------------------------------
def test_certificate_is_issued_once_with_the_same_code(own_server: Server, kiosk: Terminal, items: dict) -> None:
    card = card_from_emulator("resident")  # 张三, 12 years of contributions (synthetic)
    item = items["social-insurance-record"]
    receipt = _apply(kiosk, item, card, record_type="contribution_proof", period="12m")
    first = _certificate(kiosk, receipt, card)
    assert first.status_code == 200, first.text
    doc = first.json()
    assert doc["kind"] == "social-insurance-record" and doc["title"] == item["title"]
    assert doc["holder"] == {"name": "张三", "id_number": "110101********0011"}
    assert doc["issuer"] == item["lead_department"]["zh-CN"]
    assert doc["issued_at"].endswith("+08:00")
    assert CODE.match(doc["verification_code"])
    assert doc["verify_url"] == f"{PUBLIC_URL}/verify/{doc['verification_code']}"
    summary = dict(doc["summary"])
    assert {"证明类型", "参保险种", "参保状态", "累计缴费月数", "当前缴费单位", "查询期间"} <= set(summary)
    assert summary["证明类型"] == "参保缴费证明" and summary["累计缴费月数"] == "144"
    assert summary["当前缴费单位"] == "北京示例科技有限公司"
    assert doc["table"]["columns"] == ["年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位"]
    assert all(len(row) == 5 for row in doc["table"]["rows"])
    assert any(doc["verify_url"] in note for note in doc["notes"])

    again = _certificate(kiosk, receipt, card)
    assert again.status_code == 200 and again.json() == doc
    stored = _rows(own_server, "SELECT * FROM certificates WHERE receipt_number = :r", r=receipt)
    assert len(stored) == 1
    assert stored[0]["verification_code"] == doc["verification_code"]
    assert stored[0]["holder_name_masked"] == "张*" and stored[0]["holder_id_masked"] == "110101********0011"
    assert re.fullmatch(r"[0-9a-f]{64}", stored[0]["document_sm3"])
    token = kiosk.identify(card)["citizen_token"]
    detail = kiosk.call("GET", f"/v1/applications/{receipt}", token=token).json()
    assert detail["status"] == "completed" and detail["departments"][0]["status"] == "completed"


@pytest.mark.parametrize(("card_name", "period", "rows"), [
    ("resident", "12m", 12), ("resident", "36m", 36), ("resident", "all", 144),  # 12 years on file
    ("hmt-permit", "36m", 24), ("hmt-permit", "all", 24),  # 2 years on file: capped
])
def test_periods_give_the_right_row_counts(kiosk: Terminal, items: dict, card_name: str, period: str,
                                           rows: int) -> None:
    card = card_from_emulator(card_name)
    receipt = _apply(kiosk, items["social-insurance-record"], card, period=period)
    doc = _certificate(kiosk, receipt, card).json()
    table = doc["table"]["rows"]
    assert len(table) == rows
    months = [_month(row[0]) for row in table]
    assert months == list(range(months[0], months[0] + rows)), "consecutive months, oldest first"
    issued = doc["issued_at"][:7]
    assert months[-1] == _month(issued) - 1, "up to the month before the certificate was issued"
    assert dict(doc["summary"])["本期缴费月数"] == str(rows)


def test_the_same_facts_give_the_same_document(items: dict) -> None:
    """What lets the platform store only a digest: a rebuild from the same facts is identical."""
    import datetime as dt

    from govplatform.certificates import Issue, build_document, document_sm3
    from govplatform.residents import find_resident

    card = card_from_emulator("resident")
    item = items["social-insurance-record"]
    answers = dict(answers_for(item), period="36m")

    def build(when: dt.datetime) -> Any:
        issue = Issue("7N9KS0DCGX3NCM5Y", when, "人力资源和社会保障局", item["title"], f"{PUBLIC_URL}/verify/x")
        return build_document(item, answers, card["name"], card["id_number"], find_resident(card["id_number"]), issue)

    november = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
    first, second = build(november), build(november)
    assert first == second and document_sm3(first) == document_sm3(second)
    december = build(dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC))
    assert first.table.rows[-1][0] == "2026-10" and december.table.rows[-1][0] == "2026-11"
    assert first.table.rows[1:] == december.table.rows[:-1]  # one month on, the same history
    assert document_sm3(december) != document_sm3(first)


def test_housing_fund_and_real_estate(kiosk: Terminal, items: dict) -> None:
    zhang = card_from_emulator("resident")
    housing = items["housing-fund-record"]
    certificate = _certificate(kiosk, _apply(kiosk, housing, zhang, record_type="certificate"), zhang).json()
    statement = _certificate(kiosk, _apply(kiosk, housing, zhang, record_type="statement"), zhang).json()
    assert certificate["table"]["columns"] == ["年月", "缴存基数", "单位缴存", "个人缴存", "余额"]
    assert len(certificate["table"]["rows"]) == 12 and len(statement["table"]["rows"]) == 144
    balances = [float(row[4]) for row in statement["table"]["rows"]]
    assert balances == sorted(balances) and balances[0] > 0
    assert certificate["issuer"] == housing["lead_department"]["zh-CN"]
    assert "1101000000000011" not in str(certificate)  # the account is shown masked

    estate = items["real-estate-record"]
    owns = _certificate(kiosk, _apply(kiosk, estate, zhang, purpose="school"), zhang).json()
    assert [row[1] for row in owns["table"]["rows"]] == ["京(2021)东城区不动产权第0000011号"]
    li = card_from_emulator("resident-long-term")  # 李四: no property, no housing fund account
    none = _certificate(kiosk, _apply(kiosk, estate, li, purpose="loan"), li).json()
    assert none["table"]["rows"] == [] and dict(none["summary"])["查询结果"] == "名下无不动产登记记录"
    resp = _certificate(kiosk, _apply(kiosk, housing, li), li)
    assert resp.status_code == 404 and resp.json()["error"] == "no_record"
    assert "housing fund" in resp.json()["message"]


def test_refusals(kiosk: Terminal, items: dict, catalogue_bundle: dict) -> None:
    zhang = card_from_emulator("resident")
    bundle_receipt = _apply(kiosk, catalogue_bundle, zhang)
    resp = _certificate(kiosk, bundle_receipt, zhang)
    assert resp.status_code == 409 and resp.json()["error"] == "not_a_certificate"
    assert catalogue_bundle["id"] in resp.json()["message"]

    receipt = _apply(kiosk, items["social-insurance-record"], zhang)
    other = _certificate(kiosk, receipt, card_from_emulator("resident-long-term"))  # another citizen's token
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert kiosk.call("GET", f"/v1/applications/{receipt}/certificate").status_code == 401  # no token

    stranger = synthetic_card()  # the platform holds no file for this person
    resp = _certificate(kiosk, _apply(kiosk, items["social-insurance-record"], stranger), stranger)
    assert resp.status_code == 404 and resp.json()["error"] == "no_record"
    assert "no file" in resp.json()["message"]


@pytest.fixture(scope="module")
def catalogue_bundle(items: dict) -> dict[str, Any]:
    return find_item({"items": list(items.values())},
                     lambda i: i["kind"] == "bundle" and i["category"] == "个人" and i["cooperating_departments"])


# -- public verification -------------------------------------------------------------------------
def test_verify_page_valid_unknown_and_json(own_server: Server, kiosk: Terminal, items: dict) -> None:
    card = card_from_emulator("resident")
    doc = _certificate(kiosk, _apply(kiosk, items["social-insurance-record"], card), card).json()
    code = doc["verification_code"]

    page = _public(own_server, f"/verify/{code}", "text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for shown in ("有效", "Valid", doc["title"]["zh-CN"], "张*", "110101********0011", doc["issuer"], code):
        assert shown in html
    for hidden in ("张三", card["id_number"], "13800000011", "北京示例科技有限公司", "北京市东城区", "缴费基数",
                   doc["table"]["rows"][0][1]):
        assert hidden not in html
    assert page.headers["cache-control"] == "no-store"

    data = _public(own_server, f"/verify/{code}", "application/json").json()
    assert data == {"status": "valid", "verification_code": code, "kind": "social-insurance-record",
                    "title": doc["title"], "holder": {"name": "张*", "id_number": "110101********0011"},
                    "issuer": doc["issuer"], "issued_at": doc["issued_at"]}
    typed = "-".join(code[i:i + 4] for i in range(0, 16, 4)).lower()  # as someone might type it
    assert _public(own_server, f"/verify/{typed}", "application/json").json() == data

    unknown = _public(own_server, "/verify/0000000000000000")
    assert unknown.status_code == 404 and "未找到" in unknown.text and "text/html" in unknown.headers["content-type"]
    unknown = _public(own_server, "/verify/not-a-code", "application/json")
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


# -- public progress -----------------------------------------------------------------------------
def test_progress_by_receipt_and_by_terminal_receipt(own_server: Server, kiosk: Terminal,
                                                     catalogue_bundle: dict) -> None:
    card = card_from_emulator("resident")
    local = f"L20261127-{kiosk.terminal_id}-000042"
    body = submission(catalogue_bundle, card, terminal_receipt=local,
                      answers=answers_for(catalogue_bundle))
    key = new_key()
    accepted = kiosk.call("POST", "/v1/applications", body, key=key)
    assert accepted.status_code == 201, accepted.text
    receipt = accepted.json()["receipt_number"]
    assert kiosk.call("POST", "/v1/applications", body, key=key).json() == accepted.json()  # a retry

    by_receipt = _public(own_server, f"/progress/{receipt}", "application/json").json()
    by_local = _public(own_server, f"/progress/{local}", "application/json").json()
    assert by_receipt == by_local
    assert set(by_receipt) == {"receipt_number", "title", "status", "status_text", "accepted_on", "departments"}
    assert by_receipt["receipt_number"] == receipt and by_receipt["title"] == catalogue_bundle["title"]
    assert [d["department"] for d in by_receipt["departments"]] == \
        [catalogue_bundle["lead_department"]["id"]] + [d["id"] for d in catalogue_bundle["cooperating_departments"]]
    assert set(by_receipt["departments"][0]) == {"department", "name", "role", "status", "status_text"}

    page = _public(own_server, f"/progress/{local}")
    assert page.status_code == 200 and "办件进度" in page.text and receipt in page.text
    typed = {f["key"] for f in catalogue_bundle["form"] if f["type"] in ("text", "phone", "date")}
    answers = {v for k, v in body["answers"].items() if k in typed}
    assert answers
    for hidden in ("张三", "张*", card["id_number"], "110101********0011", "13800000011", *answers):
        assert hidden not in page.text and hidden not in str(by_receipt), hidden

    assert _public(own_server, f"/progress/L20261127-{kiosk.terminal_id}-000043").status_code == 404
    missing = _public(own_server, "/progress/SQ19990101000001", "application/json")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_terminal_receipt_rules(kiosk: Terminal, catalogue_bundle: dict) -> None:
    card = card_from_emulator("resident")
    foreign = submission(catalogue_bundle, card, terminal_receipt="L20261127-T-SOMEONE-ELSE-000001")
    resp = kiosk.call("POST", "/v1/applications", foreign, key=new_key())
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "terminal_receipt"
    malformed = submission(catalogue_bundle, card, terminal_receipt="20261127-000001")
    assert kiosk.call("POST", "/v1/applications", malformed, key=new_key()).status_code == 422
    local = f"L20261127-{kiosk.terminal_id}-000077"
    assert kiosk.call("POST", "/v1/applications", submission(catalogue_bundle, card, terminal_receipt=local),
                      key=new_key()).status_code == 201
    again = kiosk.call("POST", "/v1/applications", submission(catalogue_bundle, card, terminal_receipt=local),
                       key=new_key())
    assert again.status_code == 409 and again.json()["error"] == "terminal_receipt_taken"


# -- text messages -------------------------------------------------------------------------------
def test_sms_is_stored_masked_and_idempotent(own_server: Server, kiosk: Terminal, catalogue_bundle: dict) -> None:
    card = card_from_emulator("resident")
    receipt = _apply(kiosk, catalogue_bundle, card)
    token = kiosk.identify(card)["citizen_token"]
    key = new_key()
    first = kiosk.call("POST", f"/v1/applications/{receipt}/sms", token=token, key=key)
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["receipt_number"] == receipt and answer["sent_to"] == "138****0011" and answer["message_id"]
    again = kiosk.call("POST", f"/v1/applications/{receipt}/sms", token=token, key=key)
    assert again.status_code == 202 and again.json() == answer
    assert again.headers.get("Idempotent-Replayed") == "true"

    stored = _rows(own_server, "SELECT * FROM sms_messages WHERE receipt_number = :r", r=receipt)
    assert len(stored) == 1
    row = stored[0]
    assert row["message_id"] == answer["message_id"] and row["phone_masked"] == "138****0011"
    assert "13800000011" not in str(row) and re.fullmatch(r"[0-9a-f]{64}", row["phone_hash"])
    assert receipt in row["text"] and f"{PUBLIC_URL}/progress/{receipt}" in row["text"]
    for personal in (card["name"], card["id_number"]):
        assert personal not in row["text"]
    assert "13800000011" not in own_server.log_text() and card["id_number"] not in own_server.log_text()

    other_key = kiosk.call("POST", f"/v1/applications/{receipt}/sms", token=token, key=new_key())
    assert other_key.status_code == 202 and other_key.json()["message_id"] != answer["message_id"]
    other = kiosk.identify(card_from_emulator("resident-long-term"))["citizen_token"]
    assert kiosk.call("POST", f"/v1/applications/{receipt}/sms", token=other, key=new_key()).status_code == 404


def test_sms_without_a_number_on_file_is_409(own_server: Server, kiosk: Terminal, catalogue_bundle: dict) -> None:
    stranger = synthetic_card(sequence=359)
    receipt = _apply(kiosk, catalogue_bundle, stranger)
    token = kiosk.identify(stranger)["citizen_token"]
    resp = kiosk.call("POST", f"/v1/applications/{receipt}/sms", token=token, key=new_key())
    assert resp.status_code == 409 and resp.json()["error"] == "no_phone"
    assert resp.json()["message"].startswith("no mobile number on file")
    assert own_server.db_count("SELECT count(*) FROM sms_messages WHERE receipt_number = :r", r=receipt) == 0


def test_the_kiosk_client_methods(own_server: Server, kiosk: Terminal, items: dict) -> None:
    from kiosk.govclient import PlatformClient, new_idempotency_key

    client = PlatformClient(own_server.url, kiosk.terminal_id, kiosk.keys, retries=0)
    card = card_from_emulator("resident")
    receipt = _apply(kiosk, items["real-estate-record"], card)
    token = kiosk.identify(card)["citizen_token"]
    doc = client.certificate(receipt, token)
    assert doc["kind"] == "real-estate-record" and client.certificate(receipt, token) == doc
    key = new_idempotency_key()
    sent = client.send_sms(receipt, token, key)
    assert sent["sent_to"] == "138****0011" and client.send_sms(receipt, token, key) == sent


# -- last: it uses up this server's public allowance -------------------------------------------------
def test_public_pages_are_rate_limited(own_server: Server) -> None:
    answers = [_public(own_server, "/progress/SQ19990101000002", "application/json") for _ in range(RATE_LIMIT + 1)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, "the allowance of this client address was never used up"
    assert limited[0].json()["error"] == "rate_limited" and int(limited[0].headers["Retry-After"]) >= 1
    page = _public(own_server, "/verify/0000000000000000")
    assert page.status_code == 429 and "请稍后再试" in page.text
