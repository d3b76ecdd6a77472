"""Identity and what the state already knows about the citizen.

POST /v1/citizens/identify turns a card read (plus face-check evidence) into a short-lived
token bound to the terminal and the visit; a new visit on the terminal ends the earlier
token, so the previous citizen's data cannot be reached from the screen any more.
Prefill, e-licences, benefits ("免申即享") and the citizen's own applications need it.
"""
from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter
from sqlalchemy import select, update

from govplatform import models as m
from govplatform import residents
from govplatform.api.applications import summary
from govplatform.api.deps import CitizenDep, PlatformDep, TerminalDep
from govplatform.catalogue import get_item
from govplatform.errors import ApiError, errors, invalid
from govplatform.privacy import mask_id_number, mask_name
from govplatform.runtime import china_today, utc
from govplatform.schemas import (
    Benefits,
    CitizenSummary,
    FaceCheck,
    IdentifyRequest,
    IdentifyResponse,
    Licences,
    MyApplications,
    Prefill,
)
from govplatform.security import citizen_key, new_token, seal_card, token_hash

router = APIRouter(tags=["citizens"])
log = logging.getLogger("govplatform.citizens")


def check_face(face: FaceCheck | None, required: bool) -> None:
    """When the platform requires it, evidence must show a passed face check (and no failed liveness)."""
    if not required:
        return
    if face is None:
        raise ApiError(403, "face_check", "this platform requires face verification: send face_check with the "
                                          "result of the terminal's card-photo comparison")
    if not face.passed or face.liveness is False:
        raise ApiError(403, "face_check", "the face check did not pass: the citizen must be verified at the "
                                          "terminal (or helped at a staffed counter) before going on")


def check_card(body: IdentifyRequest, today: dt.date) -> None:
    card = body.card
    if card.card_type != "foreign_2017":
        gender = card.gender_code if card.card_type in ("resident", "hmt_permit", "social_security") else None
        problem = residents.id_number_problem(card.id_number, card.birth_date, gender)
        if problem:
            raise invalid("card.id_number", problem)
    if card.valid_from is not None and card.valid_from > today:
        raise invalid("card.valid_from", f"the card is valid only from {card.valid_from.isoformat()}")
    if isinstance(card.valid_to, dt.date) and card.valid_to < today:
        raise invalid("card.valid_to", f"the card expired on {card.valid_to.isoformat()}: a valid card is needed")
    if isinstance(card.valid_to, dt.date) and card.valid_from and card.valid_to < card.valid_from:
        raise invalid("card.valid_to", "is before card.valid_from")


@router.post("/v1/citizens/identify", response_model=IdentifyResponse, status_code=201,
             responses=errors(400, 401, 403, 413, 422), operation_id="identifyCitizen")
def identify(body: IdentifyRequest, platform: PlatformDep, terminal: TerminalDep) -> IdentifyResponse:
    """Card read + face-check evidence -> a citizen token for this terminal and visit."""
    check_card(body, china_today())
    check_face(body.face_check, platform.settings.require_face_check)
    id_number = body.card.id_number.upper()
    person = residents.find_resident(id_number)
    token = new_token()
    now = m.utcnow()
    expires = now + dt.timedelta(seconds=platform.settings.citizen_token_ttl_s)
    card = body.card.model_dump(mode="json")
    card["id_number"] = id_number
    with platform.db.session() as s:
        # one visit at a time per terminal: every earlier token of this terminal ends here
        s.execute(update(m.CitizenToken).where(m.CitizenToken.terminal_id == terminal.terminal_id,
                                               m.CitizenToken.revoked.is_(False)).values(revoked=True))
        s.add(m.CitizenToken(token_hash=token_hash(platform.secret, token), terminal_id=terminal.terminal_id,
                             visit_id=body.visit_id, citizen_key=citizen_key(platform.secret, id_number),
                             card_sealed=seal_card(platform.secret, token, card), known=person is not None,
                             issued_at=now, expires_at=expires, revoked=False))
    log.info("identified citizen %s on terminal %s (visit %s, known=%s)", mask_id_number(id_number),
             terminal.terminal_id, body.visit_id, person is not None)
    return IdentifyResponse(citizen_token=token, expires_at=utc(expires),
                            citizen=CitizenSummary(known=person is not None, display_name=mask_name(body.card.name)))


@router.get("/v1/items/{item_id}/prefill", response_model=Prefill, responses=errors(401, 403, 404, 422),
            operation_id="prefillItem")
def prefill(item_id: str, citizen: CitizenDep) -> Prefill:
    """The form values the state already holds for this citizen, each with its source."""
    item = get_item(item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no catalogue item {item_id!r}: see GET /v1/catalogue")
    person = residents.find_resident(citizen.id_number)
    values = residents.prefill(item, person, citizen.card)
    return Prefill.model_validate({"item_id": item_id, "values": values})


@router.get("/v1/citizens/me/licences", response_model=Licences, responses=errors(401, 403, 422),
            operation_id="myLicences")
def my_licences(citizen: CitizenDep) -> Licences:
    """E-licences (电子证照) usable instead of paper originals."""
    person = residents.find_resident(citizen.id_number)
    return Licences.model_validate({"licences": residents.licences(person)})


@router.get("/v1/citizens/me/benefits", response_model=Benefits, responses=errors(401, 403, 422),
            operation_id="myBenefits")
def my_benefits(citizen: CitizenDep) -> Benefits:
    """"免申即享": benefits granted without applying, or that the citizen qualifies for, with reasons."""
    from govplatform import policies

    person = residents.find_resident(citizen.id_number)
    found = policies.match_benefits(person, china_today()) if person is not None else []
    return Benefits.model_validate({"benefits": found})


@router.get("/v1/citizens/me/applications", response_model=MyApplications, responses=errors(401, 403, 422),
            operation_id="myApplications")
def my_applications(platform: PlatformDep, citizen: CitizenDep) -> MyApplications:
    """The citizen's applications (newest first, at most 50) and how far each has got."""
    with platform.db.session() as s:
        rows = s.execute(select(m.Application).where(m.Application.citizen_key == citizen.citizen_key)
                         .order_by(m.Application.accepted_at.desc(), m.Application.id.desc()).limit(50)).scalars().all()
        return MyApplications(applications=[summary(row) for row in rows])

