"""The terminal's fleet agent against a real mosquitto (TLS, accounts, ACL) and a headless
Terminal on an emulated receipt printer: presence, heartbeat, alerts, a whole help call driven
by signed console commands, refused commands, the last will, and a broker that comes late."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from terminal_config import write_config
from visit_doubles import Card, Recorder

from config.loader import load_config
from fleet import protocol
from fleet.broker import Broker
from fleet.client import FleetAccount, FleetAccountError, make_client
from govapi.signing import KeyPair
from govplatform.catalogue import load_catalogue
from kiosk.catalogue import Catalogue
from kiosk.fleet_agent import FleetAgent
from kiosk.terminal import Terminal
from kiosk.visit import Step, Visit
from kiosk.visit_workers import HelpCalls

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0  # generous: a loaded 2-core machine, never a timing assertion
TERMINAL = "ZJ-TEST-0042"  # terminal_config's id
CITIZEN_ID = "110101199003071220"
CITIZEN_NAME = "王芳"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


class Console:
    """The help desk's side, as the console would be: reads every terminal's up topics, signs
    and publishes commands with the console's key."""

    def __init__(self, broker: Broker, keypair: KeyPair) -> None:
        self.keypair = keypair
        self.messages: list[tuple[str, str, dict[str, Any], bool]] = []  # terminal, kind, payload, retained
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        account = broker.console_account()
        self.client = make_client(account, f"console-{secrets.token_hex(3)}")
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("kiosk/+/up/#", qos=1)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(account.host, account.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), "the console did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        terminal, _direction, kind = protocol.parse_topic(msg.topic)
        with self._lock:
            self.raw.append(bytes(msg.payload))
            self.messages.append((terminal, kind, protocol.decode(msg.payload), bool(msg.retain)))

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    def find(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *,
             after: int = 0, terminal: str = TERMINAL) -> dict[str, Any] | None:
        with self._lock:
            for term, k, payload, _retained in self.messages[after:]:
                if term == terminal and k == kind and match(payload):
                    return payload
        return None

    def wait(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *, after: int = 0,
             terminal: str = TERMINAL, timeout: float = WAIT_S) -> dict[str, Any]:
        return wait_until(lambda: self.find(kind, match, after=after, terminal=terminal),
                          f"{kind} from {terminal}", timeout)

    def publish(self, envelope: dict[str, Any], terminal: str = TERMINAL) -> None:
        info = self.client.publish(protocol.command_topic(terminal),
                                   json.dumps(envelope, ensure_ascii=False).encode("utf-8"), qos=1)
        info.wait_for_publish(WAIT_S)

    def send(self, action: str, *, staff: str = "李娜", role: str = "supervisor", terminal: str = TERMINAL,
             keypair: KeyPair | None = None, now: float | None = None, **args: Any) -> dict[str, Any]:
        """Sign, publish and wait for the terminal's reply."""
        envelope = protocol.sign_command(keypair or self.keypair, terminal, action, args, staff, role, now=now)
        return self.command(envelope, terminal)

    def command(self, envelope: dict[str, Any], terminal: str = TERMINAL) -> dict[str, Any]:
        mark = self.mark()
        self.publish(envelope, terminal)
        return self.wait("reply", lambda p: p["cmd_id"] == envelope["id"], after=mark, terminal=terminal)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def password_file(folder: Path, account: FleetAccount) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fleet-password"
    path.write_text(account.password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def fleet_env(broker: Broker, password: Path, keypair: KeyPair, **extra: Any) -> dict[str, str]:
    env = {"KIOSK__PLATFORM__URL": '""', "KIOSK__FACE__ENABLED": "false", "KIOSK__FLEET__ENABLED": "true",
           "KIOSK__FLEET__BROKER_HOST": json.dumps(broker.host), "KIOSK__FLEET__BROKER_PORT": str(broker.port),
           "KIOSK__FLEET__CA_FILE": json.dumps(broker.ca_file), "KIOSK__FLEET__PASSWORD_FILE": json.dumps(str(password)),
           "KIOSK__FLEET__CONSOLE_PUBLIC_KEY": json.dumps(keypair.public_key),
           "KIOSK__FLEET__HEARTBEAT_S": "1.0", "KIOSK__FLEET__KEEPALIVE_S": "5",
           "KIOSK__FLEET__SCREEN_MIRROR_INTERVAL_S": "2"}
    env.update({f"KIOSK__FLEET__{k.upper()}": json.dumps(v) for k, v in extra.items()})
    return env


@dataclass
class Rig:
    broker: Broker
    console: Console
    terminal: Terminal
    speaker: Recorder
    emulator: Any
    audit: Path

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def keypair() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture(scope="module")
def rig(fleet_broker: Broker, keypair: KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One terminal on an emulated receipt printer, connected, and one console."""
    tmp = tmp_path_factory.mktemp("terminal")
    console = Console(fleet_broker, keypair)
    account = fleet_broker.add_terminal(TERMINAL)
    path = write_config(tmp, {"receipt_printer": "emulate = true\n[devices.receipt_printer.emulator]\nrender = false"})
    cfg = load_config(path, environ=fleet_env(fleet_broker, password_file(tmp / "secret", account), keypair))
    speaker = Recorder()
    terminal = Terminal(cfg, speaker=speaker)
    terminal.visit.replace_catalogue(Catalogue.from_platform(load_catalogue()))
    terminal.start()
    try:
        assert terminal.fleet is not None and terminal.fleet.wait_connected(WAIT_S), "the agent did not connect"
        yield Rig(fleet_broker, console, terminal, speaker, terminal.emulators["receipt_printer"],
                  tmp / "data" / "audit" / "fleet.jsonl")
    finally:
        terminal.stop()
        console.close()


@pytest.fixture
def fresh(rig: Rig) -> Iterator[Rig]:
    """Each test starts on the attract screen with no help call."""
    if rig.terminal.visit.step is not Step.ATTRACT or rig.terminal.visit.view().help is not None:
        rig.terminal.visit.wipe("test")
    yield rig
    rig.terminal.help_calls.join()
    rig.terminal.fleet.join()
    rig.terminal.visit.wipe("test")


def test_online_devices_and_heartbeat_are_published(fresh: Rig) -> None:
    console = fresh.console
    state = console.wait("state", lambda p: p["online"])
    assert state["reason"] == "connected" and state["location"] == "测试网点一楼" and state["version"]
    devices = console.wait("devices", lambda p: "receipt_printer" in p["devices"])
    assert devices["devices"]["receipt_printer"]["class"] == "receipt_printer"
    mark = console.mark()
    beat = console.wait("heartbeat", after=mark)
    assert beat["step"] == "attract" and beat["in_visit"] is False and beat["seq"] >= 1
    assert beat["devices"]["total"] == 1 and beat["heartbeat_s"] == 1.0

    late = Console(fresh.broker, console.keypair)  # a console that starts later reads the retained ones
    try:
        assert late.wait("state", lambda p: p["online"])["reason"] == "connected"
        assert "receipt_printer" in late.wait("devices")["devices"]
    finally:
        late.close()


def test_paper_out_raises_an_alert_and_paper_in_clears_it(fresh: Rig) -> None:
    console = fresh.console
    mark = console.mark()
    fresh.emulator.paper_out()
    raised = console.wait("alert", lambda p: p["id"] == "receipt_printer.paper_out" and p["state"] == "raised",
                          after=mark)
    assert raised["kind"] == "paper_out" and raised["severity"] == "error" and raised["device"] == "receipt_printer"
    devices = console.wait("devices", lambda p: any(a["id"] == "receipt_printer.paper_out" for a in p["alerts"]),
                           after=mark)
    assert devices["devices"]["receipt_printer"]["media"] == "out"
    fresh.emulator.paper_ok()
    console.wait("alert", lambda p: p["id"] == "receipt_printer.paper_out" and p["state"] == "cleared", after=mark)
    console.wait("devices", lambda p: not p["alerts"] and p["devices"]["receipt_printer"]["media"] == "present",
                 after=mark)


def start_call(rig: Rig) -> str:
    """A citizen on the form asks for help; the call waits at the desk. Returns its id."""
    visit = rig.terminal.visit
    visit.start()
    visit.card_read(Card())
    visit.browse()
    visit.choose("newborn")
    visit.next()  # notice accepted: on the form
    assert visit.step is Step.FORM
    mark = rig.console.mark()
    visit.help()
    waiting = rig.console.wait("help", lambda p: p["state"] == "waiting", after=mark)
    assert waiting["step"] == "form" and waiting["language"] == "zh-CN" and waiting["location"] == "测试网点一楼"
    wait_until(lambda: visit.view().help.state == "waiting", "the visit shows the call waiting")
    assert visit.view().help.call_id == waiting["call_id"]
    return str(waiting["call_id"])


def test_a_help_call_from_waiting_to_the_end(fresh: Rig) -> None:
    console, visit = fresh.console, fresh.terminal.visit
    call = start_call(fresh)

    mark = console.mark()
    assert console.send("accept_call", call_id=call, staff_name="李娜", role="agent")["ok"]
    connected = console.wait("help", lambda p: p["state"] == "connected", after=mark)
    assert connected["staff"] == "李娜" and connected["consent"] == "asked"
    assert visit.view().help.state == "connected" and visit.view().help.consent == "asked"
    screen = console.wait("screen", lambda p: p["call_id"] == call and p["mirror"]["step"] == "form", after=mark)
    assert screen["consent"] == "asked" and screen["mirror"]["masked"] is True
    values = {f["key"]: f for f in screen["mirror"]["fields"]}
    assert values["applicant_name"]["masked"] and values["applicant_name"]["value"] == "●●●"
    with console._lock:  # nothing personal in any message so far
        sent = b"".join(console.raw)
    assert CITIZEN_ID.encode() not in sent and CITIZEN_NAME.encode() not in sent

    mark = console.mark()
    visit.give_consent(True)  # the citizen touches 显示我的信息
    assert console.wait("help", lambda p: p["consent"] == "granted", after=mark)["state"] == "connected"
    shown = console.wait("screen", lambda p: p["consent"] == "granted", after=mark)
    assert shown["mirror"]["masked"] is False
    assert {f["key"]: f["value"] for f in shown["mirror"]["fields"]}["applicant_id_number"] == CITIZEN_ID

    assert console.send("message", call_id=call, text="请核对您的联系电话", role="agent")["ok"]
    assert visit.view().help.messages == ("请核对您的联系电话",)
    wait_until(lambda: "请核对您的联系电话" in fresh.speaker.texts, "the terminal speaks the message")

    assert console.send("point", call_id=call, x=0.8, y=0.9, role="agent")["ok"]
    assert visit.view().help.pointer == (0.8, 0.9, 1)
    assert "help.pointer_hint" in fresh.speaker.said

    refused = console.send("goto_step", call_id=call, step="review", role="agent")  # not reached yet
    assert not refused["ok"] and "not reached" in refused["reason"] and visit.step is Step.FORM
    assert refused["code"] == "step_not_allowed"
    assert console.send("goto_step", call_id=call, step="notice", role="agent")["ok"]
    assert visit.step is Step.NOTICE

    mark = console.mark()
    assert console.send("ask_consent", call_id=call, role="agent")["ok"]
    assert console.wait("help", lambda p: p["consent"] == "asked", after=mark)
    assert console.send("end_call", call_id=call, role="agent")["ok"]
    ended = console.wait("help", lambda p: p["state"] == "ended", after=mark)
    assert ended["reason"] == "staff_ended" and visit.view().help.state == "ended"
    late = console.send("message", call_id=call, text="还在吗", role="agent")
    assert not late["ok"] and "not the help call" in late["reason"]

    audit = [(e["who"], e["action"], e["outcome"]) for e in fresh.audit_lines() if e.get("call_id") == call]
    assert ("staff:李娜", "accept_call", "done") in audit and ("staff:李娜", "end_call", "done") in audit
    assert ("staff:李娜", "goto_step", "failed") in audit and ("staff:李娜", "message", "refused") in audit
    assert "请核对" not in fresh.audit.read_text(encoding="utf-8")  # a message's words are not kept


def test_the_citizen_ends_the_call_or_the_visit_ends_under_it(fresh: Rig) -> None:
    console, visit = fresh.console, fresh.terminal.visit
    call = start_call(fresh)
    mark = console.mark()
    visit.end_help()  # 结束求助 while still waiting
    assert console.wait("help", lambda p: p["call_id"] == call and p["state"] == "ended",
                        after=mark)["reason"] == "citizen_ended"
    visit.close_help()

    mark = console.mark()
    visit.help()
    second = str(console.wait("help", lambda p: p["state"] == "waiting", after=mark)["call_id"])
    assert second != call
    assert console.send("accept_call", call_id=second, staff_name="李娜", role="agent")["ok"]
    mark = console.mark()
    visit.cancel()  # the citizen walks away: the visit is wiped mid-call
    assert console.wait("help", lambda p: p["call_id"] == second and p["state"] == "ended",
                        after=mark)["reason"] == "visit_ended"
    assert visit.view().help is None


def test_refused_commands_are_replied_audited_and_alerted(fresh: Rig, keypair: KeyPair) -> None:
    console = fresh.console
    call = start_call(fresh)
    forger = KeyPair.generate()
    cases: dict[str, dict[str, Any]] = {
        "forged": protocol.sign_command(forger, TERMINAL, "reset_visit", {}, "mallory", "supervisor"),
        "expired": protocol.sign_command(keypair, TERMINAL, "reset_visit", {}, "李娜", "supervisor",
                                         now=time.time() - 3600),
        "other_terminal": protocol.sign_command(keypair, "ZJ-TEST-0999", "reset_visit", {}, "李娜", "supervisor"),
        "wrong_call": protocol.sign_command(keypair, TERMINAL, "message", {"call_id": "0" * 16, "text": "你好"},
                                            "李娜", "agent"),
        "role": protocol.sign_command(keypair, TERMINAL, "ask_consent", {"call_id": call}, "王五", "agent"),
    }
    cases["role"]["role"] = "viewer"  # altered after signing
    unknown = {"v": 1, "id": secrets.token_hex(16), "terminal": TERMINAL, "action": "format_disk", "args": {},
               "staff": "李娜", "role": "supervisor", "issued": round(time.time(), 3),
               "expires": round(time.time() + 60, 3), "alg": keypair.algorithm}
    unknown["sig"] = keypair.sign(protocol._canonical(unknown))
    cases["unknown_action"] = unknown
    reasons, codes = {}, {}
    for name, envelope in cases.items():
        mark = console.mark()
        reply = console.command(envelope)
        assert reply["ok"] is False, name
        reasons[name], codes[name] = reply["reason"], reply["code"]
        alert = console.wait("alert", lambda p: p["id"] == "command.refused" and p["state"] == "raised", after=mark)
        assert alert["kind"] == "command_refused", name
    assert "forged" in reasons["forged"] and "stale" in reasons["expired"]
    assert "not this one" in reasons["other_terminal"] and "not the help call" in reasons["wrong_call"]
    assert "forged or altered" in reasons["role"] and "format_disk" in reasons["unknown_action"]
    assert codes == {"forged": "forged", "expired": "stale", "other_terminal": "wrong_terminal",
                     "wrong_call": "call_over", "role": "forged", "unknown_action": "invalid"}
    assert set(codes.values()) <= set(protocol.REFUSAL_CODES)

    ok = protocol.sign_command(keypair, TERMINAL, "accept_call", {"call_id": call, "staff_name": "李娜"}, "李娜",
                               "agent")
    assert console.command(ok)["ok"] is True
    mark = console.mark()
    replay = console.command(ok)
    assert replay["ok"] is False and "replay" in replay["reason"] and replay["code"] == "replayed"
    assert "replay" in console.wait("alert", lambda p: p["id"] == "command.refused", after=mark)["detail"]

    refused = [e for e in fresh.audit_lines() if e["outcome"] == "refused"]
    assert len(refused) >= 7
    assert {e["who"] for e in refused} >= {"unverified", "staff:李娜"}
    assert any(e.get("claimed_staff") == "mallory" for e in refused)
    assert fresh.terminal.visit.step is Step.FORM  # none of them reset the visit


def test_restart_device_reset_visit_and_media_without_devices(fresh: Rig) -> None:
    console, visit = fresh.console, fresh.terminal.visit
    reply = console.send("restart_device", device="receipt_printer")
    assert reply["ok"] and reply["detail"] == "online"
    missing = console.send("restart_device", device="fax")
    assert not missing["ok"] and "no device named 'fax'" in missing["reason"]

    call = start_call(fresh)
    assert console.send("accept_call", call_id=call, staff_name="李娜", role="agent")["ok"]
    media = console.send("media_offer", call_id=call, sdp="v=0", role="agent")
    assert not media["ok"] and media["reason"] == "no microphone or camera configured"
    mark = console.mark()
    assert console.send("reset_visit")["ok"]
    assert visit.step is Step.ATTRACT and visit.view().help is None
    assert console.wait("help", lambda p: p["call_id"] == call and p["state"] == "ended",
                        after=mark)["reason"] == "visit_ended"
    done = [(e["action"], e["outcome"]) for e in fresh.audit_lines()]
    assert ("restart_device", "done") in done and ("reset_visit", "done") in done
    assert ("restart_device", "failed") in done and ("media_offer", "failed") in done


# -- an agent without the whole terminal: the last will, a late broker, the password file -----------
AGENT_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from config.loader import load_config
    from kiosk.catalogue import Catalogue
    from kiosk.fleet_agent import FleetAgent
    from kiosk.visit import Visit
    cfg = load_config(environ=json.loads(sys.argv[1]))
    agent = FleetAgent(cfg, Visit(Catalogue([])), {}, data_dir=Path(sys.argv[2]))
    agent.start()
    print("connected" if agent.wait_connected(20) else "not connected", flush=True)
    time.sleep(300)
""")


def test_the_last_will_says_offline_when_the_process_dies(fleet_broker: Broker, keypair: KeyPair,
                                                            tmp_path: Path) -> None:
    terminal = "ZJ-TEST-WILL"
    account = fleet_broker.add_terminal(terminal)
    env = fleet_env(fleet_broker, password_file(tmp_path, account), keypair, keepalive_s=2)
    env["KIOSK__TERMINAL__ID"] = json.dumps(terminal)
    env["KIOSK__TERMINAL__DATA_DIR"] = json.dumps(str(tmp_path / "data"))
    console = Console(fleet_broker, keypair)
    process = subprocess.Popen([sys.executable, "-c", AGENT_SCRIPT, json.dumps(env), str(tmp_path / "data"), str(ROOT)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "connected"
        console.wait("state", lambda p: p["online"], terminal=terminal)
        mark = console.mark()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(WAIT_S)
        lost = console.wait("state", lambda p: not p["online"], terminal=terminal, after=mark)
        assert lost["reason"] == "lost"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT_S)
        console.close()


class Media:
    """Stands in for kiosk.help_media.HelpMedia (tested on its own): answers or fails, records stops."""

    def __init__(self) -> None:
        self.offers: list[tuple[str, str]] = []
        self.stopped: list[str] = []
        self.fail = ""

    def answer(self, call_id: str, offer_sdp: str) -> str:
        self.offers.append((call_id, offer_sdp))
        if self.fail:
            raise RuntimeError(self.fail)
        return "v=0 answer"

    def stop(self, call_id: str) -> None:
        self.stopped.append(call_id)

    def close(self) -> None:
        pass


# restarts the module's broker (new console password): keep it after the tests that use `rig`
def test_the_agent_starts_without_a_broker_and_connects_when_it_comes(fleet_broker: Broker, keypair: KeyPair,
                                                                      tmp_path: Path) -> None:
    terminal = "ZJ-TEST-LATE"
    account = fleet_broker.add_terminal(terminal)
    env = fleet_env(fleet_broker, password_file(tmp_path, account), keypair, outbox_backlog_alert=3,
                    microphone="default")
    env["KIOSK__TERMINAL__ID"] = json.dumps(terminal)
    cfg = load_config(environ=env)
    visit = Visit(Catalogue([]))
    media = Media()
    agent = FleetAgent(cfg, visit, {}, data_dir=tmp_path, media_factory=lambda: media,
                       outbox_counts=lambda: {"pending": 5, "delivered": 0, "rejected": 0})
    calls = HelpCalls(visit, None, "12345", agent)
    visit.subscribe(calls.on_view)
    fleet_broker.stop()
    try:
        agent.start()  # nothing listens: the agent keeps trying by itself
        assert not agent.connected
        visit.help()  # no broker: the hotline, as without the fleet
        calls.join()
        assert visit.view().help.state == "failed" and visit.view().help.hotline == "12345"
        visit.close_help()
    finally:
        fleet_broker.start()
    console = Console(fleet_broker, keypair)
    try:
        assert agent.wait_connected(WAIT_S + 30), "the agent did not connect once the broker was up"
        console.wait("state", lambda p: p["online"], terminal=terminal, timeout=WAIT_S)
        backlog = console.wait("alert", lambda p: p["id"] == "outbox.backlog", terminal=terminal)
        assert backlog["kind"] == "outbox_backlog" and backlog["state"] == "raised"
        mark = console.mark()
        visit.help()  # now the help desk takes it
        calls.join()
        call = console.wait("help", lambda p: p["state"] == "waiting", terminal=terminal, after=mark)["call_id"]
        assert visit.view().help.state == "waiting"

        # help-call media goes to HelpMedia, its answer comes back on up/media
        assert console.send("accept_call", terminal=terminal, call_id=call, staff_name="李娜")["ok"]
        mark = console.mark()
        assert console.send("media_offer", terminal=terminal, call_id=call, sdp="v=0 offer")["ok"]
        answer = console.wait("media", terminal=terminal, after=mark)
        assert answer == {"v": 1, "call_id": call, "type": "answer", "sdp": "v=0 answer"}
        media.fail = "no camera: the configured camera is offline"
        mark = console.mark()
        failed = console.send("media_offer", terminal=terminal, call_id=call, sdp="v=0 offer")
        assert not failed["ok"] and "no camera" in failed["reason"]
        assert "no camera" in console.wait("media", terminal=terminal, after=mark)["error"]
        assert console.send("media_stop", terminal=terminal, call_id=call)["ok"] and media.stopped == [call]
        mark = console.mark()
        visit.end_help()
        console.wait("help", lambda p: p["state"] == "ended", terminal=terminal, after=mark)
        wait_until(lambda: media.stopped == [call, call], "the media stopped with the call")

        mark = console.mark()
        agent.stop()
        assert console.wait("state", lambda p: not p["online"], terminal=terminal, after=mark)["reason"] == "stopped"
    finally:
        agent.stop()
        console.close()


def test_a_password_file_others_can_read_is_refused(fleet_broker: Broker, keypair: KeyPair, tmp_path: Path) -> None:
    account = FleetAccount(fleet_broker.host, fleet_broker.port, fleet_broker.ca_file, TERMINAL, "secret")
    path = password_file(tmp_path, account)
    path.chmod(0o644)
    cfg = load_config(environ=fleet_env(fleet_broker, path, keypair))
    agent = FleetAgent(cfg, Visit(Catalogue([])), {}, data_dir=tmp_path)
    with pytest.raises(FleetAccountError, match=f"chmod 600 {path}"):
        agent.start()


def test_buttons_placed_anew_go_to_the_help_desk_with_their_words(fresh: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Kivy app settles its buttons a moment after a view; its redraw sends the mirror again
    (not the periodic one: that is an hour away here), with the words on the buttons, masked."""
    terminal, console = fresh.terminal, fresh.console
    assert terminal.fleet is not None
    monkeypatch.setattr(terminal.fleet.fleet, "screen_mirror_interval_s", 3600.0)
    call = start_call(fresh)
    assert console.send("accept_call", call_id=call, staff_name="李娜", role="agent")["ok"]
    console.wait("screen", lambda p: p["call_id"] == call)
    layout = {"next": {"box": [0.8, 0.9, 0.15, 0.08], "label": "下一步"},
              "field:applicant_name": {"box": [0.1, 0.3, 0.8, 0.06], "label": f"申请人姓名 {Card().name}"}}
    monkeypatch.setattr(terminal, "layout_provider", lambda: layout)
    mark = console.mark()
    terminal.layout_changed()
    screen = console.wait("screen", lambda p: p["mirror"]["labels"] is not None, after=mark)
    assert screen["mirror"]["layout"]["next"] == [0.8, 0.9, 0.15, 0.08]
    assert screen["mirror"]["labels"]["next"] == "下一步"
    assert Card().name not in screen["mirror"]["labels"]["field:applicant_name"]  # no consent yet
