"""POST /v1/ratings: "好差评", five levels, optionally about one application or item."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from govplatform import models as m
from govplatform.api.deps import IdempotencyKey, PlatformDep, TerminalDep, as_json, idempotent
from govplatform.catalogue import get_item
from govplatform.errors import ApiError, errors
from govplatform.runtime import next_number, utc
from govplatform.schemas import RatingAccepted, RatingRequest

router = APIRouter(tags=["ratings"])
log = logging.getLogger("govplatform.ratings")


@router.post("/v1/ratings", status_code=201, response_model=RatingAccepted,
             responses=errors(400, 401, 404, 409, 413, 422), operation_id="rate")
def rate(body: RatingRequest, platform: PlatformDep, terminal: TerminalDep,
         idempotency_key: IdempotencyKey) -> JSONResponse:
    """Record a rating (1 非常不满意 .. 5 非常满意); an unknown receipt number or item is 404."""

    def create(s: Session) -> tuple[int, dict[str, Any]]:
        if body.receipt_number is not None and s.execute(select(m.Application.id).where(
                m.Application.receipt_number == body.receipt_number)).first() is None:
            raise ApiError(404, "not_found", f"no application {body.receipt_number!r} to rate")
        if body.item_id is not None and get_item(body.item_id) is None:
            raise ApiError(404, "not_found", f"no catalogue item {body.item_id!r} to rate")
        now = m.utcnow()
        number = next_number(s, "PJ")
        s.add(m.Rating(rating_number=number, terminal_id=terminal.terminal_id, level=body.level,
                       receipt_number=body.receipt_number, item_id=body.item_id,
                       comment=(body.comment or "").strip() or None, created_at=now))
        log.info("rating %s: level %d from terminal %s", number, body.level, terminal.terminal_id)
        return 201, as_json(RatingAccepted(rating_number=number, level=body.level, received_at=utc(now)))

    return idempotent(platform, terminal.terminal_id, idempotency_key, "POST /v1/ratings",
                      body.model_dump(mode="json"), create)
