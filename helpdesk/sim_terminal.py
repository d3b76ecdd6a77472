"""A simulated terminal on the fleet channel: speaks fleet/protocol.py like a kiosk's agent.

For the console's tests, its bench and demos without a kiosk: it publishes state (retained,
with the last will), heartbeats, devices, alerts, help calls and screen mirrors from its own
broker account, and checks every command it receives with `CommandVerifier` before it
answers on `up/reply` (refusing what does not verify, as a real terminal does).

    python -m helpdesk.sim_terminal --host 127.0.0.1 --port 8883 --ca-file ca.pem \\
        --username SIM-0001 --password-file pw --keepalive 2 --heartbeat 1

runs one in the foreground (prints "ready" once its state is published), until killed.
"""
from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from fleet.client import FleetAccount, make_client, read_password_file
from fleet.protocol import (
    CommandVerifier,
    ProtocolError,
    command_topic,
    decode,
    encode,
    up,
)

DEFAULT_DEVICES = {
    "idcard": {"class": "idcard", "state": "online", "media": "not_supported", "fault": ""},
    "receipt_printer": {"class": "receipt_printer", "state": "online", "media": "present", "fault": ""},
    "camera": {"class": "camera", "state": "online", "media": "not_supported", "fault": ""},
}


# synthetic personal values for sample mirrors (not a real person's)
SAMPLE_NAME = "张三丰"
SAMPLE_ID_NUMBER = "110101199003071234"
SAMPLE_PHONE = "13912345678"


def sample_mirror(call_id: str, *, consent: bool = False) -> dict[str, Any]:
    """The screen a kiosk on the form step sends during a call, made by the kiosk's own mirror
    code (kiosk/screen_mirror.py) from a synthetic citizen: masked unless `consent`."""
    from config.texts import Texts
    from kiosk.screen_mirror import mirror
    from kiosk.view import FieldView, HelpCall, ItemInfo, Step, View

    view = View(step=Step.FORM, language="zh-CN", title_key="form.title", title_values={"item": "新生儿出生一件事"},
                prompt_key="form.prompt", item=ItemInfo("newborn", "新生儿出生一件事"), position=(2, 4),
                fields=(FieldView("name", "姓名", SAMPLE_NAME, SAMPLE_NAME, "text", True, False, "card"),
                        FieldView("id_number", "公民身份号码", SAMPLE_ID_NUMBER, SAMPLE_ID_NUMBER, "text", True, False,
                                  "card"),
                        FieldView("phone", "手机号码", SAMPLE_PHONE, SAMPLE_PHONE, "phone", True, True, "platform"),
                        FieldView("relation", "与新生儿关系", "", "", "choice", True, True, "",
                                  problem="form.problem.required")),
                help=HelpCall("connected", call_id=call_id, staff="王芳", consent="granted" if consent else "asked"))
    layout = {"help": [0.86, 0.015, 0.12, 0.07], "back": [0.02, 0.88, 0.15, 0.09],
              "next": [0.8, 0.88, 0.18, 0.09], "field:relation": [0.05, 0.62, 0.9, 0.1]}
    return mirror(view, Texts.load(), consent=consent, layout=layout)


class SimTerminal:
    """One simulated terminal; `start()` connects and publishes it online."""

    def __init__(self, account: FleetAccount, *, location: str = "测试网点", heartbeat_s: float = 30.0,
                 keepalive_s: int = 30, console_key: tuple[str, str] | None = None,
                 devices: dict[str, dict[str, str]] | None = None, client_id: str | None = None) -> None:
        self.account = account
        self.id = account.username
        self.location = location
        self.heartbeat_s = heartbeat_s
        self.keepalive_s = keepalive_s
        self.devices = {k: dict(v) for k, v in (devices or DEFAULT_DEVICES).items()}
        self.verifier = (CommandVerifier(self.id, console_key[0], console_key[1])
                         if console_key is not None else None)
        self.commands: queue.Queue[dict[str, Any]] = queue.Queue()  # verified envelopes
        self.refused: queue.Queue[tuple[dict[str, Any] | bytes, str]] = queue.Queue()
        self.auto_reply = True
        self.replies: dict[str, tuple[bool, str]] = {}  # action -> (ok, reason) instead of ok
        self.silent: set[str] = set()  # actions left unanswered (to test the console's timeout)
        self.media_answer: str | None = None  # SDP answer to a media_offer (None: error)
        self.connected = threading.Event()
        self.seq = 0
        self._client = make_client(account, client_id or self.id,
                                   will=(up(self.id, "state"), encode({"online": False, "reason": "lost"})))
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = lambda *_a: self.connected.clear()
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = time.time()

    # -- life ------------------------------------------------------------------------------------
    def start(self, *, heartbeats: bool = True, timeout_s: float = 20.0) -> SimTerminal:
        self._client.connect_async(self.account.host, self.account.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        if not self.connected.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"simulated terminal {self.id} could not connect to the broker in {timeout_s:.0f} s")
        if heartbeats:
            self._beat = threading.Thread(target=self._beat_loop, name=f"sim-{self.id}", daemon=True)
            self._beat.start()
        return self

    def stop(self, *, goodbye: bool = True) -> None:
        self._stop.set()
        if goodbye and self.connected.is_set():
            self.publish("state", {"online": False, "reason": "stopped"}, qos=1, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()
        if self._beat is not None:
            self._beat.join(5)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(command_topic(self.id), qos=1)
        self.publish_state()
        self.publish_devices()
        self.connected.set()

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.heartbeat()

    # -- what a terminal says --------------------------------------------------------------------
    def publish(self, kind: str, payload: dict[str, Any], *, qos: int = 1, retain: bool = False
                ) -> mqtt.MQTTMessageInfo:
        return self._client.publish(up(self.id, kind), encode(payload), qos=qos, retain=retain)

    def publish_raw(self, topic_name: str, data: bytes) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic_name, data, qos=1)

    def publish_state(self) -> None:
        self.publish("state", {"online": True, "reason": "connected", "location": self.location,
                               "version": "sim", "since": round(self._started, 3),
                               "heartbeat_s": self.heartbeat_s}, retain=True)

    def publish_devices(self, alerts: list[dict[str, Any]] | None = None) -> None:
        self.publish("devices", {"devices": self.devices, "alerts": alerts or []}, retain=True)

    def heartbeat(self, step: str = "attract", *, in_visit: bool = False, pending: int = 0) -> None:
        self.seq += 1
        self.publish("heartbeat", {"seq": self.seq, "time": round(time.time(), 3),
                                   "uptime_s": round(time.time() - self._started, 1), "step": step,
                                   "in_visit": in_visit, "heartbeat_s": self.heartbeat_s,
                                   "outbox": {"pending": pending, "delivered": 0, "rejected": 0},
                                   "devices": {"ok": len(self.devices), "total": len(self.devices)}}, qos=0)

    def alert(self, alert_id: str, raised: bool, *, kind: str = "device_offline", device: str = "",
              detail: str = "", severity: str = "error") -> None:
        now = round(time.time(), 3)
        self.publish("alert", {"id": alert_id, "state": "raised" if raised else "cleared", "kind": kind,
                               "severity": severity, "device": device, "detail": detail, "since": now, "time": now})

    def help(self, call_id: str, state: str, **extra: Any) -> None:
        self.publish("help", {"call_id": call_id, "state": state, "location": self.location,
                              "since": round(time.time(), 3), **extra})

    def screen(self, call_id: str, mirror: dict[str, Any], *, seq: int, consent: str = "") -> None:
        self.publish("screen", {"call_id": call_id, "seq": seq, "consent": consent, "mirror": mirror}, qos=0)

    def reply(self, envelope: dict[str, Any], ok: bool, reason: str = "") -> None:
        self.publish("reply", {"cmd_id": envelope.get("id", ""), "action": envelope.get("action", ""), "ok": ok,
                               "reason": reason})

    # -- what a terminal hears -------------------------------------------------------------------
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        data = bytes(msg.payload)
        try:
            envelope = decode(data)
            if self.verifier is None:
                raise ProtocolError("no console key configured: every command is refused")
            self.verifier.check(envelope)
        except ProtocolError as exc:
            try:
                bad: dict[str, Any] | bytes = decode(data)
            except ProtocolError:
                bad = data
            self.refused.put((bad, str(exc)))
            if isinstance(bad, dict) and self.auto_reply:
                self.reply(bad, False, str(exc))
            return
        self.commands.put(envelope)
        action = envelope["action"]
        if not self.auto_reply or action in self.silent:
            return
        if action == "media_offer":
            if self.media_answer is None:
                self.reply(envelope, False, "no microphone or camera configured")
            else:
                self.reply(envelope, True)
                self.publish("media", {"call_id": envelope["args"]["call_id"], "type": "answer",
                                       "sdp": self.media_answer})
            return
        ok, reason = self.replies.get(action, (True, ""))
        self.reply(envelope, ok, reason)
        if ok and action == "accept_call":
            self.help(envelope["args"]["call_id"], "connected", staff=envelope["args"]["staff_name"], consent="asked")
        elif ok and action == "end_call":
            self.help(envelope["args"]["call_id"], "ended", reason="staff_ended")

    def next_command(self, action: str | None = None, timeout_s: float = 20.0) -> dict[str, Any]:
        """The next verified command (of `action`, skipping others), or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.id} got no {action or 'command'} within {timeout_s:.0f} s")
            try:
                envelope = self.commands.get(timeout=left)
            except queue.Empty:
                continue
            if action is None or envelope["action"] == action:
                return envelope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpdesk.sim_terminal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--username", required=True, help="the terminal id and broker account")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--keepalive", type=int, default=30)
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--location", default="测试网点")
    args = parser.parse_args(argv)
    account = FleetAccount(args.host, args.port, args.ca_file, args.username, read_password_file(args.password_file))
    sim = SimTerminal(account, location=args.location, heartbeat_s=args.heartbeat, keepalive_s=args.keepalive)
    sim.start()
    sim.heartbeat()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
