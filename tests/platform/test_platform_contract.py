"""The contract: the committed govapi/openapi.json is what the server publishes, and the
migrations build exactly the schema the models describe."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from govplatform_harness import OPENAPI, ROOT, Server
from sqlalchemy import inspect

from govplatform.db import downgrade, make_engine, migrate
from govplatform.models import Base


def test_openapi_check_passes() -> None:
    out = subprocess.run([sys.executable, "-m", "govplatform", "openapi", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr


def test_openapi_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text(OPENAPI.read_text(encoding="utf-8").replace('"/v1/health"', '"/v1/healthz"'), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "govplatform", "openapi", "--check", "--file", str(stale)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1 and "openapi --write" in out.stderr


def test_live_server_publishes_the_committed_document(server: Server) -> None:
    live = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert live == json.loads(OPENAPI.read_text(encoding="utf-8"))


def test_every_endpoint_of_the_readme_is_in_the_document() -> None:
    doc = json.loads(OPENAPI.read_text(encoding="utf-8"))
    table = [line for line in (ROOT / "govapi" / "README.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("| `")]
    for line in table:
        method, path = line.split("`")[1].split()[:2]
        path = path.split("?")[0]
        assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} missing from openapi.json"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)


def test_migrations_create_what_the_models_expect(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], diff
        tables = set(inspect(conn).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    downgrade(engine, "base")  # downgrade removes everything again
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_migrate_command(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVPLATFORM_")}
    env["GOVPLATFORM_DATA_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "govplatform", "migrate"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "platform.db").exists()


def test_token_secret_and_database_are_owner_only(server: Server) -> None:
    assert (server.data_dir / "token_secret").stat().st_mode & 0o777 == 0o600
    assert (server.data_dir / "platform.db").stat().st_mode & 0o077 == 0
