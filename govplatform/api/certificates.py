"""GET /v1/applications/{receipt_number}/certificate: issue (once) and hand out a certificate.

Only the applicant (citizen token) gets it, and only for an application of a catalogue item
of kind "certificate". The first call issues: a fresh verification code, the time, the lead
department as issuer and the verification link are fixed and stored with masked holder
data and the SM3 digest of the document; the application is marked completed. Later calls
rebuild the same document from the same facts, so the code never changes. If the person's
file changed in between, the rebuilt document would differ from what was issued: that is
refused (409) rather than silently handing out a second version under the same code.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govplatform import models as m
from govplatform import residents
from govplatform.api.deps import Citizen, CitizenDep, PlatformDep
from govplatform.catalogue import get_item
from govplatform.certificates import (
    Issue,
    NoRecord,
    Unavailable,
    build_document,
    document_sm3,
    new_verification_code,
    verify_url,
)
from govplatform.errors import ApiError, errors
from govplatform.privacy import mask_id_number, mask_name
from govplatform.runtime import Platform, utc
from govplatform.schemas import CertificateDocument

router = APIRouter(tags=["certificates"])
log = logging.getLogger("govplatform.certificates")

COMPLETED = "completed"


def applicants_application(s: Session, receipt_number: str, citizen: Citizen) -> m.Application:
    """The application, if this citizen made it; otherwise 404 that does not tell whether it exists."""
    row = s.execute(select(m.Application).where(m.Application.receipt_number == receipt_number)).scalar_one_or_none()
    if row is None or row.citizen_key != citizen.citizen_key:
        raise ApiError(404, "not_found", f"no application {receipt_number!r} for the citizen of this token")
    return row


def _certificate_item(row: m.Application) -> dict[str, Any]:
    item = get_item(row.item_id)
    if item is None or item["kind"] != "certificate":
        kind = item["kind"] if item else "no longer in the catalogue"
        raise ApiError(409, "not_a_certificate",
                       f"application {row.receipt_number} is for item {row.item_id!r} ({kind}), not a certificate: "
                       "only items of kind 'certificate' have one (see GET /v1/catalogue)")
    return item


def _build(item: dict[str, Any], row: m.Application, issue: Issue) -> CertificateDocument:
    try:
        return build_document(item, row.answers, row.citizen_name, row.citizen_id_number,
                               residents.find_resident(row.citizen_id_number), issue)
    except NoRecord as exc:
        raise ApiError(404, "no_record", f"no certificate for application {row.receipt_number}: {exc}") from None
    except Unavailable as exc:
        raise ApiError(409, "certificate_unavailable", str(exc)) from None


def _issued(row: m.Application, cert: m.IssuedCertificate, item: dict[str, Any]) -> CertificateDocument:
    issue = Issue(cert.verification_code, utc(cert.issued_at), cert.issuer, cert.title, cert.verify_url)
    document = _build(item, row, issue)
    if document_sm3(document) != cert.document_sm3:
        log.warning("certificate %s for %s no longer matches its digest: the record behind it changed",
                    cert.verification_code, row.receipt_number)
        raise ApiError(409, "certificate_changed",
                       f"the record behind certificate {cert.verification_code} (issued "
                       f"{utc(cert.issued_at).isoformat(timespec='seconds')}) changed since: the certificate as "
                       "issued stays valid; for the current record the citizen applies again")
    return document


def _issue(s: Session, platform: Platform, row: m.Application, item: dict[str, Any]) -> CertificateDocument:
    now = m.utcnow().replace(microsecond=0)
    code = new_verification_code()
    issue = Issue(code, utc(now), item["lead_department"]["zh-CN"], dict(item["title"]),
                  verify_url(platform.settings.public_url, code))
    document = _build(item, row, issue)
    s.add(m.IssuedCertificate(verification_code=code, receipt_number=row.receipt_number, item_id=row.item_id,
                              title=issue.title, holder_name_masked=mask_name(row.citizen_name),
                              holder_id_masked=mask_id_number(row.citizen_id_number), issuer=issue.issuer,
                              verify_url=issue.verify_url, issued_at=now, document_sm3=document_sm3(document)))
    row.status = COMPLETED
    note = {"zh-CN": "证明已出具（电子印章，可在线核验）", "en": "certificate issued (electronic seal, verifiable online)"}
    for task in row.tasks:
        task.status, task.updated_at = COMPLETED, now
        row.history.append(m.StatusHistory(department=task.department, status=COMPLETED, at=now, note=note))
    row.history.append(m.StatusHistory(department=None, status=COMPLETED, at=now, note=note))
    s.flush()
    log.info("certificate issued for %s: item %s, %d table row(s), citizen %s", row.receipt_number, row.item_id,
             len(document.table.rows), mask_id_number(row.citizen_id_number))
    return document


@router.get("/v1/applications/{receipt_number}/certificate", response_model=CertificateDocument,
            responses=errors(401, 403, 404, 409, 422, described={
                404: "No such application for this citizen (not_found), or the platform holds no record to "
                     "certify for the applicant (no_record)",
                409: "The application's item is not a certificate (not_a_certificate), the platform cannot issue "
                     "this certificate (certificate_unavailable), or the record changed since it was issued "
                     "(certificate_changed)"}),
            operation_id="getCertificate")
def certificate(receipt_number: str, platform: PlatformDep, citizen: CitizenDep) -> CertificateDocument:
    """The certificate of the citizen's own application of a certificate item: issued on the first
    call, the same document (and verification code) on every later one."""
    for attempt in range(2):
        try:
            with platform.db.session() as s:
                row = applicants_application(s, receipt_number, citizen)
                item = _certificate_item(row)
                cert = s.execute(select(m.IssuedCertificate).where(
                    m.IssuedCertificate.receipt_number == row.receipt_number)).scalar_one_or_none()
                return _issued(row, cert, item) if cert is not None else _issue(s, platform, row, item)
        except IntegrityError:
            # a concurrent first call issued it (possible on PostgreSQL): answer with that one
            if attempt:
                raise
    raise AssertionError("unreachable")
