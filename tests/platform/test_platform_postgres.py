"""The same platform on PostgreSQL: migrations, and the real server through its main paths.

Needs PostgreSQL's server binaries (initdb, pg_ctl) and the psycopg driver, which
scripts/setup.sh installs; without them the tests fail and say so. The cluster is a throw-away one in a temporary directory,
listening on a Unix socket only, stopped (that cluster only) at the end.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from govplatform_harness import Server, card_from_emulator, new_key, new_visit, start_server, submission


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("the psycopg driver is not installed: run scripts/setup.sh")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed: run scripts/setup.sh")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="govplatform-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no postgres user to run PostgreSQL as: "
                        "apt-get install postgresql creates it")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "govplatform", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    options = f"-k {base} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg://govplatform@/postgres?host={base}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("govplatform-pg"), database_url=postgres_url)


def test_migrations_on_postgres(pg_server: Server, postgres_url: str) -> None:
    from govplatform.db import make_engine
    from govplatform.models import Base

    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    engine.dispose()


def test_main_paths_on_postgres(pg_server: Server) -> None:
    t = pg_server.enrol()
    card = card_from_emulator("resident")
    catalogue: dict[str, Any] = t.call("GET", "/v1/catalogue").json()
    item = next(i for i in catalogue["items"] if i["kind"] == "bundle" and i["category"] == "个人")
    visit = new_visit()
    token = t.identify(card, visit_id=visit)["citizen_token"]
    assert t.call("GET", f"/v1/items/{item['id']}/prefill", token=token).status_code == 200

    key, body = new_key(), submission(item, card)
    first = t.call("POST", "/v1/applications", body, key=key)
    assert first.status_code == 201, first.text
    assert t.call("POST", "/v1/applications", body, key=key).json() == first.json()
    assert t.call("POST", "/v1/applications", dict(body, visit_id=new_visit()), key=key).status_code == 409
    receipt = first.json()["receipt_number"]
    assert pg_server.db_count("SELECT count(*) FROM applications WHERE receipt_number = :r", r=receipt) == 1
    assert pg_server.db_count("SELECT count(*) FROM department_tasks") == 1 + len(item["cooperating_departments"])
    assert t.call("GET", f"/v1/applications/{receipt}", token=token).json()["status"] == "accepted"

    assert t.call("POST", "/v1/ratings", {"level": 5, "receipt_number": receipt}, key=new_key()).status_code == 201
    assert t.call("POST", "/v1/consultations", {"kind": "help", "text": "帮助"}, key=new_key()).status_code == 201
    appointment = next(i for i in catalogue["items"] if i["kind"] == "appointment")
    slot = t.call("GET", f"/v1/appointments/slots?item_id={appointment['id']}").json()["slots"][0]
    booking = t.call("POST", "/v1/appointments", {"slot_id": slot["slot_id"], "item_id": appointment["id"],
                                                  "visit_id": visit}, token=token, key=new_key())
    assert booking.status_code == 201, booking.text

    from govapi.signing import sign_headers

    headers = sign_headers(t.keys, t.terminal_id, "GET", "/v1/catalogue", b"")
    assert t.call("GET", "/v1/catalogue", sign=False, headers=headers).status_code == 200
    assert t.call("GET", "/v1/catalogue", sign=False, headers=headers).status_code == 401  # replay
