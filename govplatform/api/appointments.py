"""Appointments: free slots for an appointment item, and booking one for the identified citizen.

Slots are seeded by the platform itself for every catalogue item of kind "appointment":
Monday to Saturday, 09:00-11:30 and 14:00-16:30 China time in half-hour slots, a few
days ahead (setting `appointment_days`). Synthetic, like every other record here.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govapi.appointment_codes import code_for_booking
from govplatform import models as m
from govplatform.api.deps import CitizenDep, IdempotencyKey, PlatformDep, TerminalDep, as_json, idempotent
from govplatform.catalogue import get_item, load_catalogue
from govplatform.errors import ApiError, errors
from govplatform.privacy import mask_id_number
from govplatform.runtime import CHINA, china_today, naive_utc, next_number, utc
from govplatform.schemas import ITEM_ID, BookingAccepted, BookingRequest, Slot, Slots, Text

router = APIRouter(tags=["appointments"])
log = logging.getLogger("govplatform.appointments")

SLOT_MINUTES = 30
SESSIONS = ((dt.time(9, 0), dt.time(11, 30)), (dt.time(14, 0), dt.time(16, 30)))
CAPACITY = 3


def _place(item: dict[str, Any]) -> dict[str, str]:
    dep = item["lead_department"]
    return {"zh-CN": f"{dep['zh-CN']}窗口（政务服务中心）",
            "en": f"{dep['en']} counter, government service centre"}


def seed_slots(session: Session, days: int, today: dt.date | None = None) -> int:
    """Create the missing slots from today for `days` days; returns how many were added."""
    today = today or china_today()
    added = 0
    for item in load_catalogue()["items"]:
        if item["kind"] != "appointment":
            continue
        start = naive_utc(dt.datetime.combine(today, dt.time(0), CHINA))
        have = set(session.execute(select(m.AppointmentSlot.starts_at).where(
            m.AppointmentSlot.item_id == item["id"], m.AppointmentSlot.starts_at >= start)).scalars())
        for offset in range(days):
            day = today + dt.timedelta(days=offset)
            if day.weekday() == 6:  # Sunday: halls closed
                continue
            for begin, end in SESSIONS:
                at = dt.datetime.combine(day, begin, CHINA)
                while at.timetz() < end.replace(tzinfo=CHINA):
                    stored = naive_utc(at)
                    if stored not in have:
                        session.add(m.AppointmentSlot(item_id=item["id"], starts_at=stored,
                                                      ends_at=naive_utc(at + dt.timedelta(minutes=SLOT_MINUTES)),
                                                      place=_place(item), capacity=CAPACITY, booked=0))
                        added += 1
                    at += dt.timedelta(minutes=SLOT_MINUTES)
    return added


def _slot(row: m.AppointmentSlot) -> Slot:
    return Slot(slot_id=row.id, item_id=row.item_id, starts_at=utc(row.starts_at), ends_at=utc(row.ends_at),
                place=Text.model_validate(row.place), capacity=row.capacity, remaining=row.capacity - row.booked)


@router.get("/v1/appointments/slots", response_model=Slots, responses=errors(401, 404, 422),
            operation_id="freeSlots")
def free_slots(item_id: Annotated[str, Query(pattern=ITEM_ID, description="an item of kind appointment")],
               platform: PlatformDep, terminal: TerminalDep) -> Slots:
    """Slots still free from now on (empty for an item that is not booked by appointment)."""
    if get_item(item_id) is None:
        raise ApiError(404, "not_found", f"no catalogue item {item_id!r}: see GET /v1/catalogue")
    with platform.db.session() as s:
        rows = s.execute(select(m.AppointmentSlot).where(
            m.AppointmentSlot.item_id == item_id, m.AppointmentSlot.starts_at > m.utcnow(),
            m.AppointmentSlot.booked < m.AppointmentSlot.capacity).order_by(m.AppointmentSlot.starts_at)
            .limit(200)).scalars().all()
        return Slots(item_id=item_id, slots=[_slot(r) for r in rows])


@router.post("/v1/appointments", status_code=201, response_model=BookingAccepted,
             responses=errors(400, 401, 403, 404, 409, 413, 422), operation_id="bookAppointment")
def book(body: BookingRequest, platform: PlatformDep, terminal: TerminalDep, citizen: CitizenDep,
         idempotency_key: IdempotencyKey) -> JSONResponse:
    """Book a slot for the citizen of the token; 409 when it is full, past, or already theirs."""
    if body.visit_id != citizen.visit_id:
        raise ApiError(403, "citizen_token", "the citizen token was issued for another visit: identify again")

    def create(s: Session) -> tuple[int, dict[str, Any]]:
        slot = s.get(m.AppointmentSlot, body.slot_id)
        if slot is None or slot.item_id != body.item_id:
            raise ApiError(404, "not_found", f"no slot {body.slot_id} for item {body.item_id!r}: "
                                             "see GET /v1/appointments/slots")
        if slot.starts_at <= m.utcnow():
            raise ApiError(409, "slot_unavailable", "this slot has already begun: choose a later one")
        mine = s.execute(select(m.AppointmentBooking.booking_number).where(
            m.AppointmentBooking.slot_id == slot.id, m.AppointmentBooking.citizen_key == citizen.citizen_key)).first()
        if mine is not None:
            raise ApiError(409, "already_booked", f"the citizen already holds booking {mine[0]} for this slot")
        taken = s.execute(update(m.AppointmentSlot).where(m.AppointmentSlot.id == slot.id,
                                                          m.AppointmentSlot.booked < m.AppointmentSlot.capacity)
                          .values(booked=m.AppointmentSlot.booked + 1))
        if taken.rowcount == 0:  # type: ignore[attr-defined]
            raise ApiError(409, "slot_full", "this slot is fully booked: choose another one")
        s.refresh(slot)
        number = next_number(s, "YY")
        s.add(m.AppointmentBooking(booking_number=number, slot_id=slot.id, item_id=slot.item_id,
                                   terminal_id=terminal.terminal_id, visit_id=citizen.visit_id,
                                   citizen_key=citizen.citizen_key, citizen_id_number=citizen.id_number,
                                   citizen_name=citizen.name, status="booked", created_at=m.utcnow()))
        log.info("booking %s: slot %d of %s for citizen %s", number, slot.id, slot.item_id,
                 mask_id_number(citizen.id_number))
        return 201, as_json(BookingAccepted(booking_number=number, status="booked", item_id=slot.item_id,
                                            slot=_slot(slot), appointment_code=code_for_booking(number)))

    body_for_hash = {**body.model_dump(mode="json"), "citizen": citizen.citizen_key}
    return idempotent(platform, terminal.terminal_id, idempotency_key, "POST /v1/appointments", body_for_hash, create)
