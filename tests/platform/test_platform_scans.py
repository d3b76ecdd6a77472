"""Scanned materials: PUT /v1/scans/{sha256} stores a scan by content, and an application may
name only a scan the platform holds ("scan:<sha256>")."""
from __future__ import annotations

import hashlib
from typing import Any

from govplatform_harness import (
    SAMPLE_SCAN_REFERENCE,
    Server,
    Terminal,
    find_item,
    jpeg,
    materials_for,
    new_key,
    pdf,
    scan_reference,
    submission,
)


def _scan_row(server: Server, digest: str) -> dict[str, Any] | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT terminal_id, media_type, size, content FROM scans WHERE sha256 = :d"),
                               {"d": digest}).mappings().first()
            return dict(row) if row is not None else None
    finally:
        engine.dispose()


def _scans(server: Server) -> int:
    return server.db_count("SELECT count(*) FROM scans")


def test_jpeg_is_stored_once_by_content(terminal: Terminal, server: Server) -> None:
    data = jpeg(shade=101)
    digest = hashlib.sha256(data).hexdigest()
    first = terminal.put_scan(data, "image/jpeg")
    assert first.status_code == 201, first.text
    assert first.json() == {"reference": f"scan:{digest}", "media_type": "image/jpeg", "size": len(data)}
    row = _scan_row(server, digest)
    assert row is not None and bytes(row["content"]) == data
    assert (row["terminal_id"], row["media_type"], row["size"]) == (terminal.terminal_id, "image/jpeg", len(data))
    before = _scans(server)
    again = terminal.put_scan(data, "image/jpeg")  # a retry after a lost answer
    assert again.status_code == 200 and again.json() == first.json()
    other = server.enrol().put_scan(data, "image/jpeg; q=1")  # the same paper from another terminal
    assert other.status_code == 200 and other.json() == first.json()
    assert _scans(server) == before
    assert _scan_row(server, digest)["terminal_id"] == terminal.terminal_id  # type: ignore[index]


def test_pdf_and_png_are_stored(terminal: Terminal, server: Server) -> None:
    document = pdf(jpeg(shade=102))
    resp = terminal.put_scan(document, "application/pdf")
    assert resp.status_code == 201, resp.text
    assert resp.json()["media_type"] == "application/pdf" and resp.json()["reference"] == scan_reference(document)
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    resp = terminal.put_scan(out.getvalue(), "image/png")
    assert resp.status_code == 201 and resp.json()["media_type"] == "image/png"


def test_body_that_is_not_what_the_path_names_is_422(terminal: Terminal, server: Server) -> None:
    data = jpeg(shade=103)
    wrong = hashlib.sha256(data + b"x").hexdigest()
    before = _scans(server)
    resp = terminal.put_scan(data, "image/jpeg", sha256=wrong)
    assert resp.status_code == 422 and resp.json()["error"] == "scan_digest_mismatch"
    assert hashlib.sha256(data).hexdigest() in resp.json()["message"]
    assert resp.json()["fields"] == [{"field": "path.sha256", "problem": "is not the SHA-256 of the body"}]
    upper = terminal.put_scan(data, "image/jpeg", sha256=hashlib.sha256(data).hexdigest().upper())
    assert upper.status_code == 422 and upper.json()["fields"][0]["field"] == "path.sha256"
    assert _scans(server) == before


def test_body_that_is_not_its_content_type_is_422(terminal: Terminal, server: Server) -> None:
    before = _scans(server)
    resp = terminal.put_scan(jpeg(shade=104), "application/pdf")
    assert resp.status_code == 422 and resp.json()["error"] == "scan_content_mismatch"
    assert "looks like image/jpeg" in resp.json()["message"]
    resp = terminal.put_scan(b"GIF89a" + bytes(100), "image/png")
    assert resp.status_code == 422 and "is none of" in resp.json()["message"]
    empty = terminal.put_scan(b"", "image/jpeg")
    assert empty.status_code == 422 and empty.json()["fields"] == [{"field": "body", "problem": "empty"}]
    assert _scans(server) == before


def test_other_content_types_are_415(terminal: Terminal) -> None:
    data = jpeg(shade=105)
    for content_type in ("text/plain", "application/json", "image/gif"):
        resp = terminal.put_scan(data, content_type)
        assert resp.status_code == 415 and resp.json()["error"] == "unsupported_media_type", resp.text
        assert "image/jpeg, image/png, application/pdf" in resp.json()["message"]


def test_scan_larger_than_the_limit_is_413(terminal: Terminal, server: Server) -> None:
    data = jpeg(shade=106) + bytes(1024 * 1024)  # past max_body_bytes (1 MiB by default)
    before = _scans(server)
    resp = terminal.put_scan(data, "image/jpeg")
    assert resp.status_code == 413 and resp.json()["error"] == "body_too_large"
    assert "by reference" in resp.json()["message"]
    assert _scans(server) == before


def test_unsigned_or_altered_upload_is_401(terminal: Terminal, server: Server) -> None:
    data = jpeg(shade=107)
    before = _scans(server)
    resp = terminal.put_scan(data, "image/jpeg", sign=False)
    assert resp.status_code == 401 and resp.json()["error"] == "signature"
    # signed for other bytes than those sent: the signature covers the raw body
    from govapi.signing import sign_headers

    digest = hashlib.sha256(data).hexdigest()
    path = f"/v1/scans/{digest}"
    headers = sign_headers(terminal.keys, terminal.terminal_id, "PUT", path, data[:-1] + b"\x00")
    resp = terminal.call("PUT", path, raw=data, sign=False, headers={"Content-Type": "image/jpeg", **headers})
    assert resp.status_code == 401 and "bad signature" in resp.json()["message"]
    assert _scans(server) == before


def _item(catalogue: dict[str, Any]) -> dict[str, Any]:
    return find_item(catalogue, lambda i: any(m["required"] and not m["e_licence"] for m in i["materials"]))


def test_application_naming_an_unknown_scan_is_422(terminal: Terminal, catalogue: dict,
                                                   resident_card: dict) -> None:
    item = _item(catalogue)
    n, scanned = next((n, m) for n, m in enumerate(materials_for(item)) if m["provided"] == "scan")
    never_uploaded = scan_reference(jpeg(shade=108))
    for reference, says in ((never_uploaded, f"the platform stores no scan {never_uploaded}"),
                            (f"scan-{scanned['id']}", 'needs the reference "scan:<sha256>"'),
                            (None, 'needs the reference "scan:<sha256>"'),
                            (never_uploaded.upper().replace("SCAN:", "scan:"), "needs the reference")):
        mats = materials_for(item)
        mats[n] = {"id": scanned["id"], "provided": "scan", **({"reference": reference} if reference else {})}
        resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, materials=mats),
                             key=new_key())
        assert resp.status_code == 422, resp.text
        problem = next(p for p in resp.json()["fields"] if p["field"] == f"materials[{n}].reference")
        assert says in problem["problem"]
        assert "upload the scan first with PUT /v1/scans/{sha256}" in problem["problem"]


def test_application_naming_an_uploaded_scan_is_accepted(terminal: Terminal, server: Server, catalogue: dict,
                                                         resident_card: dict) -> None:
    item = _item(catalogue)
    document = pdf(jpeg(shade=109))
    assert terminal.put_scan(document, "application/pdf").status_code == 201
    mats = [dict(m, reference=scan_reference(document)) if m["provided"] == "scan" else m
            for m in materials_for(item)]
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card, materials=mats), key=new_key())
    assert resp.status_code == 201, resp.text
    named = server.db_count("SELECT count(*) FROM applications WHERE receipt_number = :r AND materials LIKE :s",
                            r=resp.json()["receipt_number"], s=f"%{scan_reference(document)}%")
    assert named == 1
    # the sample scan every harness server holds was uploaded by another terminal: any terminal may name it
    resp = terminal.call("POST", "/v1/applications", submission(item, resident_card), key=new_key())
    assert resp.status_code == 201 and SAMPLE_SCAN_REFERENCE in str(materials_for(item))
