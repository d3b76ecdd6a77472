"""Public pages for anyone's phone, outside /v1: no signature, no token.

    GET /verify/{code}       is this certificate genuine? (the QR code on the paper)
    GET /progress/{number}   how far has this application got? (the link in the text message,
                             the receipt number, or the number the terminal printed while the
                             submission waited in its outbox)

HTML by default, JSON when the client prefers application/json (`govplatform.pages`).
What they show is deliberately little: a certificate's title, issuer, time and masked
holder; an application's title, status, departments and acceptance date, never a name,
an ID number or an answer. Both are rate-limited per client address (`govplatform.ratelimit`,
setting `public_rate_limit_per_minute`), because receipt numbers are sequential.
"""
from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from govplatform import models as m
from govplatform import pages
from govplatform.api.applications import terminal_of
from govplatform.api.deps import PlatformDep, as_json
from govplatform.certificates import normalise_verification_code
from govplatform.errors import errors
from govplatform.ratelimit import RateLimiter
from govplatform.runtime import CHINA, utc
from govplatform.schemas import (
    RECEIPT,
    TERMINAL_RECEIPT,
    MaskedHolder,
    Progress,
    PublicDepartmentStatus,
    Text,
    Verification,
)

router = APIRouter(tags=["public"])
log = logging.getLogger("govplatform.public")

_HTML = {"text/html": {"schema": {"type": "string"}}}


def _documented(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """200 as JSON (the model) or HTML; 404 and 429 as ErrorBody JSON or HTML."""
    out = errors(404, 422, 429, described=described)
    for status in (404, 429):
        out[status]["content"] = dict(_HTML)
    out[200] = {"description": "JSON when the client prefers application/json, else an HTML page",
                "content": dict(_HTML)}
    return out


def _limited(request: Request, json_wanted: bool) -> Response | None:
    limiter: RateLimiter = request.app.state.public_rate_limiter
    wait = limiter.wait_s(request.client.host if request.client else "unknown")
    if not wait:
        return None
    seconds = max(1, math.ceil(wait))
    if json_wanted:
        return pages.json_answer({"error": "rate_limited",
                                  "message": f"too many requests from this address: try again in {seconds} s"},
                                 429, {"Retry-After": str(seconds)})
    return pages.too_many_page(seconds)


def _not_found(json_wanted: bool, message: str, zh: tuple[str, str], what: tuple[str, str]) -> Response:
    if json_wanted:
        return pages.json_answer({"error": "not_found", "message": message}, 404)
    return pages.not_found_page(zh[0], zh[1], what[0], what[1])


@router.get("/verify/{code}", response_model=Verification, operation_id="verifyCertificate",
            responses=_documented({
                404: "No certificate with this verification code",
                429: "Too many requests from this address; wait the seconds in Retry-After"}))
def verify(code: str, request: Request, platform: PlatformDep) -> Response:
    """Is the certificate with this verification code genuine? Title, masked holder, issuer, time."""
    json_wanted = pages.wants_json(request.headers.get("accept"))
    limited = _limited(request, json_wanted)
    if limited is not None:
        return limited
    normal = normalise_verification_code(code)
    row = None
    if normal is not None:
        with platform.db.session() as s:
            row = s.execute(select(m.IssuedCertificate)
                            .where(m.IssuedCertificate.verification_code == normal)).scalar_one_or_none()
    if row is None:
        return _not_found(json_wanted, "no certificate with this verification code: check the 16 characters "
                                       "printed beside the QR code", ("证明核验", "Certificate verification"),
                          ("没有与此验证码对应的证明，请核对证明上的验证码。",
                           "No certificate has this verification code: check the code on the paper."))
    found = Verification(status="valid", verification_code=row.verification_code, kind=row.item_id,
                         title=Text.model_validate(row.title),
                         holder=MaskedHolder(name=row.holder_name_masked, id_number=row.holder_id_masked),
                         issuer=row.issuer, issued_at=utc(row.issued_at).astimezone(CHINA))
    return pages.json_answer(as_json(found)) if json_wanted else pages.verification_page(found)


def _find_application(s: Any, number: str) -> m.Application | None:
    query = select(m.Application)
    if re.match(RECEIPT, number.upper()):
        query = query.where(m.Application.receipt_number == number.upper())
    elif re.match(TERMINAL_RECEIPT, number):  # the terminal id inside leads to the unique index
        query = query.where(m.Application.terminal_id == terminal_of(number),
                            m.Application.terminal_receipt == number)
    else:
        return None
    return s.execute(query).scalar_one_or_none()


@router.get("/progress/{number}", response_model=Progress, operation_id="publicProgress",
            responses=_documented({
                404: "No application with this receipt number or terminal receipt (yet: a terminal may still "
                     "hold it in its outbox)",
                429: "Too many requests from this address; wait the seconds in Retry-After"}))
def progress(number: str, request: Request, platform: PlatformDep) -> Response:
    """How far an application has got, by receipt number (SQ...) or the terminal's own number (L...):
    title, status, each department's part, acceptance date; nothing personal."""
    json_wanted = pages.wants_json(request.headers.get("accept"))
    limited = _limited(request, json_wanted)
    if limited is not None:
        return limited
    with platform.db.session() as s:
        row = _find_application(s, number.strip())
        if row is None:
            return _not_found(json_wanted, "no application with this number: check the receipt; a submission "
                                           "the terminal could not send yet appears once it is delivered",
                              ("办件进度", "Application progress"),
                              ("没有找到此编号的办件。若终端尚未联网提交，请稍后再查。",
                               ("No application has this number. If the terminal has not sent it yet, "
                                "try again later.")))
        found = Progress(
            receipt_number=row.receipt_number, title=Text.model_validate(row.item_title), status=row.status,
            status_text=pages.status_text(row.status), accepted_on=utc(row.accepted_at).astimezone(CHINA).date(),
            departments=[PublicDepartmentStatus(department=t.department, name=Text.model_validate(t.department_name),
                                                role=t.role, status=t.status,  # type: ignore[arg-type]
                                                status_text=pages.status_text(t.status)) for t in row.tasks])
    return pages.json_answer(as_json(found)) if json_wanted else pages.progress_page(found)
