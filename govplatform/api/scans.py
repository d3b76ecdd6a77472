"""PUT /v1/scans/{sha256}: a scanned paper material, uploaded before the application that names it.

Why a call of its own: a JSON body is capped at `max_body_bytes` (1 MiB by default) and a
queued application must stay small and byte-identical on every retry, so a scan (a JPEG of
a few hundred KB, or a PDF) goes up raw, by itself, and the application names it
"scan:<sha256>". Content-addressed: the path is the SHA-256 of the body, so a repeat (a
retry after a lost answer, one document used twice, the same paper from another terminal)
stores nothing twice: 201 the first time, 200 after. The body must be what its
Content-Type says (magic bytes), so a department never opens a "PDF" that is something else.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govplatform import models as m
from govplatform.api.deps import PlatformDep, TerminalDep, as_json
from govplatform.errors import ApiError, errors
from govplatform.runtime import Platform
from govplatform.schemas import SCAN_MEDIA_TYPES, SCAN_REFERENCE, SHA256_HEX, ScanStored

router = APIRouter(tags=["scans"])
log = logging.getLogger("govplatform.scans")

UPLOAD_FIRST = "upload the scan first with PUT /v1/scans/{sha256}"
_REFERENCE = re.compile(SCAN_REFERENCE)
# what each accepted media type starts with (JPEG: SOI + a marker; PNG: its signature; PDF: the header)
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "application/pdf": b"%PDF-"}


def reference(sha256: str) -> str:
    return f"scan:{sha256}"


def scan_digest(ref: str | None) -> str | None:
    """The SHA-256 a material's "scan:<sha256>" reference names; None when it is not of that form."""
    return ref[5:] if ref is not None and _REFERENCE.match(ref) else None


def stored_scans(s: Session, digests: Iterable[str]) -> set[str]:
    """Which of these digests name a stored scan (one query, content not loaded)."""
    wanted = set(digests)
    if not wanted:
        return set()
    return set(s.execute(select(m.Scan.sha256).where(m.Scan.sha256.in_(wanted))).scalars())


def sniffed_type(data: bytes) -> str | None:
    """The accepted media type the bytes begin like, or None."""
    return next((kind for kind, magic in _MAGIC.items() if data.startswith(magic)), None)


async def raw_body(request: Request) -> bytes:
    """The body as sent (the signature middleware has read it once and replays it)."""
    return await request.body()


def media_type_of(request: Request) -> str:
    """Content-Type without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _answer(sha256: str, media_type: str, size: int) -> dict[str, Any]:
    return as_json(ScanStored(reference=reference(sha256), media_type=media_type,  # type: ignore[arg-type]
                              size=size))


def check_upload(sha256: str, media_type: str, body: bytes) -> None:
    """Refuse what must not be stored: 415 for a type the platform does not take, 422 for a
    body that is empty, is not the bytes the path names, or is not of its declared type."""
    if media_type not in SCAN_MEDIA_TYPES:
        shown = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
        raise ApiError(415, "unsupported_media_type",
                       f"a scan is sent with {shown}; send the raw bytes with Content-Type "
                       f"{', '.join(SCAN_MEDIA_TYPES)}")
    if not body:
        raise ApiError(422, "validation", "body: the scan is empty: send the file's bytes as the body",
                       [{"field": "body", "problem": "empty"}])
    actual = hashlib.sha256(body).hexdigest()
    if actual != sha256:
        raise ApiError(422, "scan_digest_mismatch",
                       f"the body's SHA-256 is {actual}, but the path names {sha256}: the path must be the "
                       "lower-case hex SHA-256 of exactly the bytes sent (was the file changed or cut?)",
                       [{"field": "path.sha256", "problem": "is not the SHA-256 of the body"}])
    sniffed = sniffed_type(body)
    if sniffed != media_type:
        found = f"looks like {sniffed}" if sniffed else "is none of image/jpeg, image/png, application/pdf"
        raise ApiError(422, "scan_content_mismatch",
                       f"the body is declared {media_type} but {found} (checked by its first bytes): send a "
                       "real file of the declared type",
                       [{"field": "body", "problem": f"not {media_type} content"}])


def store(platform: Platform, sha256: str, media_type: str, body: bytes,
          terminal_id: str) -> tuple[int, dict[str, Any]]:
    """Insert once; (201, answer) when stored now, (200, answer) when it already was."""
    for attempt in range(2):
        try:
            with platform.db.session() as s:
                known = s.execute(select(m.Scan.media_type, m.Scan.size)
                                  .where(m.Scan.sha256 == sha256)).first()
                if known is not None:
                    return 200, _answer(sha256, known.media_type, known.size)
                s.add(m.Scan(sha256=sha256, terminal_id=terminal_id, uploaded_at=m.utcnow(),
                             media_type=media_type, size=len(body), content=body))
            log.info("scan %s... stored: %s, %d bytes, from terminal %s", sha256[:12], media_type, len(body),
                     terminal_id)
            return 201, _answer(sha256, media_type, len(body))
        except IntegrityError:
            # the same scan uploaded concurrently (PostgreSQL) committed first: answer as a repeat
            if attempt:
                raise
    raise AssertionError("unreachable")


_REQUEST_BODY = {"requestBody": {
    "required": True,
    "description": "the file's raw bytes (no JSON, no base64); at most the platform's max_body_bytes "
                   "(1 MiB by default). Its SHA-256 must be the path's `sha256`; its first bytes must match "
                   "the Content-Type",
    "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in SCAN_MEDIA_TYPES},
}}


@router.put("/v1/scans/{sha256}", status_code=201, response_model=ScanStored,
            response_description="stored now",
            responses={200: {"model": ScanStored, "description": "already stored (same content): nothing changed"},
                       **errors(401, 413, 415, 422, described={
                           401: "Unsigned, stale, replayed or badly signed request",
                           413: "The scan is larger than the platform's limit (max_body_bytes): scan at a "
                                "lower resolution or quality",
                           415: "Content-Type is not image/jpeg, image/png or application/pdf",
                           422: "The body is empty, its SHA-256 is not the path's (scan_digest_mismatch), "
                                "or it is not of its Content-Type (scan_content_mismatch)"})},
            operation_id="putScan", openapi_extra=_REQUEST_BODY)
def put_scan(sha256: Annotated[str, Path(pattern=SHA256_HEX, description="lower-case hex SHA-256 of the body")],
             platform: PlatformDep, terminal: TerminalDep, body: Annotated[bytes, Depends(raw_body)],
             media_type: Annotated[str, Depends(media_type_of)]) -> JSONResponse:
    """Store a scanned paper material by its content; name it in an application as "scan:<sha256>"."""
    check_upload(sha256, media_type, body)
    status, answer = store(platform, sha256, media_type, body, terminal.terminal_id)
    return JSONResponse(answer, status_code=status)
