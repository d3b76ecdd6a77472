"""The kiosk's client of the government service platform API (see govapi/README.md).

Every call has a timeout; only safe calls are retried (GETs; PUTs, which name their
content, e.g. a scan by its SHA-256; and POSTs that carry an idempotency key, which the
platform turns into a no-op when repeated). Bodies are JSON, except a raw upload (a scan)
sent as it is with its own Content-Type; the signature covers the bytes sent either way.
Errors are split by what the terminal should do next: `PlatformUnavailable` -> queue and
try later; `PlatformRejected` -> the platform said no, retrying will not help.

What the platform answers is outside input: its shape is checked where it is read (the
`expect_*` helpers), and an answer of another shape is `MalformedAnswer`, a kind of
`PlatformUnavailable`, so every caller's "platform not available" path covers it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from govapi.signing import KeyPair, sign_headers

log = logging.getLogger(__name__)


class PlatformError(Exception):
    """Base of every platform problem; `str()` is for technicians."""


class PlatformUnavailable(PlatformError):
    """Unreachable, timed out or 5xx: worth another try later."""


class PlatformRejected(PlatformError):
    """A 4xx answer: the request itself is wrong or not allowed."""

    def __init__(self, status: int, code: str, message: str, fields: list[dict[str, str]] | None = None):
        super().__init__(f"platform refused ({status} {code}): {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields or []


class MalformedAnswer(PlatformUnavailable):
    """A 2xx answer of a shape the contract (govapi/README.md) does not have: a platform fault,
    handled like an unavailable platform (queue, try later). The message names the part and
    what came instead, never the value (it may be personal)."""


def _kind(value: Any) -> str:
    """What a JSON value is, in words, without showing it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def expect_object(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object, else MalformedAnswer naming `what`."""
    if not isinstance(value, dict):
        raise MalformedAnswer(f"{what}: expected an object, the platform sent {_kind(value)}")
    return value


def expect_list(value: Any, what: str) -> list[Any]:
    """`value` if it is a JSON list, else MalformedAnswer naming `what`."""
    if not isinstance(value, list):
        raise MalformedAnswer(f"{what}: expected a list, the platform sent {_kind(value)}")
    return value


def expect_objects(value: Any, what: str) -> list[dict[str, Any]]:
    """`value` if it is a list of JSON objects, else MalformedAnswer naming `what`."""
    for n, item in enumerate(expect_list(value, what)):
        expect_object(item, f"{what}[{n}]")
    return value


def expect_text(value: Any, what: str, *, optional: bool = False) -> str:
    """`value` if it is a text ("" for a missing one when `optional`), else MalformedAnswer."""
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise MalformedAnswer(f"{what}: expected a text, the platform sent {_kind(value)}")
    return value


def expect_translations(value: Any, what: str, *, optional: bool = False) -> dict[str, str]:
    """A text in several languages ({"zh-CN": ..., "en": ...}) as the screens show it: an object
    of texts ({} for a missing one when `optional`), else MalformedAnswer."""
    if value is None and optional:
        return {}
    for lang, text in expect_object(value, what).items():
        expect_text(text, f"{what}.{lang}")
    return value


class NotEnrolled(PlatformError):
    """The terminal has no key pair yet: run the enrolment (python -m provisioning enrol)."""


@dataclass(frozen=True)
class CitizenToken:
    token: str
    expires_at: str
    known: bool
    display_name: str

    def __repr__(self) -> str:
        return f"CitizenToken(known={self.known}, expires_at={self.expires_at!r})"


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class PlatformClient:
    def __init__(self, base_url: str, terminal_id: str, keypair: KeyPair | None, *,
                 timeout_s: float = 5.0, retries: int = 2, backoff_s: float = 0.5,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.terminal_id = terminal_id
        self.keypair = keypair
        self.timeout = (min(3.05, timeout_s), timeout_s)  # (connect, read)
        self.retries = retries
        self.backoff_s = backoff_s
        self.session = session or requests.Session()

    # -- the one way every call goes -----------------------------------------------------
    def request(self, method: str, path: str, payload: Any = None, *, token: str | None = None,
                idempotency_key: str | None = None, signed: bool = True,
                raw: bytes | bytearray | None = None, content_type: str = "application/json") -> Any:
        """One call. `payload` goes as JSON (the default); `raw` goes as it is, with `content_type`
        (a scan). The signature covers exactly the body bytes sent."""
        if raw is not None and payload is not None:
            raise ValueError("give either a JSON payload or raw bytes, not both")
        if raw is not None:
            body = bytes(raw)
        else:
            body = b"" if payload is None else json.dumps(payload, ensure_ascii=False,
                                                          separators=(",", ":")).encode("utf-8")
        safe = method in ("GET", "PUT") or idempotency_key is not None
        attempts = 1 + (self.retries if safe else 0)
        last: PlatformUnavailable | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            headers = {"Content-Type": content_type} if payload is not None or raw is not None else {}
            if signed:
                if self.keypair is None:
                    raise NotEnrolled("this terminal is not enrolled with the platform: "
                                      "run python -m provisioning enrol")
                headers.update(sign_headers(self.keypair, self.terminal_id, method, path, body))
            if token:
                headers["Authorization"] = f"Bearer {token}"
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
            try:
                resp = self.session.request(method, self.base_url + path, data=body or None,
                                            headers=headers, timeout=self.timeout)
            except requests.Timeout:
                last = PlatformUnavailable(f"{method} {path}: no answer from {self.base_url} "
                                           f"within {self.timeout[1]:g} s")
            except requests.ConnectionError as exc:
                if "Connection aborted" in str(exc):  # connected, then dropped before the answer
                    last = PlatformUnavailable(f"{method} {path}: the connection to {self.base_url} dropped "
                                               "before the answer (the platform may have received the request"
                                               + ("; the retry with the same idempotency key is safe)"
                                                  if idempotency_key else ")"))
                else:
                    last = PlatformUnavailable(f"{method} {path}: cannot reach {self.base_url} "
                                               f"({type(exc).__name__}): check the network and the platform URL")
            else:
                if resp.status_code >= 500:
                    last = PlatformUnavailable(f"{method} {path}: platform error {resp.status_code}")
                else:
                    return self._decode(method, path, resp)
            log.warning("%s (attempt %d of %d)", last, attempt + 1, attempts)
        assert last is not None
        raise last

    @staticmethod
    def _decode(method: str, path: str, resp: requests.Response) -> Any:
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            raise PlatformUnavailable(f"{method} {path}: answer {resp.status_code} is not JSON") from None
        except RecursionError:  # nested deeper than the parser's stack: no real answer is
            raise PlatformUnavailable(f"{method} {path}: answer {resp.status_code} is JSON nested too deeply "
                                      f"to read ({len(resp.content)} bytes)") from None
        if resp.status_code >= 400:
            data = data if isinstance(data, dict) else {}
            raise PlatformRejected(resp.status_code, str(data.get("error", "error")),
                                   str(data.get("message", resp.reason)), data.get("fields"))
        return data

    def _object(self, method: str, path: str, payload: Any = None, **kwargs: Any) -> dict[str, Any]:
        """`request` for an endpoint whose answer is a JSON object (every one but the licences)."""
        return expect_object(self.request(method, path, payload, **kwargs), f"{method} {path}")

    # -- the API -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._object("GET", "/v1/health", signed=False)

    def enrol(self, code: str, location: str) -> dict[str, Any]:
        if self.keypair is None:
            raise NotEnrolled("generate the terminal's key pair before enrolling")
        return self._object("POST", "/v1/terminals/enrol", {
            "enrolment_code": code, "terminal_id": self.terminal_id, "algorithm": self.keypair.algorithm,
            "public_key": self.keypair.public_key, "location": location}, signed=False)

    def identify(self, visit_id: str, card: dict[str, Any], face_check: dict[str, Any]) -> CitizenToken:
        what = "POST /v1/citizens/identify"
        data = self._object("POST", "/v1/citizens/identify",
                            {"visit_id": visit_id, "card": card, "face_check": face_check})
        token = expect_text(data.get("citizen_token"), f"{what}: citizen_token")
        if not token:
            raise MalformedAnswer(f"{what}: citizen_token is empty")
        citizen = expect_object(data.get("citizen", {}), f"{what}: citizen")
        return CitizenToken(token, expect_text(data.get("expires_at"), f"{what}: expires_at"),
                            bool(citizen.get("known")),
                            expect_text(citizen.get("display_name"), f"{what}: citizen.display_name", optional=True))

    def catalogue(self) -> dict[str, Any]:
        return self._object("GET", "/v1/catalogue")

    def prefill(self, item_id: str, token: str) -> dict[str, Any]:
        return self._object("GET", f"/v1/items/{item_id}/prefill", token=token)

    def licences(self, token: str) -> Any:
        return self.request("GET", "/v1/citizens/me/licences", token=token)

    def benefits(self, token: str) -> dict[str, Any]:
        return self._object("GET", "/v1/citizens/me/benefits", token=token)

    def my_applications(self, token: str) -> dict[str, Any]:
        return self._object("GET", "/v1/citizens/me/applications", token=token)

    def submit_application(self, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._object("POST", "/v1/applications", payload, idempotency_key=idempotency_key)

    def put_scan(self, data: bytes | bytearray, media_type: str) -> dict[str, Any]:
        """Upload a scanned material (raw JPEG, PNG or PDF bytes) before the application naming
        it; answers {"reference": "scan:<sha256>", "media_type", "size"}. Idempotent by content:
        a repeat is answered 200 and stores nothing."""
        digest = hashlib.sha256(data).hexdigest()
        return self._object("PUT", f"/v1/scans/{digest}", raw=data, content_type=media_type)

    def application(self, receipt_number: str, token: str) -> dict[str, Any]:
        return self._object("GET", f"/v1/applications/{receipt_number}", token=token)

    def check_in(self, appointment_code: str, idempotency_key: str) -> dict[str, Any]:
        """预约取号: the queue number for the booking of this code (the same one every time)."""
        return self._object("POST", "/v1/appointments/check-in", {"appointment_code": appointment_code},
                            idempotency_key=idempotency_key)

    def certificate(self, receipt_number: str, token: str) -> dict[str, Any]:
        return self._object("GET", f"/v1/applications/{receipt_number}/certificate", token=token)

    def send_sms(self, receipt_number: str, token: str, idempotency_key: str) -> dict[str, Any]:
        return self._object("POST", f"/v1/applications/{receipt_number}/sms", token=token,
                            idempotency_key=idempotency_key)

    def rate(self, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._object("POST", "/v1/ratings", payload, idempotency_key=idempotency_key)

    def consult(self, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._object("POST", "/v1/consultations", payload, idempotency_key=idempotency_key)
