"""What the privacy audit plays its visits on: the synthetic people, a help-desk console on the
fleet channel, a scenario runner with hooks between steps, the terminal's configuration, what is
done between two visits (the citizen leaves the camera, the terminal's work settles, the memory
roots) and the outbox read as a copied disk would be.

Used by tests/test_privacy_audit.py. Nothing here is a fake of the terminal's own code: the
console is a plain MQTT subscriber with the console's signing key (as the help desk is), and
the runner is kiosk.scenario.Runner with one more step kind, `call`, that runs a function.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privacy_audit_search import Person

from config.loader import load_config
from config.schema import KioskConfig
from fleet import protocol
from fleet.broker import Broker
from fleet.client import make_client
from govapi.signing import KeyPair
from kiosk.scenario import Runner
from kiosk.visit import View

ROOT = Path(__file__).resolve().parent.parent
ID_CARDS = ROOT / "devices" / "idcard" / "cards"
FACES = ROOT / "var" / "testdata" / "faces"
WAIT_S = 30.0  # generous: a loaded 2-core machine; never a timing assertion
# the whole face check may take this long, in up to 10 attempts: on a loaded 2-core machine the
# emulated citizen's head turn reaches the liveness check in too few frames and attempts fail
# (seen: 4 of 5 at a load average of 9); unloaded, the first attempt passes in a few seconds
FACE_CHECK_S = 120
TERMINAL_ID = "T-PRIVACY-01"
LOCATION = "隐私审计网点一楼"  # words of the branch, in no person's data

# What 王䶮𠈌 types on the newborn form instead of what the platform knows (nobody else's values)
TYPED_PHONE = "13912345021"
TYPED_ADDRESS = "北京市东城区隐私审计街道键入路88号5单元"

# 李四's social security card, third generation, with a face photo: the repository's cards of him
# have none, and a card without a photo cannot pass the face check (written to the test's folder)
LI_SI_CARD = """\
# Synthetic test person (the platform's 李四): written by tests/privacy_audit_rig.py.
profile = "social_security_3"

[holder]
card_identifier = "110100D156000056"
spec_version = "3.00"
issuer_code = "110100000000"
issue_date = 2021-06-01
expiry_date = 2031-06-01
card_number = "B20000056"
id_number = "110101196004120056"
name = "李四"
gender_code = "1"
nation_code = "03"
birthplace_code = "110101"
birth_date = 1960-04-12

[emulator]
photo = "biden.jpg"
"""


# -- the people ------------------------------------------------------------------------------------
def id_card_photos(card: str) -> tuple[bytes, ...]:
    """The photo block of an emulated ID card as read (the emulator's WebP), and the BMP the
    driver decodes from it: the bytes the terminal holds during the visit."""
    from devices.idcard.emulator import load_card
    from devices.idcard.emulator_photo import EmulatorPhotoDecoder

    identity = load_card(ID_CARDS / f"{card}.toml")
    return identity.photo_wlt, EmulatorPhotoDecoder().decode(identity.photo_wlt)


def smart_card_photo(face: str) -> bytes:
    from devices.smartcard.card_emulator import card_photo

    return card_photo(face)


def people() -> dict[str, Person]:
    """The visit's citizens by key; every value is synthetic (devices/idcard/cards,
    govplatform/data/residents.toml)."""
    return {
        "zhang": Person(
            "P1 张三 (ID card, face check, certificate)", "张三", "110101199003070011", dt.date(1990, 3, 7),
            addresses=("北京市东城区示例街道测试路1号院2号楼301室",), phones=("13800000011",),
            photos=id_card_photos("resident")),
        "li": Person(
            "P2 李四 (social security card, help call)", "李四", "110101196004120056", dt.date(1960, 4, 12),
            addresses=("北京市东城区示例街道新址路34号", "北京市东城区示例街道旧址路12号"), phones=("13800000056",),
            other=(("card number", "B20000056"), ("employer", "北京示例机床厂")),
            photos=(smart_card_photo("biden.jpg"),)),
        "wang": Person(
            "P3 王䶮𠈌 (types phone and address, outbox)", "王䶮𠈌", "110101199506150021", dt.date(1995, 6, 15),
            addresses=("北京市东城区示例街道样本胡同6号", TYPED_ADDRESS), phones=("13800000021", TYPED_PHONE),
            other=(("spouse name", "孙浩然"), ("spouse id_number", "110101199302140032"), ("child name", "孙小禾"),
                   ("birth certificate number", "Q110260021")),
            photos=id_card_photos("resident-rare-name")),
        "zhao": Person(
            "P4 赵五娘 (expired ID card, refused)", "赵五娘", "110101197801010065", dt.date(1978, 1, 1),
            addresses=("北京市东城区示例街道过期路7号",), photos=id_card_photos("resident-expired")),
    }


# -- the help desk ---------------------------------------------------------------------------------
class Console:
    """The help desk's side of the fleet channel: keeps every payload the terminal sends up, as
    received, and signs commands with the console's key."""

    def __init__(self, broker: Broker, keypair: KeyPair) -> None:
        self.keypair = keypair
        self.received: list[tuple[str, bytes]] = []  # (topic, raw payload)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        account = broker.console_account()
        self.client = make_client(account, f"audit-console-{secrets.token_hex(3)}")
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("kiosk/+/up/#", qos=1)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(account.host, account.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), "the audit's console did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            self.received.append((str(msg.topic), bytes(msg.payload)))

    def messages(self, kind: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            got = self.received[after:]
        return [json.loads(raw) for topic, raw in got if kind is None or topic.endswith(f"/up/{kind}")]

    def mark(self) -> int:
        with self._lock:
            return len(self.received)

    def wait(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _p: True, *,
             after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while True:
            found = [p for p in self.messages(kind, after) if match(p)]
            if found:
                return found[-1]
            assert time.monotonic() < deadline, f"the help desk got no {kind} message as expected within {WAIT_S:.0f} s"
            time.sleep(0.05)

    def send(self, action: str, **args: Any) -> dict[str, Any]:
        """A signed command from staff member 李娜, and the terminal's reply."""
        envelope = protocol.sign_command(self.keypair, TERMINAL_ID, action, args, "李娜", "agent")
        mark = self.mark()
        info = self.client.publish(protocol.command_topic(TERMINAL_ID),
                                   json.dumps(envelope, ensure_ascii=False).encode("utf-8"), qos=1)
        info.wait_for_publish(WAIT_S)
        return self.wait("reply", lambda p: p["cmd_id"] == envelope["id"], after=mark)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the runner ------------------------------------------------------------------------------------
class AuditRunner(Runner):
    """kiosk.scenario.Runner that keeps no views (a test harness holding every screen would be
    found by the memory search and hide what the terminal keeps), plus a step kind `call`:
    {"do": "call", "fn": callable} runs fn(terminal) between two steps."""

    def _on_view(self, view: View) -> None:
        with self._changed:
            self._changed.notify_all()

    def _do(self, n: int, step: dict[str, Any]) -> None:
        if step["do"] == "call":
            step["fn"](self.terminal)
            return
        super()._do(n, step)


# -- the terminal's configuration -------------------------------------------------------------------
def terminal_config(data_dir: Path, platform_url: str, broker: Broker, password_file: Path,
                    console_key: KeyPair, *, receipts: Path, a4_dir: Path) -> KioskConfig:
    """Every device emulated, the face check on, the platform and the help desk reachable; the
    paper (receipts, certificates) outside the data folder, as it leaves the terminal."""
    environ = {
        "KIOSK__TERMINAL__ID": TERMINAL_ID, "KIOSK__TERMINAL__LOCATION": json.dumps(LOCATION),
        "KIOSK__TERMINAL__DATA_DIR": json.dumps(str(data_dir)),
        "KIOSK__PLATFORM__URL": json.dumps(platform_url), "KIOSK__PLATFORM__TIMEOUT_S": "2",
        "KIOSK__PLATFORM__DELIVERY_INTERVAL_S": "0.3", "KIOSK__VOICE__ENABLED": "false",
        "KIOSK__FACE__ENABLED": "true", "KIOSK__LOGGING__LEVEL": '"DEBUG"',
        # patient with a machine too busy to show the challenge's frames in time (never the point here)
        "KIOSK__FACE__ATTEMPTS": "10", "KIOSK__FACE__TIME_LIMIT_S": str(FACE_CHECK_S),
        "KIOSK__FLEET__ENABLED": "true", "KIOSK__FLEET__BROKER_HOST": json.dumps(broker.host),
        "KIOSK__FLEET__BROKER_PORT": str(broker.port), "KIOSK__FLEET__CA_FILE": json.dumps(broker.ca_file),
        "KIOSK__FLEET__PASSWORD_FILE": json.dumps(str(password_file)),
        "KIOSK__FLEET__CONSOLE_PUBLIC_KEY": json.dumps(console_key.public_key),
        "KIOSK__FLEET__HEARTBEAT_S": "1.0", "KIOSK__FLEET__KEEPALIVE_S": "5",
        "KIOSK__FLEET__SCREEN_MIRROR_INTERVAL_S": "1",
    }
    cfg = load_config(environ=environ)
    for device in cfg.devices.values():
        device.emulate = True
    cfg.devices["receipt_printer"].emulator["out_dir"] = str(receipts)
    cfg.devices["a4_printer"].emulator["directory"] = str(a4_dir)
    return cfg


# -- between two visits -------------------------------------------------------------------------------
PRODUCT_MODULES = ("kiosk", "devices", "fleet", "govapi", "config", "voice")
# modules of the world outside the terminal (emulated hardware) and of the test harness: not entered
OUTSIDE = ("emulator", "pcscd_rig", "vpcd_link", "devices.camera.scene", "devices.scanner.document_scene",
           "kiosk.scenario", "kiosk.soak", "privacy_audit_", "faultproxy", "govplatform_harness", "visit_doubles", "_pytest",
           "pytest")


def outside(obj: Any) -> bool:
    """An emulator (the hardware and the card in it) or a piece of the test harness."""
    module = type(obj).__module__ or ""
    return any(part in module for part in OUTSIDE)


def shipped_dictionaries() -> set[int]:
    """ids of the pinyin IME's shipped dictionary (read-only, hundreds of thousands of entries,
    loaded once per process): not entered. Its table of words committed this session is."""
    shared = getattr(sys.modules.get("kiosk.chinese_input"), "_shared", None)
    ids: set[int] = set()
    for engine in list(getattr(shared, "_engines", {}).values()):
        ime = getattr(engine, "_ime", None)
        for name in ("_table", "_syl_to_id", "_prism"):
            if getattr(ime, name, None) is not None:
                ids.add(id(getattr(ime, name)))
    return ids


def memory_roots(terminal: Any) -> dict[str, Any]:
    """The terminal, and the globals of the product's modules (caches, registries, the log
    filter's registered secrets)."""
    roots: dict[str, Any] = {"terminal": terminal}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(PRODUCT_MODULES) or any(p in name for p in OUTSIDE):
            continue
        for attr, value in list(vars(module).items()):
            if not attr.startswith("__") and not isinstance(value, (type, types.ModuleType)):
                roots[f"{name}.{attr}"] = value
    return roots


def nobody_at_the_camera(terminal: Any) -> None:
    """The citizen walks away: wait until the live picture shows no face (the camera is always on)."""
    from privacy_audit_search import faces_in

    terminal.emulators["camera"].leave()
    camera = terminal.devices["camera"]
    deadline = time.monotonic() + WAIT_S
    seq = -1
    while True:
        frame = camera.latest_frame(newer_than=seq, timeout_s=1.0)
        if frame is not None:
            seq = frame.seq
            if not faces_in(frame.image):
                return
        assert time.monotonic() < deadline, "the emulated citizen did not leave the camera's picture"


def settle(terminal: Any) -> None:
    """Let the work a visit started finish: its threads, and the fleet agent's queue."""
    for worker in (terminal.help_calls, terminal.citizen_page, terminal.material_scanner, terminal.face,
                   terminal.fleet):
        if worker is not None:
            worker.join(WAIT_S)
    for thread in list(terminal.handout.threads):
        thread.join(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while terminal.fleet is not None and not terminal.fleet._work.empty():
        assert time.monotonic() < deadline, "the fleet agent did not take its queued work"
        time.sleep(0.05)


def help_call(console: Console) -> Callable[[Any], None]:
    """求助 on the current screen: staff take the call; the citizen is asked, refuses, is asked again
    and grants; then ends the call and closes the panel."""
    def run(terminal: Any) -> None:
        assert terminal.fleet is not None and terminal.fleet.wait_connected(WAIT_S), \
            "the terminal is not on the fleet channel"
        mark = console.mark()
        terminal.visit.help()
        call_id = console.wait("help", lambda p: p["state"] == "waiting", after=mark)["call_id"]
        assert console.send("accept_call", call_id=call_id, staff_name="李娜")["ok"]
        console.wait("screen", lambda p: p["consent"] == "asked" and p["mirror"]["step"] == "form", after=mark)
        terminal.visit.give_consent(False)
        console.wait("screen", lambda p: p["consent"] == "refused", after=mark)
        assert console.send("message", call_id=call_id, text="请核对信息后点下一步")["ok"]
        asked_again = console.mark()
        assert console.send("ask_consent", call_id=call_id)["ok"]
        console.wait("screen", lambda p: p["consent"] == "asked", after=asked_again)
        terminal.visit.give_consent(True)
        console.wait("screen", lambda p: p["consent"] == "granted", after=mark)
        terminal.visit.end_help()
        console.wait("help", lambda p: p["state"] == "ended", after=mark)
        terminal.visit.close_help()
    return run


def deliver_all(terminal: Any) -> None:
    """Wait until the outbox has nothing pending (the deliverer backs off while the platform was away)."""
    deadline = time.monotonic() + WAIT_S * 4
    while terminal.link.outbox.counts().get("pending", 0):
        assert time.monotonic() < deadline, f"the outbox was not delivered: {terminal.link.outbox.counts()}"
        time.sleep(0.1)


# -- the outbox, read as a copied disk would be ----------------------------------------------------------
def _outbox_db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'outbox' / 'outbox.db'}?mode=ro", uri=True)


def outbox_rows(data_dir: Path) -> list[tuple[str, str, bool]]:
    """(kind, state, payload kept?) of every outbox entry: states are not secret."""
    db = _outbox_db(data_dir)
    try:
        return [(k, s, bool(p)) for k, s, p in db.execute("SELECT kind, state, payload IS NOT NULL FROM outbox")]
    finally:
        db.close()


def sealed_payloads(data_dir: Path) -> list[bytes]:
    """The encrypted payloads waiting in the outbox (ciphertext: what a copied disk holds)."""
    db = _outbox_db(data_dir)
    try:
        return [bytes(p) for (p,) in db.execute("SELECT payload FROM outbox WHERE payload IS NOT NULL")]
    finally:
        db.close()


def remnants(folder: Path, sealed: list[bytes]) -> list[str]:
    """Files under `folder` still holding a piece of one of the `sealed` payloads."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for n, box in enumerate(sealed):
            piece = box[len(box) // 2: len(box) // 2 + 32]
            if piece and piece in data:
                found.append(f"{path.name}: a piece of the encrypted payload {n}")
    return found
