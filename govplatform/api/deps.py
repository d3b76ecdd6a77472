"""What handlers ask for: the platform, the verified terminal, the citizen behind a token,
the idempotency key; and the idempotency store itself.

The signing headers are declared here as header parameters so the OpenAPI document
lists them on every signed operation; the verification itself has already happened in
`govplatform.middleware` by the time a handler runs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govapi.signing import SignedBy
from govplatform import models as m
from govplatform.errors import ApiError
from govplatform.middleware import SIGNED_BY
from govplatform.runtime import Platform, utc
from govplatform.schemas import IDEMPOTENCY_KEY
from govplatform.security import open_card, token_hash


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def signed_terminal(
    request: Request,
    x_terminal_id: Annotated[str, Header(alias="X-Terminal-Id", description="the enrolled terminal's id")],
    x_timestamp: Annotated[str, Header(alias="X-Timestamp", pattern=r"^[0-9]{1,12}$",
                                       description="Unix seconds; within 300 s of the platform clock")],
    x_nonce: Annotated[str, Header(alias="X-Nonce", pattern=r"^[0-9a-f]{32}$",
                                   description="32 lower-case hex characters, never reused")],
    x_signature_alg: Annotated[str, Header(alias="X-Signature-Alg", pattern=r"^(sm2-sm3|ecdsa-p256-sha256)$",
                                           description="sm2-sm3 (default) or ecdsa-p256-sha256 when allowed")],
    x_signature: Annotated[str, Header(alias="X-Signature", pattern=r"^[0-9a-fA-F]{16,256}$",
                                       description="hex signature over METHOD, PATH?QUERY, TIMESTAMP, NONCE, "
                                                   "hex(digest(body)), joined by newlines; see govapi/signing.py")],
) -> SignedBy:
    """The terminal whose signature the middleware verified."""
    signed = request.scope.get(SIGNED_BY)
    if not isinstance(signed, SignedBy):  # only reachable if the middleware was left out
        raise ApiError(401, "signature", "unsigned request")
    return signed


TerminalDep = Annotated[SignedBy, Depends(signed_terminal)]

_bearer = HTTPBearer(auto_error=False, scheme_name="CitizenToken",
                     description="citizen_token from POST /v1/citizens/identify; valid on that terminal only")


@dataclass
class Citizen:
    """The person behind a citizen token, for this request only."""

    terminal_id: str
    visit_id: str
    citizen_key: str
    card: dict[str, Any]
    known: bool

    @property
    def id_number(self) -> str:
        return str(self.card.get("id_number", ""))

    @property
    def name(self) -> str:
        return str(self.card.get("name", ""))

    def __repr__(self) -> str:
        return f"Citizen(terminal={self.terminal_id!r}, visit={self.visit_id!r})"


def citizen(platform: PlatformDep, terminal: TerminalDep,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Citizen:
    """Resolve the bearer token: 401 when missing, unknown, ended or expired; 403 from another terminal."""
    if credentials is None:
        raise ApiError(401, "citizen_token", "this call needs the citizen's token: header "
                       "'Authorization: Bearer <citizen_token from POST /v1/citizens/identify>'",
                       headers={"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    with platform.db.session() as s:
        row = s.get(m.CitizenToken, token_hash(platform.secret, token))
        if row is None or row.revoked:
            raise ApiError(401, "citizen_token", "unknown or ended citizen token (a newer visit on this terminal "
                           "ends the earlier one): identify the citizen again", headers={"WWW-Authenticate": "Bearer"})
        if row.terminal_id != terminal.terminal_id:
            raise ApiError(403, "citizen_token", "this citizen token was issued to another terminal; "
                           "a token is valid only on the terminal and visit it was issued for")
        if row.expires_at <= m.utcnow():
            raise ApiError(401, "citizen_token", f"the citizen token expired at {utc(row.expires_at).isoformat()}: "
                           "identify the citizen again", headers={"WWW-Authenticate": "Bearer"})
        card = open_card(platform.secret, token, row.card_sealed)
        return Citizen(row.terminal_id, row.visit_id, row.citizen_key, card, row.known)


CitizenDep = Annotated[Citizen, Depends(citizen)]

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY,
                                       description="made once when the citizen confirms; repeats return the "
                                                   "first answer, another body with the same key is 409")]


# -- idempotency ---------------------------------------------------------------------------------
def body_hash(endpoint: str, body: Any) -> str:
    """Hash of the validated body in canonical JSON: whitespace and key order do not matter."""
    canonical = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


def _replayed(record: m.IdempotencyRecord, endpoint: str, digest: str, key: str) -> JSONResponse:
    if record.endpoint != endpoint or record.body_hash != digest:
        where = "another endpoint" if record.endpoint != endpoint else "another body"
        raise ApiError(409, "idempotency_conflict",
                       f"Idempotency-Key {key} was already used on {record.created_at.isoformat(timespec='seconds')}Z "
                       f"with {where}: a new submission needs a new key; a retry must send the same body")
    return JSONResponse(record.response, status_code=record.status_code, headers={"Idempotent-Replayed": "true"})


def idempotent(platform: Platform, terminal_id: str, key: str, endpoint: str, body: Any,
               create: Callable[[Session], tuple[int, dict[str, Any]]]) -> JSONResponse:
    """Run `create` once per (terminal, key): its answer is stored in the same transaction and
    returned again for a repeat with the same body; another body gets 409."""
    digest = body_hash(endpoint, body)
    for attempt in range(2):
        try:
            with platform.db.session() as s:
                record = s.get(m.IdempotencyRecord, (terminal_id, key))
                if record is not None:
                    return _replayed(record, endpoint, digest, key)
                status, answer = create(s)
                s.add(m.IdempotencyRecord(terminal_id=terminal_id, key=key, endpoint=endpoint, body_hash=digest,
                                          status_code=status, response=answer, created_at=m.utcnow()))
            return JSONResponse(answer, status_code=status)
        except IntegrityError:
            # A concurrent request with the same key committed first (possible on PostgreSQL):
            # everything this one did was rolled back; answer as a repeat.
            if attempt:
                raise
    raise AssertionError("unreachable")


def as_json(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def aware(value: dt.datetime) -> dt.datetime:
    return utc(value)
