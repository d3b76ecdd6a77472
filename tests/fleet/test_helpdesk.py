"""The help-desk console on the server side: logins, roles, audit, the fleet as the console sees it
through a real mosquitto, signed commands and their replies.

One broker and one console (a real uvicorn on 127.0.0.1) per module; simulated terminals
(helpdesk.sim_terminal) speak fleet/protocol.py from their own broker accounts and check every
command with CommandVerifier, as a kiosk does.
"""
from __future__ import annotations

import io
import json
import logging
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from waiting import wait_for

from fleet import protocol
from fleet.broker import Broker
from fleet.client import make_client
from fleet.protocol import CommandVerifier, sign_command
from govapi.signing import KeyPair
from helpdesk import __main__ as cli
from helpdesk.console import Console, ConsoleSettings
from helpdesk.server import ConsoleServer
from helpdesk.sim_terminal import SAMPLE_ID_NUMBER as ID_NUMBER
from helpdesk.sim_terminal import SAMPLE_NAME, SimTerminal, sample_mirror
from helpdesk.store import LOCKOUT_S, Store

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0
PASSWORD = "correct horse battery"
STAFF = {"viewer": ("li", "李明", "viewer"), "agent": ("wang", "王芳", "agent"),
         "agent2": ("zhao", "赵强", "agent"), "supervisor": ("chen", "陈主管", "supervisor")}


class Rig:
    def __init__(self, broker: Broker, keypair: KeyPair, console: Console, server: ConsoleServer) -> None:
        self.broker = broker
        self.keypair = keypair
        self.console = console
        self.server = server
        self._clients: list[httpx.Client] = []

    def client(self) -> httpx.Client:
        c = httpx.Client(base_url=self.server.url, timeout=30, follow_redirects=False)
        self._clients.append(c)
        return c

    def login(self, who: str) -> httpx.Client:
        c = self.client()
        r = c.post("/login", data={"name": STAFF[who][0], "password": PASSWORD})
        assert r.status_code == 303, r.text
        return c

    def sim(self, terminal_id: str, **kwargs: Any) -> SimTerminal:
        account = self.broker.add_terminal(terminal_id)
        return SimTerminal(account, console_key=(self.keypair.algorithm, self.keypair.public_key), **kwargs)

    def snapshot(self, c: httpx.Client) -> dict[str, Any]:
        r = c.get("/api/snapshot")
        assert r.status_code == 200, r.text
        return r.json()

    def terminal(self, c: httpx.Client, terminal_id: str) -> dict[str, Any] | None:
        return next((t for t in self.snapshot(c)["terminals"] if t["id"] == terminal_id), None)

    def audit(self, **kw: Any) -> list[dict[str, Any]]:
        return self.console.store.audit_lines(1000, **kw)

    def close(self) -> None:
        for c in self._clients:
            c.close()


def post(c: httpx.Client, url: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return c.post(url, content=json.dumps(body or {}), headers={"Content-Type": "application/json",
                                                                "X-Requested-With": "helpdesk", **headers})


@pytest.fixture(scope="module")
def rig(fleet_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    keypair = KeyPair.generate()
    settings = ConsoleSettings(data_dir=tmp_path_factory.mktemp("helpdesk"), account=fleet_broker.console_account(),
                               client_id="helpdesk-test", reply_timeout_s=2.0, media_timeout_s=5.0)
    console = Console(settings, keypair=keypair)
    for name, display, role in STAFF.values():
        console.store.add_staff(name, display, role, PASSWORD)
    server = ConsoleServer(console).start()
    the_rig = Rig(fleet_broker, keypair, console, server)
    try:
        assert console.bridge is not None
        wait_for(console.bridge.connected.is_set, "the console connects to the broker")
        yield the_rig
    finally:
        the_rig.close()
        server.stop()
        console.close()


@pytest.fixture(scope="module")
def sim(rig: Rig) -> Iterator[SimTerminal]:
    terminal = rig.sim("SIM-A", location="XX 银行 1 楼").start(heartbeats=False)
    terminal.heartbeat()
    try:
        yield terminal
    finally:
        terminal.stop()


def open_call(rig: Rig, sim: SimTerminal, agent: httpx.Client, call_id: str) -> dict[str, Any]:
    """A call announced by the terminal and accepted by `agent`; returns the accept_call command."""
    sim.help(call_id, "waiting", step="form", language="zh-CN")
    wait_for(lambda: any(c["call_id"] == call_id for c in rig.snapshot(agent)["calls"]), "the call is queued")
    r = post(agent, f"/api/calls/{sim.id}/{call_id}/accept")
    assert r.status_code == 200, r.text
    return sim.next_command("accept_call")


# -- logins --------------------------------------------------------------------------------------
def test_login_wrong_password_lockout_and_logout(rig: Rig) -> None:
    c = rig.client()
    r = c.post("/login", data={"name": "wang", "password": "wrong password!"})
    assert r.status_code == 401 and "用户名或密码不正确" in r.text
    assert rig.audit(staff="wang", action="login")[0]["outcome"] == "failed"

    rig.console.store.add_staff("lockme", "锁定测试", "agent", PASSWORD)
    for _ in range(4):
        assert c.post("/login", data={"name": "lockme", "password": "nope nope nope"}).status_code == 401
    fifth = c.post("/login", data={"name": "lockme", "password": "nope nope nope"})
    assert fifth.status_code == 429 and "锁定" in fifth.text
    right = c.post("/login", data={"name": "lockme", "password": PASSWORD})
    assert right.status_code == 429, "a locked name stays locked even with the right password"
    outcomes = [line["outcome"] for line in rig.audit(staff="lockme", action="login")]
    assert outcomes == ["locked", "locked", "failed", "failed", "failed", "failed"]

    ok = c.post("/login", data={"name": "wang", "password": PASSWORD})
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/").status_code == 200 and c.get("/api/snapshot").status_code == 200
    stolen = dict(c.cookies)
    assert c.post("/logout").status_code == 303
    assert rig.audit(staff="wang", action="logout")[0]["outcome"] == "ok"
    replay = rig.client()
    replay.cookies.update(stolen)
    assert replay.get("/api/snapshot").status_code == 401, "a logged-out session cookie must be dead"
    assert replay.get("/").headers["location"] == "/login"

    evil = rig.client().post("/login", data={"name": "wang", "password": PASSWORD},
                             headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert rig.audit(staff="wang", action="login")[0]["outcome"] == "refused"


def test_lockout_runs_out_and_passwords_are_stored_hashed(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    store.add_staff("a", "A", "agent", PASSWORD)
    now = 1_000_000.0
    for _ in range(5):
        store.check_login("a", "wrong wrong", now)
    assert store.check_login("a", PASSWORD, now + LOCKOUT_S - 1).outcome == "locked"
    assert store.check_login("a", PASSWORD, now + LOCKOUT_S + 1).outcome == "ok"
    assert store.check_login("ghost", PASSWORD, now).outcome == "wrong"
    raw = (tmp_path / "h.db").read_bytes() + (tmp_path / "h.db-wal").read_bytes()
    assert PASSWORD.encode() not in raw and b"scrypt$" in raw
    assert stat.S_IMODE((tmp_path / "h.db").stat().st_mode) == 0o600
    store.audit("a", "login", "ok")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("UPDATE audit SET outcome = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("DELETE FROM audit")
    store.close()


# -- roles and cross-site requests ---------------------------------------------------------------
def test_roles_and_request_origin_are_enforced_and_refusals_audited(rig: Rig, sim: SimTerminal) -> None:
    viewer, agent, supervisor = rig.login("viewer"), rig.login("agent"), rig.login("supervisor")
    sim.help("roles-1", "waiting", step="choose")
    wait_for(lambda: any(c["call_id"] == "roles-1" for c in rig.snapshot(viewer)["calls"]), "the call is queued")
    assert viewer.get("/calls").status_code == 200 and "查看员只能查看队列" in viewer.get("/calls").text

    r = post(viewer, f"/api/calls/{sim.id}/roles-1/accept")
    assert r.status_code == 403 and "查看员" in r.json()["error"]
    assert rig.audit(staff="li", action="accept_call")[0]["outcome"] == "refused"

    r = post(agent, f"/api/terminals/{sim.id}/restart", {"device": "receipt_printer"})
    assert r.status_code == 403
    assert rig.audit(staff="wang", action="restart_device")[0]["outcome"] == "refused"

    # no console header (a form another site could post), or another origin: refused before anything
    r = agent.post(f"/api/calls/{sim.id}/roles-1/accept", data={"x": "1"})
    assert r.status_code == 403 and "不是从本控制台页面发出" in r.json()["error"]
    r = post(agent, f"/api/calls/{sim.id}/roles-1/accept", Origin="http://evil.example")
    assert r.status_code == 403
    assert [line["outcome"] for line in rig.audit(staff="wang", action="accept")][:2] == ["refused", "refused"]
    assert sim.commands.empty(), "nothing refused may reach the terminal"

    assert viewer.get("/api/audit").status_code == 403
    lines = supervisor.get("/api/audit").json()["lines"]
    assert any(line["action"] == "accept_call" and line["staff"] == "li" for line in lines)
    assert rig.client().get("/api/snapshot").status_code == 401


# -- the help call, with every command signed and verified ---------------------------------------
def test_a_help_call_accepted_watched_and_guided_with_signed_commands(rig: Rig, sim: SimTerminal) -> None:
    agent, other = rig.login("agent"), rig.login("agent2")
    verifier = CommandVerifier(sim.id, rig.keypair.algorithm, rig.keypair.public_key)
    accept = open_call(rig, sim, agent, "call-1")
    assert verifier.check(accept)["args"] == {"call_id": "call-1", "staff_name": "王芳"}
    assert (accept["staff"], accept["role"], accept["terminal"]) == ("王芳", "agent", sim.id)

    r = post(other, f"/api/calls/{sim.id}/call-1/accept")
    assert r.status_code == 409 and "王芳" in r.json()["error"]
    assert other.get(f"/calls/{sim.id}/call-1").status_code == 403
    assert post(other, f"/api/calls/{sim.id}/call-1/message", {"text": "hi"}).status_code == 403

    page = agent.get(f"/calls/{sim.id}/call-1")
    assert page.status_code == 200
    for needle in ('id="call"', 'data-terminal="SIM-A"', 'data-call="call-1"', 'id="start-media"',
                   'id="remote-video"', 'src="/static/media.js"'):
        assert needle in page.text

    sim.screen("call-1", sample_mirror("call-1"), seq=1, consent="asked")
    live = wait_for(lambda: (s := agent.get(f"/api/calls/{sim.id}/call-1").json()["live"])["mirror"] and s,
                    "the mirror reaches the console")
    values = {f["key"]: f["value"] for f in live["mirror"]["fields"]}
    assert values == {"name": "●●●", "id_number": "●●●", "phone": "●●●", "relation": ""}
    dumped = json.dumps(live, ensure_ascii=False)
    assert ID_NUMBER not in dumped and SAMPLE_NAME not in dumped

    r = post(agent, f"/api/calls/{sim.id}/call-1/message", {"text": "请点击右下角的“下一步”。"})
    assert r.status_code == 200, r.text
    message = verifier.check(sim.next_command("message"))
    assert message["args"] == {"call_id": "call-1", "text": "请点击右下角的“下一步”。"}
    assert post(agent, f"/api/calls/{sim.id}/call-1/point", {"x": 0.25, "y": 0.5}).status_code == 200
    assert verifier.check(sim.next_command("point"))["args"] == {"call_id": "call-1", "x": 0.25, "y": 0.5}
    assert post(agent, f"/api/calls/{sim.id}/call-1/goto", {"step": "form"}).status_code == 200
    assert verifier.check(sim.next_command("goto_step"))["args"]["step"] == "form"
    assert post(agent, f"/api/calls/{sim.id}/call-1/goto", {"step": "finish"}).status_code == 400
    assert post(agent, f"/api/calls/{sim.id}/call-1/consent").status_code == 200
    verifier.check(sim.next_command("ask_consent"))
    transcript = agent.get(f"/api/calls/{sim.id}/call-1").json()["live"]["transcript"]
    assert [e["kind"] for e in transcript] == ["message", "point", "goto", "consent"]

    assert post(agent, f"/api/calls/{sim.id}/call-1/end").status_code == 200
    verifier.check(sim.next_command("end_call"))
    wait_for(lambda: rig.console.store.call(sim.id, "call-1").state == "ended", "the call ends")
    assert post(agent, f"/api/calls/{sim.id}/call-1/message", {"text": "hi"}).status_code == 409

    lines = rig.audit(staff="wang")
    done = {(line["action"], line["outcome"]) for line in lines if line["call_id"] == "call-1"}
    for action in ("accept", "view_call", "message", "point", "goto", "consent_request", "end_call"):
        assert (action, "ok") in done, action
    message_line = next(line for line in lines if line["action"] == "message" and line["outcome"] == "ok")
    assert "下一步" not in message_line["details"] and "chars" in message_line["details"]


def test_a_refusal_and_a_silent_terminal_are_answered_in_words(rig: Rig, sim: SimTerminal) -> None:
    agent = rig.login("agent")
    open_call(rig, sim, agent, "call-2")
    sim.replies["goto_step"] = (False, "the visit cannot go to review yet")
    sim.silent.add("point")
    try:
        r = post(agent, f"/api/calls/{sim.id}/call-2/goto", {"step": "review"})
        assert r.status_code == 409 and "the visit cannot go to review yet" in r.json()["error"]
        r = post(agent, f"/api/calls/{sim.id}/call-2/point", {"x": 0.5, "y": 0.5})
        assert r.status_code == 504 and "没有应答" in r.json()["error"]
        outcomes = {line["action"]: line["outcome"] for line in rig.audit(staff="wang") if line["call_id"] == "call-2"}
        assert outcomes["goto"] == "refused_by_terminal" and outcomes["point"] == "no_answer"

        r = post(agent, f"/api/calls/{sim.id}/call-2/media", {"sdp": "v=0 offer"})
        assert r.status_code == 409 and "no microphone or camera configured" in r.json()["error"]
        sim.media_answer = "v=0 answer"
        r = post(agent, f"/api/calls/{sim.id}/call-2/media", {"sdp": "v=0 offer"})
        assert r.status_code == 200 and r.json()["sdp"] == "v=0 answer"
        assert post(agent, f"/api/calls/{sim.id}/call-2/media/stop").status_code == 200
        outcomes = [(line["action"], line["outcome"]) for line in rig.audit(staff="wang")
                    if line["call_id"] == "call-2"]
        assert ("media_start", "refused_by_terminal") in outcomes and ("media_start", "ok") in outcomes
        assert ("media_stop", "ok") in outcomes
    finally:
        sim.replies.clear()
        sim.silent.clear()
        sim.media_answer = None
        post(agent, f"/api/calls/{sim.id}/call-2/end")


def test_a_supervisor_restarts_a_device_and_resets_a_visit(rig: Rig, sim: SimTerminal) -> None:
    supervisor = rig.login("supervisor")
    verifier = CommandVerifier(sim.id, rig.keypair.algorithm, rig.keypair.public_key)
    r = post(supervisor, f"/api/terminals/{sim.id}/restart", {"device": "receipt_printer"})
    assert r.status_code == 200, r.text
    restart = verifier.check(sim.next_command("restart_device"))
    assert restart["args"] == {"device": "receipt_printer"} and restart["role"] == "supervisor"
    assert post(supervisor, f"/api/terminals/{sim.id}/reset").status_code == 200
    verifier.check(sim.next_command("reset_visit"))
    assert post(supervisor, "/api/terminals/NOPE-1/reset").status_code == 404
    actions = [(line["action"], line["outcome"]) for line in rig.audit(staff="chen")]
    assert ("restart_device", "ok") in actions and ("reset_visit", "ok") in actions


def test_a_forged_or_replayed_command_is_refused_by_the_terminal(rig: Rig, sim: SimTerminal) -> None:
    """The broker lets the console's account write commands; only the console's key makes them count."""
    intruder = make_client(rig.broker.console_account(), "intruder")
    intruder.connect(rig.broker.host, rig.broker.port)
    intruder.loop_start()
    try:
        forged = sign_command(KeyPair.generate(), sim.id, "reset_visit", {}, "mallory", "supervisor")
        intruder.publish(protocol.command_topic(sim.id), protocol.encode(forged), qos=1).wait_for_publish(WAIT_S)
        envelope, reason = sim.refused.get(timeout=WAIT_S)
        assert "forged" in reason
        genuine = sign_command(rig.keypair, sim.id, "reset_visit", {}, "陈主管", "supervisor")
        for _ in range(2):
            intruder.publish(protocol.command_topic(sim.id), protocol.encode(genuine), qos=1).wait_for_publish(WAIT_S)
        assert sim.next_command("reset_visit")["id"] == genuine["id"]
        _, reason = sim.refused.get(timeout=WAIT_S)
        assert "replay" in reason
    finally:
        intruder.disconnect()
        intruder.loop_stop()


# -- the fleet as the console sees it ------------------------------------------------------------
def test_garbage_on_any_topic_is_counted_logged_once_and_ignored(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    bridge = rig.console.bridge
    assert bridge is not None
    caplog.set_level(logging.WARNING, logger="helpdesk.bridge")
    bad = rig.sim("SIM-GARBAGE").start(heartbeats=False)
    try:
        before = sum(bridge.garbage.values())
        junk = [b"\xff\xfe not utf-8", b"not json", b"[1, 2]", b'{"v": 2, "online": true}',
                b"{" * 100_000, b"x" * (protocol.MAX_PAYLOAD + 1)]
        for kind in protocol.UP_KINDS:
            for data in junk:
                bad.publish_raw(protocol.up(bad.id, kind), data).wait_for_publish(WAIT_S)
        bad.publish_raw(f"kiosk/{bad.id}/up/bogus", protocol.encode({"x": 1})).wait_for_publish(WAIT_S)
        # well-formed JSON with fields of the wrong types: taken apart carefully, never a crash
        for kind, payload in (("heartbeat", {"step": 5, "outbox": "x", "in_visit": "yes", "heartbeat_s": "fast"}),
                              ("devices", {"devices": 7, "alerts": "none"}), ("alert", {"state": ["raised"]}),
                              ("help", {"call_id": 5, "state": None}), ("screen", {"call_id": "x", "mirror": "x"}),
                              ("reply", {"cmd_id": 7}), ("media", {"sdp": 1}), ("state", {"online": "yes"})):
            bad.publish(kind, payload).wait_for_publish(WAIT_S)
        expected = len(protocol.UP_KINDS) * len(junk) + 2  # + reply and media without ids
        wait_for(lambda: sum(bridge.garbage.values()) - before >= expected, "every bad message is counted")
        bad.heartbeat(step="choose")
        seen = wait_for(lambda: (t := rig.terminal(rig.login("viewer"), bad.id)) and t["step"] == "choose" and t,
                        "a good heartbeat after the garbage is still taken")
        assert seen["online"] is True and bridge.garbage["crash"] == 0
        warned = [r for r in caplog.records if "ignoring a bad fleet message" in r.getMessage()]
        topics = [r.getMessage().split(" on ")[1].split(" ")[0] for r in warned]
        assert len(topics) == len(set(topics)), "each topic is logged once, then only counted"
    finally:
        bad.stop()


def test_a_killed_terminal_goes_offline_by_its_last_will(rig: Rig, tmp_path: Path) -> None:
    account = rig.broker.add_terminal("SIM-WILL")
    password_file = tmp_path / "pw"
    password_file.write_text(account.password)
    password_file.chmod(0o600)
    child = subprocess.Popen([sys.executable, "-m", "helpdesk.sim_terminal", "--host", account.host, "--port",
                              str(account.port), "--ca-file", account.ca_file, "--username", account.username,
                              "--password-file", str(password_file), "--keepalive", "2", "--heartbeat", "30"],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    viewer = rig.login("viewer")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        wait_for(lambda: (t := rig.terminal(viewer, "SIM-WILL")) and t["online"] is True, "the terminal is online")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        gone = wait_for(lambda: (t := rig.terminal(viewer, "SIM-WILL")) and t["online"] is False and t,
                        "the broker's last will reaches the console")
        assert gone["reason"] == "lost"
        alerts = rig.snapshot(viewer)["alerts"]
        assert any(a["terminal"] == "SIM-WILL" and a["kind"] == "offline" and a["active"] for a in alerts)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_a_terminal_whose_heartbeats_stop_is_offline_until_they_come_back(rig: Rig) -> None:
    quiet = rig.sim("SIM-QUIET", heartbeat_s=0.5).start(heartbeats=False)  # announces 0.5 s, then stays silent
    viewer = rig.login("viewer")
    try:
        quiet.heartbeat()
        wait_for(lambda: (t := rig.terminal(viewer, quiet.id)) and t["online"] is True, "online")
        gone = wait_for(lambda: (t := rig.terminal(viewer, quiet.id)) and t["online"] is False and t,
                        "offline after 3 missed heartbeats")
        assert gone["reason"] == "no_heartbeat"
        quiet.heartbeat()
        wait_for(lambda: (t := rig.terminal(viewer, quiet.id)) and t["online"] is True, "online again")
        offline_alerts = [a for a in rig.snapshot(viewer)["alerts"] if a["terminal"] == quiet.id]
        assert offline_alerts and not any(a["active"] for a in offline_alerts)
    finally:
        quiet.stop()


class SseReader:
    """Reads the console's live updates on a thread, like a browser's EventSource."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._client = client
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        kind = ""
        with self._client.stream("GET", url, timeout=None) as response:
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    self.events.append((kind, data if kind == "snapshot" else data["data"]))

    def find(self, kind: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((d for k, d in list(self.events) if k == kind and match(d)), None)

    def stop(self) -> None:
        self._stop.set()


def test_devices_paper_and_alerts_reach_the_pages_live(rig: Rig, sim: SimTerminal) -> None:
    viewer = rig.login("viewer")
    reader = SseReader(viewer, "/api/events")
    try:
        wait_for(lambda: reader.find("snapshot", lambda d: True), "the stream starts with a snapshot")
        sim.devices["receipt_printer"].update(media="low")
        sim.devices["camera"].update(state="hardware_error", fault="camera does not answer")
        sim.publish_devices([{"id": "camera.hardware_error", "state": "raised", "kind": "hardware_error",
                              "device": "camera", "detail": "camera does not answer"}])
        term = wait_for(lambda: reader.find("terminal", lambda d: d["id"] == sim.id and d["paper"] == "low"),
                        "the paper-low terminal arrives live")
        assert [f["name"] for f in term["faults"]] == ["camera"]
        sim.alert("receipt_printer.paper_out", True, kind="paper_out", device="receipt_printer", detail="no paper")
        wait_for(lambda: reader.find("alert", lambda a: a["id"] == "receipt_printer.paper_out" and a["active"]),
                 "the alert arrives live")
        sim.alert("receipt_printer.paper_out", False, kind="paper_out", device="receipt_printer")
        wait_for(lambda: reader.find("alert", lambda a: a["id"] == "receipt_printer.paper_out" and not a["active"]),
                 "the clearing arrives live")
        alerts = [a for a in rig.snapshot(viewer)["alerts"] if a["terminal"] == sim.id]
        assert alerts[0]["id"] == "receipt_printer.paper_out" and not alerts[0]["active"], "newest first"
        assert any(a["id"] == "camera.hardware_error" and a["active"] for a in alerts)
    finally:
        reader.stop()
        sim.devices["receipt_printer"].update(media="present")
        sim.devices["camera"].update(state="online", fault="")
        sim.publish_devices([])


# -- the console's own files and commands --------------------------------------------------------
def test_the_queue_survives_a_console_restart(tmp_path: Path) -> None:
    keypair = KeyPair.generate()
    first = Console(ConsoleSettings(tmp_path, None), keypair=keypair)
    first.calls.on_help("T-1", {"call_id": "c-9", "state": "waiting", "step": "form", "location": "大厅"})
    first.close()
    second = Console(ConsoleSettings(tmp_path, None), keypair=keypair)
    try:
        queued = second.store.open_calls()
        assert [(c.terminal, c.call_id, c.state, c.location) for c in queued] == [("T-1", "c-9", "waiting", "大厅")]
        assert first.session_secret == second.session_secret
        assert stat.S_IMODE((tmp_path / "session-secret").stat().st_mode) == 0o600
    finally:
        second.close()


def test_a_call_cut_by_a_lost_terminal_comes_back_with_it_and_stale_words_are_ignored(tmp_path: Path) -> None:
    console = Console(ConsoleSettings(tmp_path, None), keypair=KeyPair.generate())
    try:
        calls, store = console.calls, console.store
        calls.on_help("T-1", {"call_id": "c-1", "state": "waiting", "step": "form"})
        store.claim_call("T-1", "c-1", store.add_staff("wang", "王芳", "agent", PASSWORD), time.time())
        calls.terminal_lost("T-1")  # its last will: the call cannot go on
        assert store.call("T-1", "c-1").end_reason == "terminal_offline"
        calls.on_help("T-1", {"call_id": "c-1", "state": "connected", "staff": "王芳", "consent": "asked"})
        back = store.call("T-1", "c-1")
        assert (back.state, back.staff) == ("accepted", "wang"), "the same staff member has the call again"
        calls.on_help("T-1", {"call_id": "c-1", "state": "ended", "reason": "staff_ended"})
        calls.on_help("T-1", {"call_id": "c-1", "state": "connected", "staff": "王芳"})  # late, out of order
        assert store.call("T-1", "c-1").state == "ended"
        calls.on_help("T-1", {"call_id": "c-2", "state": "waiting"})
        calls.on_help("T-1", {"call_id": "c-3", "state": "waiting"})  # a new call replaces an older one
        assert [c.call_id for c in store.open_calls()] == ["c-3"]
        assert store.call("T-1", "c-2").end_reason == "replaced"
    finally:
        console.close()


def test_every_console_text_is_there_in_chinese_and_english() -> None:
    import tomllib

    from helpdesk.console import TEXTS_FILE

    def walk(node: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if "zh-CN" in node or "en" in node:
            yield prefix, node
            return
        for key, value in node.items():
            yield from walk(value, f"{prefix}.{key}" if prefix else key)

    entries = dict(walk(tomllib.loads(TEXTS_FILE.read_text(encoding="utf-8")), ""))
    assert len(entries) > 100
    for key, entry in entries.items():
        assert entry.get("zh-CN", "").strip() and entry.get("en", "").strip(), key


def test_keygen_and_add_staff_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["keygen", "--data", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    public = printed.split('console_public_key = "')[1].split('"')[0]
    key = KeyPair.load(tmp_path / "console-key.json")
    assert key.public_key == public and stat.S_IMODE((tmp_path / "console-key.json").stat().st_mode) == 0o600
    assert cli.main(["keygen", "--data", str(tmp_path)]) == cli.EXIT_REFUSED
    assert "--force" in capsys.readouterr().err

    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli.main(["add-staff", "wang", "--role", "agent", "--data", str(tmp_path)]) == cli.EXIT_USAGE
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["add-staff", "wang", "--role", "agent", "--display-name", "王芳", "--data", str(tmp_path)]) == 0
    store = Store(tmp_path / "helpdesk.db")
    try:
        assert store.check_login("wang", PASSWORD, time.time()).staff.display_name == "王芳"  # type: ignore[union-attr]
    finally:
        store.close()
    missing = cli.main(["serve", "--data", str(tmp_path), "--broker-host", "127.0.0.1", "--ca-file",
                        str(tmp_path / "none.pem"), "--account-password-file", str(tmp_path / "none")])
    assert missing == cli.EXIT_USAGE and "does not exist" in capsys.readouterr().err
