"""The kiosk against the real platform process, with the network broken on purpose between them.

Each visit is the real terminal (`main.py --headless --scenario`, real ID-card driver on a
pseudo-terminal) talking through `FaultProxy` to `python -m govplatform serve`. Whatever
goes wrong on the way, every application the kiosk accepted must end up on the platform
exactly once: checked in the platform's own database.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from govplatform_harness import ROOT, Server

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SUBMIT = SCENARIOS / "submit_to_platform.toml"
QUEUED = SCENARIOS / "queued_while_platform_unreachable.toml"
TERMINAL_ID = "T-KIOSK-0001"


@dataclass
class Kiosk:
    data_dir: Path
    proxy: FaultProxy
    url: str
    server: Server

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK", "GOVPLATFORM_"))}
        env.update({"KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__DATA_DIR": str(self.data_dir),
                    "KIOSK__PLATFORM__URL": self.url, "KIOSK__VOICE__ENABLED": "false",
                    "KIOSK__PLATFORM__TIMEOUT_S": "2", "KIOSK__PLATFORM__DELIVERY_INTERVAL_S": "0.3",
                    "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    def visit(self, scenario: Path) -> str:
        """Play one visit; returns the receipt number the citizen was shown."""
        proc = subprocess.run([sys.executable, "main.py", "--headless", "--scenario", str(scenario)], cwd=ROOT,
                              env=self.env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return receipt_in(proc.stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def outbox(self) -> dict[str, int]:
        """Outbox rows by state, read straight from the terminal's database (states are not secret)."""
        with sqlite3.connect(self.data_dir / "outbox" / "outbox.db") as db:
            return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())

    def deliver_everything(self, timeout: float = 60) -> None:
        """Run the terminal (no visit) until its outbox has nothing pending, then stop it politely."""
        proc = self.start("--headless")
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (
                    self.outbox().get("pending", 0) or not any("running headless" in line for line in lines)):
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            reader.join(timeout=10)
        out = "".join(lines)
        assert self.outbox().get("pending", 0) == 0, f"still pending after {timeout} s: {self.outbox()}\n{out}"
        assert proc.returncode == 0, out


def receipt_in(output: str) -> str:
    found = re.findall(r"screen finish \([a-z_]+.*receipt (\S+?)\)", output)
    assert found, output
    return found[-1]


def applications(server: Server) -> list[tuple[str, str, str]]:
    """(receipt number, visit id, item id) of every application this terminal sent."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(  # type: ignore[misc]
                "SELECT receipt_number, visit_id, item_id FROM applications WHERE terminal_id = :t"),
                {"t": TERMINAL_ID})]
    finally:
        engine.dispose()


def enrol(kiosk: Kiosk, code: str, *extra: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = kiosk.env(**({"KIOSK__PLATFORM__URL": url} if url is not None else {}))
    return subprocess.run([sys.executable, "-m", "provisioning", "enrol", "--code", code, *extra], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def kiosk(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    """An enrolled terminal that reaches the platform through a fault proxy."""
    proxy = FaultProxy(int(server.url.rsplit(":", 1)[1]))
    url = proxy.start()
    k = Kiosk(tmp_path_factory.mktemp("kiosk"), proxy, url, server)
    code = server.cli("enrolment-code", "--terminal-id", TERMINAL_ID).stdout.strip()
    done = enrol(k, code)
    assert done.returncode == 0, done.stdout + done.stderr
    yield k
    proxy.stop()


@pytest.fixture
def clean(kiosk: Kiosk) -> Iterator[Kiosk]:
    kiosk.proxy.set("pass")
    yield kiosk
    kiosk.proxy.release()
    kiosk.proxy.set("pass")


# -- enrolment ---------------------------------------------------------------------------------------
def test_enrolment_wrote_an_owner_only_key_and_kept_the_catalogue(kiosk: Kiosk) -> None:
    key = kiosk.data_dir / "keys" / "terminal.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o077 == 0
    kept = json.loads((kiosk.data_dir / "cache" / "catalogue.json").read_text(encoding="utf-8"))
    assert kept["version"] and any(i["id"] == "social-insurance-record" for i in kept["items"])


def test_enrol_again_keeps_the_key_unless_forced(clean: Kiosk) -> None:
    key = clean.data_dir / "keys" / "terminal.key"
    before = key.read_bytes()
    again = enrol(clean, "AAAA-BBBB-CCCC-DDDD")
    assert again.returncode == 0 and "already has a key pair" in again.stdout
    forced = enrol(clean, "AAAA-BBBB-CCCC-DDDD", "--force")
    assert forced.returncode == 4, forced.stderr
    assert "refused the enrolment" in forced.stderr and "Traceback" not in forced.stderr
    assert key.read_bytes() == before  # a refused enrolment never destroys the working key


def test_enrol_says_when_the_platform_is_away(clean: Kiosk, tmp_path: Path) -> None:
    clean.proxy.set("down")
    other = Kiosk(tmp_path, clean.proxy, clean.url, clean.server)
    away = enrol(other, "AAAA-BBBB-CCCC-DDDD")
    assert away.returncode == 3 and "cannot reach" in away.stderr, away.stderr
    unset = enrol(other, "AAAA-BBBB-CCCC-DDDD", url="")
    assert unset.returncode == 2 and "platform.url is not set" in unset.stderr
    assert not (tmp_path / "keys" / "terminal.key").exists()


# -- visits --------------------------------------------------------------------------------------------
def test_visit_is_prefilled_and_accepted_by_the_platform(clean: Kiosk) -> None:
    receipt = clean.visit(SUBMIT)
    assert re.fullmatch(r"SQ\d{14}", receipt)
    rows = [r for r in applications(clean.server) if r[0] == receipt]
    assert len(rows) == 1 and rows[0][2] == "social-insurance-record"
    from sqlalchemy import create_engine, text

    engine = create_engine(clean.server.db_url)
    with engine.connect() as conn:
        answers, materials = conn.execute(text("SELECT answers, materials FROM applications WHERE receipt_number = :r"),
                                          {"r": receipt}).one()
    engine.dispose()
    answers = answers if isinstance(answers, dict) else __import__("json").loads(answers)
    # from the card, from the platform's shared data (profile), and from the citizen
    assert answers["name"] == "张三" and answers["id_number"] == "110101199003070011"
    assert answers["social_security_number"] == "110101199003070011"
    assert answers["record_type"] == "contribution_proof" and answers["period"] == "12m"
    assert "e_licence" in str(materials)
    assert clean.outbox().get("pending", 0) == 0


@pytest.mark.parametrize("fault", ["down", "error_503", "slow", "cut_request", "cut_response"])
def test_fault_gives_a_local_receipt_and_delivery_later_exactly_once(clean: Kiosk, fault: str) -> None:
    clean.proxy.set(fault, delay_s=5)
    before = applications(clean.server)
    receipt = clean.visit(QUEUED)
    assert re.fullmatch(rf"L\d{{8}}-{TERMINAL_ID}-\d{{6}}", receipt), receipt
    assert clean.outbox().get("pending") == 1
    clean.proxy.set("pass")
    clean.deliver_everything()
    after = applications(clean.server)
    new = [r for r in after if r not in before]
    # ("slow": the late original and the retry both reach the platform; still one application)
    assert len(new) == 1, f"{fault}: {len(new)} applications on the platform for one visit: {new}"


def test_kiosk_killed_mid_delivery_delivers_once_after_restart(clean: Kiosk) -> None:
    """kill -9 while the platform has accepted the application but its answer is still on the wire."""
    before = applications(clean.server)
    clean.proxy.set("hold")
    proc = clean.start("--headless", "--scenario", str(SUBMIT))
    try:
        assert clean.proxy.wait_for("POST /v1/applications hold", timeout=60), proc.stdout
        # the platform has committed the application; the kiosk is waiting for the answer
        assert len(applications(clean.server)) == len(before) + 1
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    clean.proxy.release()
    clean.proxy.set("pass")
    assert clean.outbox().get("pending") == 1  # what was accepted survived the kill
    clean.deliver_everything()
    new = [r for r in applications(clean.server) if r not in before]
    assert len(new) == 1, new
    with sqlite3.connect(clean.data_dir / "outbox" / "outbox.db") as db:
        (remote,) = db.execute("SELECT remote_receipt FROM outbox ORDER BY id DESC LIMIT 1").fetchone()
    assert remote == new[0][0]  # the retry got the platform's first answer back


def test_many_visits_under_faults_each_exactly_once(clean: Kiosk) -> None:
    """A run of visits while the network keeps failing in different ways, then recovery."""
    before = applications(clean.server)
    receipts = []
    for fault in ("cut_response", "pass", "error_503", "cut_response", "down", "pass"):
        clean.proxy.set(fault)
        receipts.append(clean.visit(SUBMIT if fault == "pass" else QUEUED))
    clean.proxy.set("pass")
    clean.deliver_everything()
    new = [r for r in applications(clean.server) if r not in before]
    assert len(new) == len(receipts) == len({r[1] for r in new}), new
    assert clean.outbox().get("rejected", 0) == 0


def test_catalogue_arrives_when_the_platform_comes_back(clean: Kiosk, tmp_path: Path) -> None:
    """A terminal that started with no platform and no kept catalogue gets one in the background."""
    from config import load_config
    from kiosk.platform_link import PlatformLink

    clean.proxy.set("down")
    cfg = load_config(environ=clean.env(KIOSK__PLATFORM__CATALOGUE_REFRESH_S="0.5",
                                        KIOSK__TERMINAL__DATA_DIR=str(tmp_path)))
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "terminal.key").write_bytes((clean.data_dir / "keys" / "terminal.key").read_bytes())
    (tmp_path / "keys" / "terminal.key").chmod(0o600)
    link = PlatformLink(cfg, tmp_path)
    arrived: list[Any] = []
    link.on_catalogue = arrived.append
    try:
        assert link.load_catalogue() is None  # nothing from the platform, nothing kept
        link.start()
        clean.proxy.set("pass")
        deadline = time.monotonic() + 30
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        link.stop()
    assert arrived, "no catalogue within 30 s of the platform coming back"
    assert "social-insurance-record" in [s.id for s in arrived[0].services()]
    assert (tmp_path / "cache" / "catalogue.json").exists()


def test_ratings_and_consultations_go_through_the_outbox_once(clean: Kiosk, tmp_path: Path) -> None:
    """好差评 and 12345 messages use the same outbox: a lost answer, a retry, one record, the platform's number."""
    from govapi.signing import KeyPair
    from kiosk.delivery import Deliverer
    from kiosk.govclient import PlatformClient, new_idempotency_key
    from kiosk.outbox import Outbox

    keys = KeyPair.load(clean.data_dir / "keys" / "terminal.key")
    outbox = Outbox(tmp_path / "outbox.db", tmp_path / "keys" / "outbox.key", TERMINAL_ID)
    deliverer = Deliverer(outbox, PlatformClient(clean.url, TERMINAL_ID, keys, timeout_s=5, retries=0),
                          backoff_min_s=0)
    visit_id = f"visit-{time.time_ns()}"
    rating = outbox.enqueue("rating", {"level": 5, "item_id": "social-insurance-record", "visit_id": visit_id,
                                       "comment": f"很方便 {visit_id}"}, new_idempotency_key())
    question = outbox.enqueue("consultation", {"kind": "help", "text": f"怎么打印缴费证明？{visit_id}",
                                               "visit_id": visit_id},
                              new_idempotency_key())
    clean.proxy.set("cut_response")  # the platform records both, the answers are lost
    for entry in (rating, question):
        assert deliverer.deliver(entry).state == "pending"
    clean.proxy.set("pass")
    rating, question = deliverer.deliver(rating), deliverer.deliver(question)
    outbox.close()
    assert rating.state == question.state == "delivered"
    assert rating.remote_receipt and question.remote_receipt
    assert clean.server.db_count("SELECT count(*) FROM ratings WHERE comment = :c", c=f"很方便 {visit_id}") == 1
    assert clean.server.db_count("SELECT count(*) FROM consultations WHERE text = :t",
                                 t=f"怎么打印缴费证明？{visit_id}") == 1
