"""POST /v1/applications/{receipt_number}/sms: text the applicant the receipt number and progress link.

The terminal asks; the platform sends, to the mobile number on the citizen's file (the
terminal never sees or types it). Idempotent like every submission: a repeat with the same
Idempotency-Key gets the first answer and no second message. The gateway is the one the
setting `sms_gateway` names (`govplatform.sms`).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from govapi.masking import mask_phone
from govplatform import residents
from govplatform.api.certificates import applicants_application
from govplatform.api.deps import CitizenDep, IdempotencyKey, PlatformDep, TerminalDep, as_json, idempotent
from govplatform.errors import ApiError, errors
from govplatform.runtime import next_number
from govplatform.schemas import SmsAccepted
from govplatform.sms import OutgoingSms, SmsGateway, SmsGatewayError, progress_text

router = APIRouter(tags=["applications"])
ENDPOINT = "POST /v1/applications/{receipt_number}/sms"


def gateway(request: Request) -> SmsGateway:
    return request.app.state.sms_gateway


@router.post("/v1/applications/{receipt_number}/sms", status_code=202, response_model=SmsAccepted,
             responses=errors(401, 403, 404, 409, 422, 503, described={
                 409: "Idempotency-Key reused with another body or receipt (idempotency_conflict), or the "
                      "platform holds no mobile number for the applicant (no_phone)",
                 503: "The SMS gateway did not take the message (sms_unavailable): retry with the same "
                      "Idempotency-Key"}),
             operation_id="sendProgressSms")
def send_sms(receipt_number: str, request: Request, platform: PlatformDep, terminal: TerminalDep,
             citizen: CitizenDep, idempotency_key: IdempotencyKey) -> JSONResponse:
    """Text the applicant (number on file) the receipt number and the progress link; 202 once the
    gateway has taken it. Only the applicant's token may ask."""
    sms_gateway = gateway(request)

    def create(s: Session) -> tuple[int, dict[str, Any]]:
        row = applicants_application(s, receipt_number, citizen)
        person = residents.find_resident(row.citizen_id_number)
        phone = person.phone if person is not None else ""
        if not phone:
            raise ApiError(409, "no_phone", "no mobile number on file for the applicant: the platform texts only "
                                            "numbers it holds; hand the citizen the printed receipt instead")
        message = OutgoingSms(next_number(s, "DX"), row.receipt_number, terminal.terminal_id, phone,
                              progress_text(row.item_title["zh-CN"], row.receipt_number, platform.settings.public_url))
        try:
            sms_gateway.send(s, message)
        except SmsGatewayError as exc:
            raise ApiError(503, "sms_unavailable", f"the SMS gateway did not take the message ({exc}): "
                                                   "retry later with the same Idempotency-Key") from None
        return 202, as_json(SmsAccepted(receipt_number=row.receipt_number, sent_to=mask_phone(phone),
                                        message_id=message.message_id))

    return idempotent(platform, terminal.terminal_id, idempotency_key, ENDPOINT,
                      {"receipt_number": receipt_number}, create)
