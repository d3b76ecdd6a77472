"""The kiosk against the real platform process, with the network broken on purpose between them.

Each visit is the real terminal (`main.py --headless --scenario`, real ID-card driver on a
pseudo-terminal) talking through `FaultProxy` to `python -m govplatform serve`. Whatever
goes wrong on the way, every application the kiosk accepted must end up on the platform
exactly once: checked in the platform's own database.
"""
from __future__ import annotations

import hashlib
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
from govplatform_harness import ROOT, Server, answers_for, card_from_emulator, jpeg, pdf

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SUBMIT = SCENARIOS / "submit_to_platform.toml"
SUBMIT_SSC = SCENARIOS / "submit_with_social_security_card.toml"
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

    def outbox(self, kind: str | None = None) -> dict[str, int]:
        """Outbox rows by state, read straight from the terminal's database (states are not secret);
        only those of one kind ("application", "rating", ...) when `kind` is given."""
        with sqlite3.connect(self.data_dir / "outbox" / "outbox.db") as db:
            if kind is None:
                return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
            return dict(db.execute("SELECT state, count(*) FROM outbox WHERE kind = ? GROUP BY state",
                                   (kind,)).fetchall())

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


def ratings(server: Server) -> int:
    """How many 好差评 ratings this terminal has given on the platform."""
    return server.db_count("SELECT count(*) FROM ratings WHERE terminal_id = :t", t=TERMINAL_ID)


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
    assert clean.outbox("application").get("pending", 0) == 0  # delivered while the citizen waited
    # the rating given after the finish step goes through the outbox, about this very application
    clean.deliver_everything()
    assert clean.server.db_count("SELECT count(*) FROM ratings WHERE receipt_number = :r AND level = 5 "
                                 "AND item_id = 'social-insurance-record' AND terminal_id = :t",
                                 r=receipt, t=TERMINAL_ID) == 1


def test_a_social_security_card_starts_a_visit_the_platform_accepts(clean: Kiosk) -> None:
    """The card read over PC/SC (virtual card behind the real pcscd), its photo checked against
    the camera, identify accepted by the platform as card type social_security, form prefilled."""
    receipt = clean.visit(SUBMIT_SSC)
    assert re.fullmatch(r"SQ\d{14}", receipt)
    from sqlalchemy import create_engine, text

    engine = create_engine(clean.server.db_url)
    with engine.connect() as conn:
        answers = conn.execute(text("SELECT answers FROM applications WHERE receipt_number = :r"),
                               {"r": receipt}).scalar_one()
    engine.dispose()
    answers = answers if isinstance(answers, dict) else json.loads(answers)
    assert answers["name"] == "张三" and answers["id_number"] == "110101199003070011"
    assert answers["social_security_number"] == "110101199003070011"


# "slow" (the platform answering after the kiosk gave up, the original arriving first) is played
# with the kiosk as its own process in tests/faults/test_process_faults.py
# down and 5xx are played on the whole kiosk process, with the help desk watching, in
# tests/faults/test_process_faults.py; here the two cuts the proxy makes mid-exchange
@pytest.mark.parametrize("fault", ["cut_request", "cut_response"])
def test_fault_gives_a_local_receipt_and_delivery_later_exactly_once(clean: Kiosk, fault: str) -> None:
    clean.proxy.set(fault, delay_s=5)
    before, rated_before = applications(clean.server), ratings(clean.server)
    ratings_waiting = clean.outbox("rating").get("pending", 0)
    receipt = clean.visit(QUEUED)
    assert re.fullmatch(rf"L\d{{8}}-{TERMINAL_ID}-\d{{6}}", receipt), receipt
    assert clean.outbox("application").get("pending") == 1
    assert clean.outbox("rating").get("pending", 0) == ratings_waiting + 1  # the rating waits too
    clean.proxy.set("pass")
    clean.deliver_everything()
    after = applications(clean.server)
    new = [r for r in after if r not in before]
    # ("slow": the late original and the retry both reach the platform; still one application)
    assert len(new) == 1, f"{fault}: {len(new)} applications on the platform for one visit: {new}"
    assert ratings(clean.server) == rated_before + 1, f"{fault}: the visit's rating not recorded exactly once"


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
    assert clean.outbox("application").get("pending") == 1  # what was accepted survived the kill
    clean.deliver_everything()
    new = [r for r in applications(clean.server) if r not in before]
    assert len(new) == 1, new
    with sqlite3.connect(clean.data_dir / "outbox" / "outbox.db") as db:
        (remote,) = db.execute("SELECT remote_receipt FROM outbox WHERE kind = 'application' "
                               "ORDER BY id DESC LIMIT 1").fetchone()
    assert remote == new[0][0]  # the retry got the platform's first answer back


def test_many_visits_under_faults_each_exactly_once(clean: Kiosk) -> None:
    """A run of visits while the network keeps failing in different ways, then recovery."""
    before, rated_before = applications(clean.server), ratings(clean.server)
    receipts = []
    for fault in ("cut_response", "error_503", "down", "pass"):  # the soak plays many more (tests/soak)
        clean.proxy.set(fault)
        receipts.append(clean.visit(SUBMIT if fault == "pass" else QUEUED))
    clean.proxy.set("pass")
    clean.deliver_everything()
    new = [r for r in applications(clean.server) if r not in before]
    assert len(new) == len(receipts) == len({r[1] for r in new}), new
    assert ratings(clean.server) == rated_before + len(receipts)  # every visit's rating, once
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


# -- scanned paper materials -----------------------------------------------------------------------------
@dataclass
class ResidentCard:
    """The card read as the visit holds it (devices.idcard's IdentityCard duck type), from the emulator's card."""

    card_type: str
    id_number: str
    name: str
    gender: str = "1"
    wiped: bool = False

    def validity_problem(self, today: Any) -> str | None:
        return None

    def wipe(self) -> None:
        self.id_number = self.name = ""
        self.wiped = True


def _in_process_terminal(kiosk: Kiosk) -> Any:
    """The kiosk's PlatformLink in this process: its key, its outbox (one outbox per terminal id, as
    the outbox numbers, printed as terminal receipts, are unique per terminal only through it)."""
    from config import load_config
    from kiosk.platform_link import PlatformLink

    return PlatformLink(load_config(environ=kiosk.env()), kiosk.data_dir)


def _application(server: Server, receipt: str) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            visit_id, materials = conn.execute(text(
                "SELECT visit_id, materials FROM applications WHERE receipt_number = :r"), {"r": receipt}).one()
    finally:
        engine.dispose()
    materials = materials if isinstance(materials, list) else json.loads(materials)
    return {"visit_id": visit_id, "materials": {m["id"]: m for m in materials}}


def test_scans_queued_while_the_platform_is_down_arrive_with_their_application(clean: Kiosk) -> None:
    """Scanned at the kiosk while the platform is away: the citizen leaves with a local receipt; the
    scans wait sealed in the outbox and go up first when it is back; the application names them."""
    from kiosk.govclient import PlatformClient, PlatformUnavailable
    from kiosk.visit import Step, Visit

    link = _in_process_terminal(clean)
    try:
        catalogue = link.load_catalogue()
        assert catalogue is not None
        item = next(i for i in json.loads(link.cache_file.read_text(encoding="utf-8"))["items"]
                    if i["id"] == "social-security-card")
        # photo: no e-licence, cannot be promised -> scanned; old_card: may be promised, scanned instead;
        # id_card: scanned too, but the card just read is the e-licence, which wins (the scan stays home)
        photo, old_card, id_scan = jpeg(shade=61), pdf(jpeg(shade=62)), jpeg(shade=63)
        card = card_from_emulator("resident")
        before = applications(clean.server)

        clean.proxy.set("down")
        visit = Visit(catalogue, submitter=link.submit)
        visit.start()
        visit.card_read(ResidentCard(card["card_type"], card["id_number"], card["name"]))
        assert visit.step is Step.HOME
        visit.choose(item["id"])  # straight from the citizen's page
        assert visit.step is Step.NOTICE
        visit.next()
        assert visit.step is Step.FORM
        for key, value in answers_for(item).items():
            if not visit.session.answers.get(key):  # the card's fields are filled (and read-only)
                visit.correct(key, value)
        visit.next()
        assert visit.step is Step.MATERIALS, visit.view().message_key
        # the card just read is the ID e-licence: nothing to scan for it, and it wins over a scan
        assert {m.id: m.provided for m in visit.view().materials}["id_card"] == "e_licence"
        visit.attach_scan("photo", "image/jpeg", photo)
        visit.attach_scan("old_card", "application/pdf", old_card)
        visit.attach_scan("id_card", "image/jpeg", id_scan)
        assert visit.view().scanned == ("photo", "old_card")
        assert set(visit.session.scans) == {"id_card", "photo", "old_card"}
        buffers = [scan.data for scan in visit.session.scans.values()]
        visit.next()
        assert visit.step is Step.REVIEW
        visit.confirm()
        view = visit.view()
        assert view.step is Step.FINISH and view.message_key == "finish.queued", view
        assert re.fullmatch(rf"L\d{{8}}-{TERMINAL_ID}-\d{{6}}", view.receipt or "")
        visit.finish()
        assert visit.step is Step.RATING  # asked for a rating, with nothing personal kept any more
        assert all(buf == bytes(len(buf)) for buf in buffers)  # the session's copies are overwritten
        visit.finish()  # no rating given
        assert visit.step is Step.ATTRACT
        outbox_files = b"".join(p.read_bytes() for p in (clean.data_dir / "outbox").iterdir())
        assert not any(scan[100:140] in outbox_files for scan in (photo, old_card, id_scan))  # sealed only

        clean.proxy.set("pass")
        entry = link.outbox.get(int((view.receipt or "").rsplit("-", 1)[1]))

        class LosesTheAnswer(PlatformClient):
            """The platform accepts the application, the answer is lost on the way back."""

            def submit_application(self, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
                super().submit_application(payload, idempotency_key)
                raise PlatformUnavailable("the answer was lost on the way back (test)")

        lost = LosesTheAnswer(clean.url, TERMINAL_ID, link.client.keypair, timeout_s=5, retries=0)
        assert link.deliverer.deliver(entry, lost).state == "pending"
        delivered = link.deliverer.deliver(entry)  # scans again (200), the same body, the same key
        assert delivered.state == "delivered", delivered.last_error
        assert link.outbox.attachments(delivered) == []  # erased with the payload
    finally:
        link.stop()

    new = [r for r in applications(clean.server) if r not in before]
    assert len(new) == 1 and new[0][0] == delivered.remote_receipt  # the first answer, once
    stored = _application(clean.server, new[0][0])["materials"]
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in
              (("photo", photo), ("old_card", old_card), ("id_card", id_scan))}
    assert stored["photo"] == {"id": "photo", "provided": "scan", "reference": f"scan:{digest['photo']}"}
    assert stored["old_card"] == {"id": "old_card", "provided": "scan", "reference": f"scan:{digest['old_card']}"}
    assert stored["id_card"]["provided"] == "e_licence"
    for name, media_type, data in (("photo", "image/jpeg", photo), ("old_card", "application/pdf", old_card)):
        assert clean.server.db_count("SELECT count(*) FROM scans WHERE sha256 = :d AND terminal_id = :t AND "
                                     "media_type = :m AND size = :n", d=digest[name], t=TERMINAL_ID,
                                     m=media_type, n=len(data)) == 1
    assert clean.server.db_count("SELECT count(*) FROM scans WHERE sha256 = :d", d=digest["id_card"]) == 0


def test_a_scan_the_platform_refuses_rejects_its_application(clean: Kiosk, tmp_path: Path) -> None:
    """Wrong content for its type, or larger than the platform takes: final, said plainly, nothing sent."""
    from govapi.signing import KeyPair
    from kiosk.delivery import Deliverer
    from kiosk.govclient import PlatformClient, new_idempotency_key
    from kiosk.outbox import Outbox

    keys = KeyPair.load(clean.data_dir / "keys" / "terminal.key")
    outbox = Outbox(tmp_path / "outbox.db", tmp_path / "keys" / "outbox.key", TERMINAL_ID)
    # straight to the platform: the fault proxy is not meant for bodies the platform answers before reading
    deliverer = Deliverer(outbox, PlatformClient(clean.server.url, TERMINAL_ID, keys, timeout_s=10, retries=0))
    before = applications(clean.server)
    png_that_is_a_jpeg, too_large = jpeg(shade=64), jpeg(shade=65) + bytes(1024 * 1024)
    for media_type, data, says in (("image/png", png_that_is_a_jpeg, "422 scan_content_mismatch"),
                                   ("image/jpeg", too_large, "413 body_too_large")):
        ref = "scan:" + hashlib.sha256(data).hexdigest()
        payload = {"item_id": "social-security-card", "visit_id": f"visit-{time.time_ns()}",
                   "materials": [{"id": "photo", "provided": "scan", "reference": ref}]}
        entry = outbox.enqueue("application", payload, new_idempotency_key(), attachments=[(media_type, data)])
        done = deliverer.deliver(entry)
        assert done.state == "rejected", done
        assert says in done.last_error and "the scan of material photo" in done.last_error
        assert "the application was not sent" in done.last_error
        assert clean.server.db_count("SELECT count(*) FROM scans WHERE sha256 = :d", d=ref[5:]) == 0
    outbox.close()
    assert applications(clean.server) == before
