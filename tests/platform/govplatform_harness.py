"""Test harness of the reference platform, started for real: `python -m govplatform serve` on 127.0.0.1, a free
port, a temporary data dir; clients are `requests` with `govapi.signing.sign_headers`.

Every response a test receives through `Terminal.call` (or `check_contract`) is checked
against the committed contract `govapi/openapi.json`: the status code must be documented
for the operation and the body must match its schema.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from govapi.signing import KeyPair, sign_headers

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "govapi" / "openapi.json"
CARDS = ROOT / "devices" / "idcard" / "cards"
START_TIMEOUT_S = 60


# -- the contract ----------------------------------------------------------------------------------
_schema_lock = threading.Lock()
_schema: Any = None
_doc: dict[str, Any] | None = None


def _contract() -> tuple[Any, dict[str, Any]]:
    global _schema, _doc
    with _schema_lock:
        if _schema is None:
            import schemathesis

            _doc = json.loads(OPENAPI.read_text(encoding="utf-8"))
            _schema = schemathesis.openapi.from_path(str(OPENAPI))
        assert _doc is not None
        return _schema, _doc


def check_contract(resp: requests.Response) -> None:
    """Fail unless the response's status is documented for its operation and its body matches."""
    if resp.status_code >= 500:
        pytest.fail(f"server error {resp.status_code} for {resp.request.method} {resp.request.path_url}: {resp.text}")
    schema, doc = _contract()
    method = str(resp.request.method)
    path = str(resp.request.path_url).split("?")[0]
    op = schema.find_operation_by_path(method, path)
    if op is None:  # not an operation of the API (unknown path or method): the error shape still holds
        body = resp.json()
        assert set(body) <= {"error", "message", "fields"} and body["message"], body
        return
    responses = doc["paths"][op.path][method.lower()]["responses"]
    assert str(resp.status_code) in responses, (
        f"{method} {op.path} answered {resp.status_code}, not documented ({', '.join(responses)}): {resp.text[:300]}")
    op.validate_response(resp)


# -- a platform process --------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[str]
    log_file: Path
    database_url: str = ""

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'platform.db'}"

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `python -m govplatform ...` against this server's data dir."""
        return subprocess.run([sys.executable, "-m", "govplatform", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120, check=check)

    def enrolment_code(self, terminal_id: str) -> str:
        from govplatform.runtime import Platform, issue_enrolment_code
        from govplatform.settings import Settings

        platform = Platform.open(Settings(data_dir=self.data_dir, database_url=self.database_url), migrate=False)
        try:
            return issue_enrolment_code(platform, terminal_id)[0]
        finally:
            platform.db.dispose()

    def enrol(self, terminal_id: str | None = None, algorithm: str = "sm2-sm3") -> Terminal:
        terminal_id = terminal_id or f"T-{uuid.uuid4().hex[:10]}"
        keys = new_keys(algorithm)
        resp = requests.post(f"{self.url}/v1/terminals/enrol", timeout=10, json={
            "enrolment_code": self.enrolment_code(terminal_id), "terminal_id": terminal_id,
            "algorithm": algorithm, "public_key": keys.public_key, "location": "测试网点 / test branch"})
        check_contract(resp)
        assert resp.status_code == 201, resp.text
        return Terminal(self, terminal_id, keys)

    def db_count(self, sql: str, **params: Any) -> int:
        """Count rows straight from the server's database (read only)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(sql), params).scalar_one())
        finally:
            engine.dispose()


def start_server(data_dir: Path, port: int = 0, **settings: str) -> Iterator[Server]:
    """Start one platform process (on `port`, 0: any free one); stop exactly that process afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVPLATFORM_")}
    env.update({"GOVPLATFORM_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    env.update({f"GOVPLATFORM_{k.upper()}": v for k, v in settings.items()})
    log_file = data_dir / "server.log"
    with log_file.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "govplatform", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = _wait_for_url(proc, log_file)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if requests.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"platform did not become healthy; log:\n{log_file.read_text()}")
            time.sleep(0.1)
        server = Server(url, data_dir, env, proc, log_file, settings.get("database_url", ""))
        upload_sample_scan(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()


def _wait_for_url(proc: subprocess.Popen[str], log_file: Path) -> str:
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not found:
        raise RuntimeError(f"platform did not print its URL; log:\n{log_file.read_text()}")
    return found[0]


# -- a terminal ------------------------------------------------------------------------------------
@dataclass
class Terminal:
    server: Server
    terminal_id: str
    keys: KeyPair
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None,
             token: str | None = None, key: str | None = None, sign: bool = True,
             headers: dict[str, str] | None = None, now: float | None = None,
             contract: bool = True) -> requests.Response:
        """One request as a kiosk sends it: JSON body, signed, optional bearer and idempotency key."""
        body = raw if raw is not None else (b"" if payload is None else
                                            json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        sent: dict[str, str] = {}
        if payload is not None or raw is not None:
            sent["Content-Type"] = "application/json"
        if sign:
            sent.update(sign_headers(self.keys, self.terminal_id, method, path, body, now=now))
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if key:
            sent["Idempotency-Key"] = key
        sent.update(headers or {})
        resp = self.session.request(method, self.server.url + path, data=body or None, headers=sent, timeout=30)
        if contract:
            check_contract(resp)
        return resp

    def put_scan(self, data: bytes, media_type: str = "image/jpeg", sha256: str | None = None,
                 **options: Any) -> requests.Response:
        """Upload a scan as a kiosk does: raw bytes, their SHA-256 in the path, signed."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        headers = {"Content-Type": media_type, **options.pop("headers", {})}
        return self.call("PUT", f"/v1/scans/{digest}", raw=data, headers=headers, **options)

    def identify(self, card: dict[str, Any], visit_id: str | None = None,
                 face_check: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"visit_id": visit_id or new_visit(), "card": card}
        if face_check is not None:
            payload["face_check"] = face_check
        resp = self.call("POST", "/v1/citizens/identify", payload)
        assert resp.status_code == 201, resp.text
        return resp.json()


def new_keys(algorithm: str = "sm2-sm3") -> KeyPair:
    return KeyPair.generate(algorithm)


def new_visit() -> str:
    return f"visit-{uuid.uuid4().hex[:12]}"


def new_key() -> str:
    return uuid.uuid4().hex


def card_from_emulator(name: str) -> dict[str, Any]:
    """The card the kiosk's ID-card emulator reads for this synthetic person, as the kiosk sends it."""
    raw = tomllib.loads((CARDS / f"{name}.toml").read_text(encoding="utf-8"))
    keys = ("card_type", "id_number", "name", "birth_date", "gender_code", "nation_code", "address",
            "valid_from", "valid_to", "issuer")
    return {k: (raw[k].isoformat() if isinstance(raw[k], dt.date) else raw[k]) for k in keys if k in raw}


def synthetic_card(birth: dt.date = dt.date(2001, 2, 3), sequence: int = 357,
                   name: str = "欧阳测试") -> dict[str, Any]:
    """A valid resident card (check digit, birth date, gender) of a person the platform has no file for."""
    first17 = f"110101{birth:%Y%m%d}{sequence:03d}"
    total = sum(int(c) * w for c, w in zip(first17, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)))
    return {"card_type": "resident", "id_number": first17 + "10X98765432"[total % 11], "name": name,
            "birth_date": birth.isoformat(), "gender_code": "1" if sequence % 2 else "2", "nation_code": "01",
            "address": "北京市东城区示例街道合成路9号",
            "valid_from": "2020-01-01", "valid_to": "2040-01-01",
            "issuer": "北京市公安局东城分局"}


PASSED_FACE = {"method": "card_photo_1to1", "passed": True, "score": 0.81, "liveness": True,
               "model_versions": {"detector": "yunet-2023", "embedder": "sface-2021"},
               "evidence_signature": "ab" * 32}


# -- scans ---------------------------------------------------------------------------------------
def jpeg(size: tuple[int, int] = (64, 48), shade: int = 235) -> bytes:
    """A small real JPEG (a grey page); another `shade` makes other bytes, so another scan."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", size, shade).save(out, "JPEG", quality=80)
    return out.getvalue()


def pdf(page: bytes | None = None) -> bytes:
    """A one-page PDF around a JPEG, as the terminal's scanner makes it (img2pdf)."""
    import img2pdf

    return bytes(img2pdf.convert(page or jpeg()))


def scan_reference(data: bytes) -> str:
    return "scan:" + hashlib.sha256(data).hexdigest()


SAMPLE_SCAN = jpeg()
SAMPLE_SCAN_REFERENCE = scan_reference(SAMPLE_SCAN)


def upload_sample_scan(server: Server) -> None:
    """Every harness server holds SAMPLE_SCAN, so `materials_for` can name it in any submission."""
    resp = server.enrol("T-HARNESS-SCANS").put_scan(SAMPLE_SCAN, "image/jpeg")
    assert resp.status_code in (200, 201), resp.text


# -- building a valid submission from the catalogue -----------------------------------------------
SAMPLE_VALUES = {"text": "测试内容", "date": "2025-03-01", "phone": "13800000011", "number": "1"}


def answers_for(item: dict[str, Any], prefilled: dict[str, Any] | None = None) -> dict[str, str]:
    """Every form field answered: the prefilled value when there is one, else a valid sample."""
    out: dict[str, str] = {}
    for f in item["form"]:
        if prefilled and f["key"] in prefilled:
            out[f["key"]] = prefilled[f["key"]]["value"]
        elif f["type"] == "choice":
            out[f["key"]] = f["choices"][0]["value"]
        else:
            out[f["key"]] = SAMPLE_VALUES[f["type"]]
    return out


def materials_for(item: dict[str, Any], held: frozenset[str] | set[str] = frozenset()) -> list[dict[str, str]]:
    """Every material provided: by e-licence when the citizen holds it, else scanned (the sample
    scan every harness server holds)."""
    out = []
    for mat in item["materials"]:
        if mat["e_licence"] and mat["e_licence"] in held:
            out.append({"id": mat["id"], "provided": "e_licence"})
        else:
            out.append({"id": mat["id"], "provided": "scan", "reference": SAMPLE_SCAN_REFERENCE})
    return out


def submission(item: dict[str, Any], card: dict[str, Any], **over: Any) -> dict[str, Any]:
    body = {"item_id": item["id"], "visit_id": new_visit(),
            "citizen": {"id_number": card["id_number"], "name": card["name"]},
            "answers": answers_for(item), "materials": materials_for(item),
            "submitted_at": dt.datetime.now(dt.UTC).isoformat()}
    body.update(over)
    return body


def find_item(catalogue: dict[str, Any], predicate: Any) -> dict[str, Any]:
    for item in catalogue["items"]:
        if predicate(item):
            return item
    pytest.fail("the seeded catalogue has no item of the kind this test needs: check govplatform/data/catalogue")
