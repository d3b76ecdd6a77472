"""POST /v1/appointments/check-in: a citizen holds their appointment code up to a terminal's
scanner and gets a queue number (预约取号), with no ID card: the code is the proof.

The code (govapi/appointment_codes.py) is checked by the terminal first and again here.
Check-in opens CHECK_IN_BEFORE ahead of the slot and closes when the slot ends; a booking
checks in once: asking again (a second scan, a retry) gives the same number. Queue
numbers are "A" + a 3-digit serial of the day; `waiting_ahead` counts the bookings of the
same item checked in earlier that day (the reference platform calls nobody, so nobody
leaves the queue).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govapi.appointment_codes import booking_for_code
from govplatform import models as m
from govplatform.api.appointments import _slot
from govplatform.api.deps import IdempotencyKey, PlatformDep, TerminalDep, as_json, idempotent
from govplatform.catalogue import get_item
from govplatform.errors import ApiError, errors
from govplatform.runtime import CHINA, next_number, utc
from govplatform.schemas import CheckedIn, CheckInRequest, Text

router = APIRouter(tags=["appointments"])
log = logging.getLogger("govplatform.checkin")

CHECK_IN_BEFORE = dt.timedelta(minutes=60)


def _day_bounds(at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The China-time day around `at` (naive UTC in, naive UTC out)."""
    local = at.replace(tzinfo=dt.UTC).astimezone(CHINA)
    start = dt.datetime.combine(local.date(), dt.time(0), CHINA).astimezone(dt.UTC).replace(tzinfo=None)
    return start, start + dt.timedelta(days=1)


@router.post("/v1/appointments/check-in", status_code=201, response_model=CheckedIn,
             responses=errors(400, 401, 404, 409, 413, 422, described={
                 404: "No booking has this appointment code (not_found)",
                 409: "Too early (too_early: check-in opens 60 minutes before the slot), the slot is over "
                      "(too_late), the booking was cancelled (booking_cancelled), or the Idempotency-Key was "
                      "used with another body (idempotency_conflict)"}),
             operation_id="checkIn")
def check_in(body: CheckInRequest, platform: PlatformDep, terminal: TerminalDep,
             idempotency_key: IdempotencyKey) -> JSONResponse:
    """Give the booking of this appointment code its queue number (the same one every time)."""

    def create(s: Session) -> tuple[int, dict[str, Any]]:
        number = booking_for_code(body.appointment_code)
        if number is None:
            raise ApiError(422, "invalid", "appointment_code fails its MOD 11-2 check: scan it again")
        booking = s.execute(select(m.AppointmentBooking)
                            .where(m.AppointmentBooking.booking_number == number)).scalar_one_or_none()
        if booking is None:
            raise ApiError(404, "not_found", "no booking has this appointment code")
        if booking.status == "cancelled":
            raise ApiError(409, "booking_cancelled", "this booking was cancelled: book again")
        slot = booking.slot
        now = m.utcnow()
        if booking.ticket_number is None:
            if now < slot.starts_at - CHECK_IN_BEFORE:
                raise ApiError(409, "too_early", f"check-in opens {int(CHECK_IN_BEFORE.total_seconds() // 60)} "
                                                 f"minutes before the slot ({utc(slot.starts_at).isoformat()})")
            if now >= slot.ends_at:
                raise ApiError(409, "too_late", f"the slot ended at {utc(slot.ends_at).isoformat()}: book again")
            serial = next_number(s, "A")  # "A" + China date + 6 digits: the day's serial
            booking.ticket_number = f"A{int(serial[-6:]):03d}"
            booking.checked_in_at = now
            booking.status = "checked_in"
            log.info("booking %s checked in at terminal %s: ticket %s", number, terminal.terminal_id,
                     booking.ticket_number)
        start, end = _day_bounds(booking.checked_in_at or now)
        ahead = s.execute(select(func.count()).select_from(m.AppointmentBooking).where(
            m.AppointmentBooking.item_id == booking.item_id, m.AppointmentBooking.status == "checked_in",
            m.AppointmentBooking.checked_in_at >= start, m.AppointmentBooking.checked_in_at < end,
            m.AppointmentBooking.id != booking.id,
            m.AppointmentBooking.checked_in_at <= booking.checked_in_at)).scalar_one()
        item = get_item(booking.item_id) or {"title": {"zh-CN": booking.item_id, "en": booking.item_id}}
        answer = CheckedIn(booking_number=number, ticket_number=booking.ticket_number, item_id=booking.item_id,
                           title=Text.model_validate(item["title"]), counter=Text.model_validate(slot.place),
                           waiting_ahead=int(ahead), slot=_slot(slot), checked_in_at=utc(booking.checked_in_at))
        return 201, as_json(answer)

    return idempotent(platform, terminal.terminal_id, idempotency_key, "POST /v1/appointments/check-in",
                      body.model_dump(mode="json"), create)
