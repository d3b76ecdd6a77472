"""Applications: submit once (idempotent), fanned out to every department of the "一件事".

A submission carries the citizen's identity itself (a queued one may arrive after any
token expired). It is checked against the catalogue: the item exists, required fields
are answered and well-formed, a material is promised only where the item allows
"告知承诺+容缺办理", an e-licence is used only where one replaces the paper and the
citizen holds it, a scan is one the platform already stores (PUT /v1/scans first), and
every required material is there. Accepted -> one receipt number, one task per department
(lead and cooperating), history entries.
"""
from __future__ import annotations

import logging
from collections.abc import Container
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from govapi.form_values import value_problem
from govplatform import models as m
from govplatform import residents
from govplatform.api.deps import (
    CitizenDep,
    IdempotencyKey,
    PlatformDep,
    TerminalDep,
    as_json,
    idempotent,
)
from govplatform.api.scans import UPLOAD_FIRST, scan_digest, stored_scans
from govplatform.catalogue import get_item
from govplatform.errors import ApiError, errors, invalid, invalid_many
from govplatform.privacy import mask_id_number
from govplatform.runtime import naive_utc, next_number, utc
from govplatform.schemas import (
    ApplicationAccepted,
    ApplicationDetail,
    ApplicationRequest,
    ApplicationSummary,
    Commitment,
    DepartmentStatus,
    HistoryEntry,
    Text,
)
from govplatform.security import citizen_key

router = APIRouter(tags=["applications"])
log = logging.getLogger("govplatform.applications")

RECEIVED = "received"


def _value_problem(field: dict[str, Any], value: str) -> str | None:
    return value_problem(field.get("type", "text"), value, (c["value"] for c in field.get("choices") or []))


def check_application(item: dict[str, Any], body: ApplicationRequest,
                      stored: Container[str] = frozenset()) -> list[dict[str, str]]:
    """Every way the submission disagrees with the catalogue item, as {field, problem}.
    `stored`: the SHA-256s, among those the scanned materials name, of scans the platform holds."""
    problems: list[dict[str, str]] = []
    number = body.citizen.id_number.upper()
    if len(number) == 18:
        problem = residents.id_number_problem(number)
        if problem:
            problems.append({"field": "citizen.id_number", "problem": problem})
    fields = {f["key"]: f for f in item["form"]}
    for key in body.answers:
        if key not in fields:
            problems.append({"field": f"answers.{key}",
                             "problem": f"not a field of item {item['id']} (fields: {', '.join(fields)})"})
    for key, field in fields.items():
        value = body.answers.get(key, "").strip()
        if not value:
            if field.get("required"):
                problems.append({"field": f"answers.{key}", "problem": f"required ({field['label']['zh-CN']})"})
            continue
        problem = _value_problem(field, value)
        if problem:
            problems.append({"field": f"answers.{key}", "problem": problem})

    materials = {mat["id"]: mat for mat in item.get("materials", [])}
    held: set[str] | None = None  # the citizen's e-licence types, looked up once when needed
    seen: set[str] = set()
    for n, given in enumerate(body.materials):
        where = f"materials[{n}]"
        mat = materials.get(given.id)
        if mat is None:
            problems.append({"field": f"{where}.id", "problem": f"item {item['id']} needs no material {given.id!r} "
                                                               f"(materials: {', '.join(materials) or 'none'})"})
            continue
        if given.id in seen:
            problems.append({"field": f"{where}.id", "problem": f"material {given.id!r} is listed twice"})
        seen.add(given.id)
        if given.provided == "promise" and not mat.get("promise_allowed"):
            problems.append({"field": f"{where}.provided",
                             "problem": f"material {given.id!r} ({mat['title']['zh-CN']}) cannot be promised for "
                                        "later (告知承诺 not allowed): provide it as an e-licence or a scan"})
        elif given.provided == "e_licence":
            licence_type = mat.get("e_licence")
            if not licence_type:
                problems.append({"field": f"{where}.provided",
                                 "problem": f"no e-licence replaces material {given.id!r}: scan it"
                                            + (" or promise it" if mat.get("promise_allowed") else "")})
            else:
                if held is None:
                    held = {lic["type"] for lic in residents.licences(residents.find_resident(number))}
                if licence_type not in held:
                    problems.append({"field": f"{where}.provided",
                                     "problem": f"the citizen holds no e-licence of type {licence_type!r}: scan "
                                                "the paper instead" + (" or promise it" if mat.get("promise_allowed")
                                                                       else "")})
        elif given.provided == "scan":
            digest = scan_digest(given.reference)
            if digest is None:
                problems.append({"field": f"{where}.reference",
                                 "problem": f"a scanned material {given.id!r} needs the reference \"scan:<sha256>\" "
                                            f"that PUT /v1/scans answers: {UPLOAD_FIRST}"})
            elif digest not in stored:
                problems.append({"field": f"{where}.reference",
                                 "problem": f"the platform stores no scan {given.reference}: {UPLOAD_FIRST}"})
    for mat_id, mat in materials.items():
        if mat.get("required") and mat_id not in seen:
            problems.append({"field": "materials", "problem": f"required material {mat_id!r} "
                                                              f"({mat['title']['zh-CN']}) is missing"})
    return problems


def terminal_of(terminal_receipt: str) -> str:
    """The terminal id inside a terminal receipt "L20261127-T-0001-000042" -> "T-0001"."""
    return terminal_receipt[10:terminal_receipt.rindex("-")]


def check_terminal_receipt(s: Session, body: ApplicationRequest, terminal_id: str) -> None:
    """A terminal receipt names the signing terminal and is used once: the progress page finds
    the application by it, so two applications must never share one."""
    number = body.terminal_receipt
    if number is None:
        return
    if terminal_of(number) != terminal_id:
        raise invalid("terminal_receipt", f"names terminal {terminal_of(number)!r}, but the request is signed by "
                                          f"{terminal_id!r}: send the number this terminal's outbox printed")
    taken = s.execute(select(m.Application.receipt_number).where(
        m.Application.terminal_id == terminal_id, m.Application.terminal_receipt == number)).scalar_one_or_none()
    if taken is not None:
        raise ApiError(409, "terminal_receipt_taken",
                       f"terminal receipt {number} already belongs to application {taken} (submitted with another "
                       "Idempotency-Key): a retry must reuse the first key; a new submission needs a new outbox number")


def _departments(item: dict[str, Any]) -> list[tuple[dict[str, str], str]]:
    return [(item["lead_department"], "lead")] + [(d, "cooperating") for d in item["cooperating_departments"]]


def _status(task: m.DepartmentTask) -> DepartmentStatus:
    return DepartmentStatus(department=task.department, name=Text.model_validate(task.department_name),
                            role=task.role, status=task.status)  # type: ignore[arg-type]


def summary(row: m.Application) -> ApplicationSummary:
    return ApplicationSummary(receipt_number=row.receipt_number, item_id=row.item_id,
                              title=Text.model_validate(row.item_title), status=row.status,
                              accepted_at=utc(row.accepted_at), departments=[_status(t) for t in row.tasks])


def _create(s: Session, item: dict[str, Any], body: ApplicationRequest, terminal_id: str,
            secret: bytes) -> tuple[int, dict[str, Any]]:
    now = m.utcnow()
    receipt = next_number(s, "SQ")
    number = body.citizen.id_number.upper()
    mats = {mat["id"]: mat for mat in item.get("materials", [])}
    commitments = [{"material_id": g.id, "title": mats[g.id]["title"], "commitment": mats[g.id]["commitment"]}
                   for g in body.materials if g.provided == "promise"]
    app = m.Application(
        receipt_number=receipt, item_id=item["id"], item_title=item["title"], terminal_id=terminal_id,
        visit_id=body.visit_id, citizen_id_number=number, citizen_name=body.citizen.name,
        citizen_key=citizen_key(secret, number), answers=dict(body.answers),
        materials=[g.model_dump(mode="json") for g in body.materials], commitments=commitments,
        face_check=body.face_check.model_dump(mode="json") if body.face_check else None,
        status="accepted", submitted_at=naive_utc(body.submitted_at), accepted_at=now,
        terminal_receipt=body.terminal_receipt)
    s.add(app)
    app.history.append(m.StatusHistory(department=None, status="accepted", at=now,
                                       note={"zh-CN": f"已受理，受理编号 {receipt}",
                                             "en": f"accepted as {receipt}"}))
    for dep, role in _departments(item):
        name = {"zh-CN": dep["zh-CN"], "en": dep["en"]}
        app.tasks.append(m.DepartmentTask(department=dep["id"], department_name=name,
                                          role=role, status=RECEIVED, updated_at=now))
        lead = "牵头" if role == "lead" else "配合"
        app.history.append(m.StatusHistory(department=dep["id"], status=RECEIVED, at=now,
                                           note={"zh-CN": f"已推送至{dep['zh-CN']}（{lead}办理）",
                                                 "en": f"sent to {dep['en']} ({role})"}))
    s.flush()
    answer = ApplicationAccepted(receipt_number=receipt, status="accepted", item_id=item["id"],
                                 departments=[_status(t) for t in app.tasks], accepted_at=utc(now))
    log.info("application %s accepted: item %s, terminal %s, citizen %s, %d department(s), %d promised",
             receipt, item["id"], terminal_id, mask_id_number(number), len(app.tasks), len(commitments))
    return 201, as_json(answer)


@router.post("/v1/applications", status_code=201, response_model=ApplicationAccepted,
             responses=errors(400, 401, 403, 404, 409, 413, 422, described={
                 409: "Idempotency-Key reused with another body (idempotency_conflict), or the terminal_receipt "
                      "already belongs to another application (terminal_receipt_taken)"}),
             operation_id="submitApplication")
def submit(body: ApplicationRequest, platform: PlatformDep, terminal: TerminalDep,
           idempotency_key: IdempotencyKey) -> JSONResponse:
    """Submit an application; a repeat with the same Idempotency-Key and body returns the first answer."""
    from govplatform.api.citizens import check_face

    def create(s: Session) -> tuple[int, dict[str, Any]]:
        # checked inside: a repeat of an accepted submission is answered before any check
        item = get_item(body.item_id)
        if item is None:
            raise ApiError(404, "not_found", f"no catalogue item {body.item_id!r}: see GET /v1/catalogue")
        check_face(body.face_check, platform.settings.require_face_check)
        scanned = [d for g in body.materials if g.provided == "scan" and (d := scan_digest(g.reference))]
        problems = check_application(item, body, stored_scans(s, scanned))
        if problems:
            raise invalid_many(problems)
        check_terminal_receipt(s, body, terminal.terminal_id)
        return _create(s, item, body, terminal.terminal_id, platform.secret)

    return idempotent(platform, terminal.terminal_id, idempotency_key, "POST /v1/applications",
                      body.hashed_form(), create)


@router.get("/v1/applications/{receipt_number}", response_model=ApplicationDetail,
            responses=errors(401, 403, 404, 422), operation_id="getApplication")
def status(receipt_number: str, platform: PlatformDep, citizen: CitizenDep) -> ApplicationDetail:
    """Status, each department's part, commitments and history; only for the citizen who applied."""
    with platform.db.session() as s:
        row = s.execute(select(m.Application)
                        .where(m.Application.receipt_number == receipt_number)).scalar_one_or_none()
        if row is None or row.citizen_key != citizen.citizen_key:
            raise ApiError(404, "not_found", f"no application {receipt_number!r} for the citizen of this token")
        return ApplicationDetail(
            receipt_number=row.receipt_number, item_id=row.item_id, title=Text.model_validate(row.item_title),
            status=row.status, submitted_at=utc(row.submitted_at), accepted_at=utc(row.accepted_at),
            departments=[_status(t) for t in row.tasks],
            commitments=[Commitment.model_validate(c) for c in row.commitments],
            history=[HistoryEntry(at=utc(h.at), status=h.status, department=h.department,
                                  note=Text.model_validate(h.note)) for h in row.history])
