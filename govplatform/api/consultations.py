"""POST /v1/consultations: the 12345 hotline from the kiosk (consultation, complaint, suggestion, help)."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from govplatform import models as m
from govplatform.api.deps import IdempotencyKey, PlatformDep, TerminalDep, as_json, idempotent
from govplatform.catalogue import get_item
from govplatform.errors import ApiError, errors
from govplatform.runtime import next_number, utc
from govplatform.schemas import ConsultationAccepted, ConsultationRequest

router = APIRouter(tags=["consultations"])
log = logging.getLogger("govplatform.consultations")
HOTLINE = "12345"


@router.post("/v1/consultations", status_code=201, response_model=ConsultationAccepted,
             responses=errors(400, 401, 404, 409, 413, 422), operation_id="consult")
def consult(body: ConsultationRequest, platform: PlatformDep, terminal: TerminalDep,
            idempotency_key: IdempotencyKey) -> JSONResponse:
    """Open a 12345 ticket; the citizen leaves with its number."""

    def create(s: Session) -> tuple[int, dict[str, Any]]:
        if body.item_id is not None and get_item(body.item_id) is None:
            raise ApiError(404, "not_found", f"no catalogue item {body.item_id!r}")
        now = m.utcnow()
        number = next_number(s, "GD")
        s.add(m.Consultation(ticket_number=number, terminal_id=terminal.terminal_id, kind=body.kind,
                             text=body.text.strip() or body.text, item_id=body.item_id,
                             contact_phone=body.contact_phone, status="received", created_at=now))
        log.info("12345 ticket %s (%s) from terminal %s", number, body.kind, terminal.terminal_id)
        return 201, as_json(ConsultationAccepted(ticket_number=number, kind=body.kind, status="received",
                                                 received_at=utc(now), hotline=HOTLINE))

    return idempotent(platform, terminal.terminal_id, idempotency_key, "POST /v1/consultations",
                      body.model_dump(mode="json"), create)
