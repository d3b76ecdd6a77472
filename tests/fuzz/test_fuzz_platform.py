"""Fuzzing what the terminal parses from the government service platform: HTTP answers (status,
body, JSON shape) through kiosk/govclient.py, the catalogue (kiosk/catalogue.py), and what
kiosk/platform_link.py and kiosk/delivery.py make of each answer while a citizen waits.

The platform side is fuzzed by schemathesis (tests/platform/test_platform_fuzz.py); here the
platform is the one misbehaving. Every call goes through a fake `requests` session whose
answers are drawn per request: the platform's real answer shape (the reference platform's
own catalogue, and one template per endpoint) with a few nodes replaced, dropped or wrapped;
any JSON; bytes that are not JSON; 4xx/5xx; timeouts and dropped connections.

The contract checked is the one the modules document: the client raises only PlatformError;
the link's quick calls give the visit a value or "nothing" (never an exception); a
submission is a Receipt, SubmissionRefused or SubmitError, and whatever the answer, the
application is in the outbox exactly once, delivered only when the platform said so.
"""
from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
from fuzzing import fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from terminal_config import write_config

from config.loader import load_config
from devices.idcard.identity import IdentityCard
from govapi.signing import ECDSA_P256_SHA256, KeyPair
from govplatform.catalogue import load_catalogue
from kiosk import certificates, materials
from kiosk.catalogue import Catalogue, CatalogueError
from kiosk.govclient import CitizenToken, PlatformClient, PlatformError, PlatformUnavailable
from kiosk.outbox import DELIVERED, PENDING, REJECTED
from kiosk.platform_link import PlatformLink
from kiosk.session import Session
from kiosk.visit import Receipt, SubmissionRefused, SubmitError

# -- answers ---------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)


@functools.cache
def _catalogue() -> dict[str, Any]:
    return load_catalogue()


def _template(path: str) -> Any:
    """The answer the reference platform gives on `path`, by endpoint."""
    if path == "/v1/catalogue":
        return _catalogue()
    if path.endswith("/identify"):
        return {"citizen_token": "ct_fuzz", "expires_at": "2026-06-01T10:00:00+08:00",
                "citizen": {"known": True, "display_name": "张*"}}
    if path.endswith("/licences"):
        return {"licences": [{"type": "id_card", "number": "1101**********0011", "title": {"zh-CN": "身份证"}},
                             {"type": "household_register", "number": "HR-1"}]}
    if path.endswith("/benefits"):
        return {"benefits": [{"id": "b1", "title": {"zh-CN": "高龄津贴", "en": "Old-age allowance"},
                              "status": "eligible"}]}
    if path.endswith("/me/applications"):
        return {"applications": [{"receipt_number": "R1", "status": "accepted", "item_id": "x"}]}
    if path.endswith("/prefill"):
        return {"values": {"name": {"value": "张三", "source": "identity"}, "phone": "13800000000"}}
    if path.startswith("/v1/scans/"):
        return {"reference": "scan:" + path.rsplit("/", 1)[-1], "media_type": "image/jpeg", "size": 3}
    if path == "/v1/applications":
        return {"receipt_number": "R20260601-0001", "status": "accepted"}
    if path == "/v1/consultations":
        return {"ticket_number": "T-0001", "hotline": "12345"}
    if path == "/v1/ratings":
        return {"rating_number": "P-0001"}
    if path.endswith("/certificate"):
        return _CERTIFICATE
    if path.endswith("/check-in"):
        return {"ticket_number": "A012", "waiting_ahead": 3, "counter": {"zh-CN": "3号窗口"}}
    return {"status": "ok"}


_CERTIFICATE = {  # the shape the reference platform issues (kiosk/certificates.py parse_certificate)
    "kind": "social-insurance-record",
    "title": {"zh-CN": "社会保险个人权益记录", "en": "Social insurance personal rights record"},
    "holder": {"name": "张三", "id_number": "110101********1234"},
    "issuer": "某市社会保险事业管理中心",
    "issued_at": "2026-11-27T10:00:00+08:00",
    "verification_code": "SI-2026-8F3K-22QX",
    "verify_url": "https://zwfw.example.gov.cn/verify/SI-2026-8F3K-22QX",
    "summary": [["参保险种", "职工基本养老保险"], ["累计缴费月数", 12]],
    "table": {"columns": ["年月", "缴费基数", "单位缴纳", "个人缴纳"],
              "rows": [["2025-12", "8000.00", 1280.0, 640], ["2026-01", "8000.00", 1280.0, 640]]},
    "notes": ["本记录由自助终端打印，与经办机构柜台出具的记录具有同等效力。"],
}


@functools.cache
def _paths(path: str) -> tuple[tuple[Any, ...], ...]:
    """Every node of an endpoint's template, as a key path (the root is ())."""
    out: list[tuple[Any, ...]] = []

    def walk(node: Any, at: tuple[Any, ...]) -> None:
        out.append(at)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, at + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, at + (i,))

    walk(_template(path), ())
    return tuple(out)


@st.composite
def shaped(draw: st.DrawFn, path: str) -> Any:
    """The endpoint's real answer with up to three nodes replaced, dropped or wrapped in a list."""
    answer = copy.deepcopy(_template(path))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.sampled_from(_paths(path)))
        action = draw(st.sampled_from(["replace", "replace", "drop", "wrap", "empty"]))
        if not at:
            answer = draw(json_values) if action == "replace" else [answer] if action == "wrap" else {}
            continue
        try:
            parent = functools.reduce(lambda node, key: node[key], at[:-1], answer)
            node = parent[at[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced that part
        if not isinstance(parent, (dict, list)):
            continue  # an earlier edit made the parent a text: "abc"[0] reads, but cannot be edited
        if action == "drop":
            del parent[at[-1]]
        else:
            parent[at[-1]] = (draw(json_values) if action == "replace" else [node] if action == "wrap"
                              else type(node)() if isinstance(node, (dict, list, str)) else None)
    return answer


_STATUS = st.sampled_from([200] * 8 + [201, 202, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]) \
    | st.integers(100, 599)


@st.composite
def answers(draw: st.DrawFn, path: str) -> Any:
    """One HTTP answer (status, Content-Type, body bytes) or a transport failure."""
    kind = draw(st.sampled_from(["shaped"] * 8 + ["json", "bytes", "empty", "timeout", "refused", "aborted"]))
    if kind in ("timeout", "refused", "aborted"):
        return kind
    status = draw(_STATUS) if kind != "shaped" else draw(st.sampled_from([200] * 6 + [201, 204, 400, 404, 503]))
    if kind == "shaped":
        body = json.dumps(draw(shaped(path)), ensure_ascii=False).encode()
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=64) | st.sampled_from([b"null", b"[]", b"\"x\"", b"<html>502</html>",
                                                                   b"\xff\xfe{", b"{\"a\":"]))
    else:
        body = b""
    ctype = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/html", ""]))
    return status, ctype, body


class FakeSession:
    """Stands in for requests.Session: each request gets an answer drawn from `data`, or from
    `script` (path suffix -> answer) for a fixed reproducer."""

    def __init__(self, data: st.DataObject | None = None, script: dict[str, Any] | None = None) -> None:
        self.data = data
        self.script = script or {}
        self.calls: list[tuple[str, str, Any]] = []  # method, path, answer

    def _answer(self, method: str, path: str) -> Any:
        for suffix, answer in self.script.items():
            if path.endswith(suffix):
                return answer
        if self.data is None:
            return 200, "application/json", json.dumps(_template(path), ensure_ascii=False).encode()
        return self.data.draw(answers(path), label=f"{method} {path}")

    def request(self, method: str, url: str, data: Any = None, headers: Any = None, timeout: Any = None) -> Any:
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        answer = self._answer(method, path)
        self.calls.append((method, path, answer))
        if answer == "timeout":
            raise requests.ReadTimeout("fuzz: read timed out")
        if answer == "refused":
            raise requests.ConnectionError("fuzz: [Errno 111] Connection refused")
        if answer == "aborted":
            raise requests.ConnectionError("('Connection aborted.', RemoteDisconnected('fuzz'))")
        status, ctype, body = answer
        resp = requests.Response()
        resp.status_code = status
        resp._content = body
        resp.headers = CaseInsensitiveDict({"Content-Type": ctype} if ctype else {})
        resp.encoding = "utf-8" if "charset" in ctype else None
        resp.reason = "FUZZ"
        resp.url = url
        return resp

    def accepted(self, method: str, path: str) -> bool:
        """Whether the platform answered `method path` with a 2xx JSON object at least once."""
        for m, p, answer in self.calls:
            if (m, p) == (method, path) and isinstance(answer, tuple) and answer[0] < 400:
                try:
                    if isinstance(json.loads(answer[2]), dict):
                        return True
                except ValueError:
                    pass
        return False


def _ok(body: Any, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", body if isinstance(body, bytes) else json.dumps(body).encode()


# -- one terminal's link, shared by the examples -------------------------------------------------------------
class Shared:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-platform-")
        root = Path(self._tmp.name)
        cfg = load_config(write_config(root, {}), environ={})
        cfg.platform.url = "http://platform.fuzz.invalid"
        data_dir = root / "data"
        key = KeyPair.generate(ECDSA_P256_SHA256)  # SM2 in pure Python would cost 11 ms a request
        key.save(data_dir / cfg.platform.key_file if not Path(cfg.platform.key_file).is_absolute()
                 else Path(cfg.platform.key_file))
        self.link = PlatformLink(cfg, data_dir)
        for client in (self.link.client, self.link.quick, self.link.background):
            client.backoff_s = 0.0  # retries without sleeping: the fake answers at once
        assert self.link.enrolled
        self.catalogue = Catalogue.from_platform(_catalogue())
        self.service = next(s for s in self.catalogue.services() if s.materials)

    def use(self, data: st.DataObject | None = None, script: dict[str, Any] | None = None) -> FakeSession:
        session = FakeSession(data, script)
        self.link.client.session = session  # type: ignore[assignment]
        self.link.quick.session = session  # type: ignore[assignment]
        self.link.background.session = session  # type: ignore[assignment]
        return session


@functools.cache
def shared() -> Shared:
    return Shared()


def _citizen(token: bool = True) -> Session:
    session = Session()
    session.identity = IdentityCard("resident", name="张三", id_number="110101199003070011",
                                    address="北京市东城区示例街道测试路1号")
    if token:
        session.citizen_token = CitizenToken("ct_fuzz", "2026-06-01T10:00:00+08:00", True, "张*")
    return session


# -- the client ----------------------------------------------------------------------------------------------
_CALLS = {
    "catalogue": lambda c: c.catalogue(),
    "prefill": lambda c: c.prefill("birth-registration", "ct"),
    "licences": lambda c: c.licences("ct"),
    "benefits": lambda c: c.benefits("ct"),
    "my_applications": lambda c: c.my_applications("ct"),
    "submit_application": lambda c: c.submit_application({"item_id": "x"}, "k1"),
    "put_scan": lambda c: c.put_scan(b"jpeg", "image/jpeg"),
    "application": lambda c: c.application("R1", "ct"),
    "check_in": lambda c: c.check_in("YY2606010000426", "k2"),
    "certificate": lambda c: c.certificate("R1", "ct"),
    "send_sms": lambda c: c.send_sms("R1", "ct", "k3"),
    "rate": lambda c: c.rate({"level": 5}, "k4"),
    "consult": lambda c: c.consult({"kind": "help"}, "k5"),
    "health": lambda c: c.health(),
}


@fuzz(150)
@given(st.sampled_from(sorted(_CALLS)), st.data())
def test_every_client_call_returns_json_or_raises_a_platform_error(call: str, data: st.DataObject) -> None:
    client = shared().link.client
    fake = shared().use(data)
    try:
        _CALLS[call](client)
    except PlatformError as exc:
        event(f"{type(exc).__name__}")
    assert 1 <= len(fake.calls) <= 1 + client.retries


@example(b"[" * 100_000)
@fuzz(5)
@given(st.integers(2000, 200_000).map(lambda n: b"[" * n + b"]" * n))
def test_deeply_nested_json_is_a_platform_error(body: bytes) -> None:
    """Deeper than the parser's stack (every drawn depth is): "not available", never RecursionError."""
    resp = requests.Response()
    resp.status_code, resp._content, resp.headers = 200, body, CaseInsensitiveDict({"Content-Type": "application/json"})
    with pytest.raises(PlatformUnavailable, match="nested too deeply"):
        PlatformClient._decode("GET", "/v1/catalogue", resp)


_NOT_AN_OBJECT = [b"null", b"[]", b"[1]", b"\"ok\"", b"3"]


@example(_ok({"citizen": {}}))
@fuzz(150)
@given(st.one_of(shaped("/v1/citizens/identify").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_identify_gives_a_token_or_a_platform_error(answer: Any) -> None:
    shared().use(script={"/identify": answer})
    try:
        token = shared().link.client.identify("v1", {"card_type": "resident"}, {"method": "none"})
    except PlatformError:
        return
    assert answer[2] not in _NOT_AN_OBJECT
    assert isinstance(token, CitizenToken) and isinstance(token.token, str) and token.token
    assert isinstance(token.expires_at, str) and isinstance(token.display_name, str)


@example(None, _ok([None]))
@fuzz(150)
@given(st.none() | shaped("/v1/citizens/identify").map(_ok),
       st.one_of(shaped("/v1/citizens/me/licences").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_identify_leaves_the_visit_usable_whatever_the_platform_answers(identify: Any, licences: Any) -> None:
    script = {"/licences": licences}
    if identify is not None:
        script["/identify"] = identify
    shared().use(script=script)
    session = _citizen(token=False)
    shared().link.identify(session)
    held = materials.held_licences(session)
    materials.for_application(shared().service, session), materials.missing(shared().service, session)
    assert all(isinstance(v, dict) for v in held.values())


@example(_ok([]))
@fuzz(150)
@given(st.one_of(shaped("/prefill").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_prefill_gives_text_values_or_nothing(answer: Any) -> None:
    shared().use(script={"/prefill": answer})
    values = shared().link.prefill(_citizen(), shared().service)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


@example(_ok({"benefits": None}), _ok({"applications": []}))
@fuzz(150)
@given(st.one_of(shaped("/benefits").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)),
       st.one_of(shaped("/me/applications").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_the_citizen_page_is_lists_or_nothing(benefits: Any, applications: Any) -> None:
    shared().use(script={"/benefits": benefits, "/me/applications": applications})
    found = shared().link.home(_citizen())
    assert found is None or (isinstance(found[0], list) and isinstance(found[1], list))


@example(_ok(b"null"))
@fuzz(100)
@given(st.one_of(shaped("/v1/consultations").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_a_help_call_gives_a_ticket_or_a_platform_error(answer: Any) -> None:
    shared().use(script={"/v1/consultations": answer})
    try:
        ticket, hotline = shared().link.call_help("v1", None, "home")
    except PlatformError:
        return
    assert answer[2] not in _NOT_AN_OBJECT  # a non-object answer is never taken for a ticket
    assert isinstance(ticket, str) and isinstance(hotline, str)


@example(_ok({"version": "1", "items": None}))
@example(_ok(b"[]"))
@example(_ok({"items": [{"id": "x", "title": {"zh-CN": "t"}, "steps": [["abc"]]}]}))
@fuzz(200)
@given(st.one_of(shaped("/v1/catalogue").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_the_catalogue_is_fetched_or_the_kept_one_stays(answer: Any) -> None:
    shared().use(script={"/v1/catalogue": answer})
    catalogue = shared().link.fetch_catalogue()
    assert catalogue is None or isinstance(catalogue, Catalogue)


def _outbox_rows(link: PlatformLink, after_id: int = -1) -> list[tuple[int, str, bool]]:
    with link.outbox._lock:
        rows = link.outbox._db.execute("SELECT id, state, payload IS NOT NULL FROM outbox WHERE id > ? ORDER BY id",
                                       (after_id,)).fetchall()
    return [(i, state, bool(has_payload)) for i, state, has_payload in rows]


def _last_row_id(link: PlatformLink) -> int:
    with link.outbox._lock:
        return int(link.outbox._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])


@fuzz(100)
@given(st.data())
def test_a_submission_is_kept_exactly_once_and_delivered_only_when_the_platform_took_it(data: st.DataObject) -> None:
    """Durability whatever the platform answers: one new outbox row; delivered (payload erased) only
    after a 2xx object answer to POST /v1/applications; rejected only after a 4xx; else pending,
    payload kept for the next delivery round. (Which exception the citizen's confirm sees is the
    next property's business.)"""
    link = shared().link
    fake = shared().use(data)
    last = _last_row_id(link)
    outcome: object
    try:
        outcome = link.submit(_citizen(), shared().service, {"name": "张三"})
    except (SubmissionRefused, SubmitError) as exc:
        outcome = exc
    except (AttributeError, TypeError) as exc:  # the known bug below: the row must still be safe
        outcome = exc
    (_row, state, has_payload), = _outbox_rows(link, last)  # exactly one new row
    event(f"{type(outcome).__name__}, {state}")
    if state == DELIVERED:
        assert fake.accepted("POST", "/v1/applications") and not has_payload
        assert isinstance(outcome, Receipt) and outcome.delivered
    elif state == REJECTED:
        assert any(isinstance(a, tuple) and 400 <= a[0] < 500 for _, _, a in fake.calls) and has_payload
        assert isinstance(outcome, SubmissionRefused)
    else:
        assert state == PENDING and has_payload
        assert not (isinstance(outcome, Receipt) and outcome.delivered)


@example(_ok(b"[]"))
@example(_ok(b"", 204))
@fuzz(150)
@given(st.one_of(shaped("/v1/applications").map(_ok), st.sampled_from(_NOT_AN_OBJECT).map(_ok)))
def test_a_submission_gives_the_citizen_a_receipt_or_a_documented_refusal(answer: Any) -> None:
    shared().use(script={"/v1/applications": answer})
    try:
        receipt = shared().link.submit(_citizen(), shared().service, {"name": "张三"})
    except (SubmissionRefused, SubmitError):
        return
    assert isinstance(receipt, Receipt) and receipt.number


# -- the catalogue ---------------------------------------------------------------------------------------------
@example({"items": None})
@fuzz(300)
@given(st.one_of(shaped("/v1/catalogue"), json_values))
def test_a_catalogue_of_any_shape_is_read_or_refused_as_catalogue_error(data: Any) -> None:
    try:
        catalogue = Catalogue.from_platform(data)
    except CatalogueError as exc:
        event("refused")
        assert str(exc)
        return
    event("read")
    for service in catalogue.services():
        assert isinstance(service.title_in("en"), str) and service.matches("证") in (True, False)
        for field in service.fields:
            assert isinstance(field.prefill(_citizen().identity), str) and isinstance(field.shown("x", "en"), str)
            assert field.problem("") in (None, "required")


def test_the_reference_catalogue_reads_back_item_for_item() -> None:
    """The round trip: every item the platform lists, with its fields and materials."""
    data = _catalogue()
    catalogue = Catalogue.from_platform(data)
    assert catalogue.version == str(data["version"])
    for item in data["items"]:
        service = catalogue.get(item["id"])
        assert [f.key for f in service.fields] == [f["key"] for f in item.get("form", [])]
        assert [m.id for m in service.materials] == [m["id"] for m in item.get("materials", [])]
        assert service.title == item["title"]


# -- certificates (kiosk/certificates.py) --------------------------------------------------------------------
_CERT_PATH = "/v1/applications/R1/certificate"


@example({"": None})  # found by bench/fuzz_long.py: refused, naming the key "" (the test's assertion was wrong)
@fuzz(200)
@given(shaped(_CERT_PATH))
def test_a_certificate_of_any_shape_is_checked_or_refused_by_field(data: Any) -> None:
    try:
        cert = certificates.parse_certificate(data)
    except certificates.CertificateDataError as exc:
        event("refused")
        assert isinstance(exc.field, str) and str(exc)  # the field may be "" (a key named "")
        return
    event("checked")
    assert "*" in cert.id_number and cert.verify_url.startswith(("https://", "http://"))
    assert certificates.job_title(data) == cert.kind  # the print job's title: nothing personal


_CERT_TEXT = st.one_of(
    st.text(st.sampled_from(list("社会保险个人权益记录张三某市中心缴费基数年月单位") + list("ABC xyz-0123.,")),
            min_size=1, max_size=40),
    st.text(min_size=1, max_size=20),  # any Unicode: rare hanzi, emoji, right-to-left, combining marks
    st.text(st.sampled_from("0123456789ABCDEF"), min_size=30, max_size=200),  # one long unbreakable word
)
_CELL = _CERT_TEXT | st.integers(-10**12, 10**12) | st.floats(-1e9, 1e9) | st.none()


@st.composite
def certificates_issued(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed certificate data with any content: texts, table sizes, long words."""
    columns = draw(st.lists(_CERT_TEXT, min_size=1, max_size=10))
    rows = draw(st.lists(st.lists(_CELL, min_size=len(columns), max_size=len(columns)), max_size=30))
    data = dict(_CERTIFICATE, title={"zh-CN": draw(_CERT_TEXT), "en": draw(_CERT_TEXT)},
                holder={"name": draw(_CERT_TEXT), "id_number": "110101********1234"}, issuer=draw(_CERT_TEXT),
                summary=draw(st.lists(st.tuples(_CERT_TEXT, _CELL).map(list), max_size=6)),
                table={"columns": columns, "rows": rows}, notes=draw(st.lists(_CERT_TEXT, max_size=4)))
    if draw(st.booleans()):
        del data["table"]
    return data


@fuzz(6)
@given(st.one_of(certificates_issued(), shaped(_CERT_PATH)))
def test_a_certificate_renders_to_pdf_or_a_certificate_error(data: Any) -> None:
    """Rendering (fpdf2 with embedded fonts: ~0.5 s a certificate): a PDF, or CertificateError,
    which the handout turns into "print failed, here is the QR code"; anything else escapes
    the handout (kiosk/handout.py catches CertificateError and DeviceError) and the citizen
    gets neither."""
    try:
        pdf = certificates.render_certificate(data, terminal_id="ZJ-FUZZ-0001",
                                              printed_at=dt.datetime(2026, 11, 27, 10, 0))
    except certificates.CertificateError as exc:
        event(type(exc).__name__)
        return
    event("rendered")
    assert pdf.startswith(b"%PDF")
