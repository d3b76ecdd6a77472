"""POST /v1/terminals/enrol: a terminal registers its public key with a one-time code.

Codes come from `python -m govplatform enrolment-code --terminal-id ID`, are bound to
that terminal id, expire (24 h by default) and work once. Re-enrolling an enrolled
terminal (new machine, new key) needs a new code; it replaces the key and ends the
terminal's citizen tokens.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy import select, update

from govplatform import models as m
from govplatform.api.deps import PlatformDep
from govplatform.errors import ApiError, errors, invalid
from govplatform.runtime import utc
from govplatform.schemas import EnrolRequest, EnrolResponse
from govplatform.security import code_hash, public_key_problem

router = APIRouter(tags=["terminals"])
log = logging.getLogger("govplatform.terminals")
HOW = "ask the platform operator for a new one (python -m govplatform enrolment-code --terminal-id {tid})"


@router.post("/v1/terminals/enrol", status_code=201, response_model=EnrolResponse,
             responses=errors(400, 403, 413, 422), operation_id="enrolTerminal")
def enrol(body: EnrolRequest, platform: PlatformDep) -> EnrolResponse:
    """Register (or replace) a terminal's public key; the enrolment code is used up."""
    if body.algorithm not in platform.settings.signature_algorithms:
        raise invalid("algorithm", f"{body.algorithm} is not accepted by this platform (accepted: "
                                   f"{', '.join(platform.settings.signature_algorithms)})")
    problem = public_key_problem(body.algorithm, body.public_key)
    if problem:
        raise invalid("public_key", problem)
    how = HOW.format(tid=body.terminal_id)
    now = m.utcnow()
    with platform.db.session() as s:
        code = s.execute(select(m.EnrolmentCode).where(
            m.EnrolmentCode.code_hash == code_hash(platform.secret, body.enrolment_code))).scalar_one_or_none()
        if code is None:
            raise ApiError(403, "enrolment_code", f"enrolment code not recognised: check what was typed, or {how}")
        if code.used:
            used = code.used_at.isoformat(timespec="seconds") + "Z" if code.used_at else "earlier"
            raise ApiError(403, "enrolment_code", f"this enrolment code was already used ({used}); a code works "
                                                  f"once: {how}")
        if code.expires_at <= now:
            raise ApiError(403, "enrolment_code", f"this enrolment code expired at "
                                                  f"{code.expires_at.isoformat(timespec='seconds')}Z: {how}")
        if code.terminal_id != body.terminal_id:
            raise ApiError(403, "enrolment_code", f"this enrolment code was issued for terminal "
                                                  f"{code.terminal_id!r}, not {body.terminal_id!r}")
        code.used, code.used_at = True, now
        terminal = s.get(m.Terminal, body.terminal_id)
        if terminal is None:
            terminal = m.Terminal(id=body.terminal_id)
            s.add(terminal)
        else:  # a new key: whatever the old one was used for ends now
            s.execute(update(m.CitizenToken).where(m.CitizenToken.terminal_id == body.terminal_id)
                      .values(revoked=True))
        terminal.algorithm = body.algorithm
        terminal.public_key = body.public_key.lower()
        terminal.location = body.location
        terminal.enrolled_at = now
        terminal.active = True
    log.info("terminal %s enrolled (%s) at %s", body.terminal_id, body.algorithm, body.location)
    return EnrolResponse(terminal_id=body.terminal_id, algorithm=body.algorithm, location=body.location,
                         enrolled_at=utc(now), accepted_algorithms=list(platform.settings.signature_algorithms))
