"""The console's side of the fleet channel: reads every terminal's `up` topics, sends signed commands.

One paho client (MQTT 5, TLS, the console's broker account) subscribed to ``kiosk/+/up/#``.
Each message is decoded per fleet/protocol.py and handed to the fleet state or the call desk;
whatever they change goes to the pages as events. A message that is not a fleet message —
wrong topic, not JSON, wrong version, too large, a field of the wrong type — is counted and
ignored, and logged once per topic, so a broken or hostile terminal cannot flood the log or
stop the console.

A command is signed with the console's key (`fleet.protocol.sign_command`), published on the
terminal's ``down/cmd`` and answered on ``up/reply`` with the command's id; the caller waits
for that answer with a deadline ("no answer from the terminal"). A WebRTC offer is answered on
``up/media``.

The console keeps a persistent broker session (clean start off, one hour expiry), so help
calls published while it restarts are delivered when it comes back.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.client import FleetAccount, make_client
from fleet.protocol import (
    ProtocolError,
    command_topic,
    decode,
    encode,
    parse_topic,
    sign_command,
)
from govapi.masking import mask_numbers
from govapi.signing import KeyPair
from helpdesk.calls import CallDesk
from helpdesk.events import FLEET, EventHub, call_scope
from helpdesk.fleet_state import FleetState
from helpdesk.store import CallTaken, Staff

log = logging.getLogger(__name__)

# Two connections, so each has its own queue at the broker: a flood of heartbeats (QoS 0) can
# fill the one that carries them, and the broker then drops what is queued for it, but it
# cannot push an alert, a help call or a command's reply out of the other one.
EVENT_KINDS = ("state", "devices", "alert", "help", "screen", "reply", "media")
HEARTBEATS = "kiosk/+/up/heartbeat"
SESSION_EXPIRY_S = 3600
SWEEP_S = 1.0
_MAX_LOGGED_TOPICS = 1000


class CommandFailed(Exception):
    """A command did not get done; `status` is the HTTP status the console answers with."""

    status = 502


class NotConnected(CommandFailed):
    status = 503


class NoAnswer(CommandFailed):
    status = 504


class Refused(CommandFailed):
    """The terminal answered and said no (wrong call, nothing to restart, no camera...);
    `code` is its fleet.protocol.REFUSAL_CODES word, for saying it in the staff's language."""

    status = 409

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Reply:
    cmd_id: str
    action: str
    ok: bool
    reason: str
    data: dict[str, Any]


class FleetBridge:
    """Start with `start()`; thread-safe `command`/`media_offer` for the web handlers."""

    def __init__(self, account: FleetAccount, keypair: KeyPair, fleet: FleetState, calls: CallDesk,
                 hub: EventHub, *, client_id: str = "helpdesk-console", keepalive_s: int = 30,
                 clock: Callable[[], float] = time.time) -> None:
        self.account = account
        self.keypair = keypair
        self.fleet = fleet
        self.calls = calls
        self.hub = hub
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.clock = clock
        self.connected = threading.Event()
        self.garbage: Counter[str] = Counter()  # ignored messages by reason word
        self.processed = 0
        self.last_error = ""
        self._garbage_logged: set[str] = set()
        self._pending: dict[str, tuple[str, concurrent.futures.Future[Reply]]] = {}
        self._media: dict[tuple[str, str], concurrent.futures.Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client: mqtt.Client | None = None  # events and commands
        self._beats: mqtt.Client | None = None  # heartbeats only
        self.beats_connected = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------------
    def start(self) -> None:
        client = make_client(self.account, self.client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        client.connect_async(self.account.host, self.account.port, keepalive=self.keepalive_s,
                             clean_start=False, properties=props)
        beats = make_client(self.account, f"{self.client_id}-heartbeats")
        beats.on_connect = self._on_beats_connect
        beats.on_disconnect = lambda *_a: self.beats_connected.clear()
        beats.on_message = self._on_message
        beats.connect_async(self.account.host, self.account.port, keepalive=self.keepalive_s, clean_start=True)
        self._client, self._beats = client, beats
        client.loop_start()
        beats.loop_start()
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="helpdesk-sweep", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        for client in (self._client, self._beats):
            if client is not None:
                client.disconnect()
                client.loop_stop()
        self._client = self._beats = None
        if self._sweeper is not None:
            self._sweeper.join(5)
            self._sweeper = None
        with self._lock:
            pending, self._pending = self._pending, {}
            media, self._media = self._media, {}
        for _, fut in pending.values():
            fut.cancel()
        for mfut in media.values():
            mfut.cancel()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(SWEEP_S):
            if self.beats_connected.is_set():  # without our heartbeat feed, silence says nothing about them
                self._emit(self.fleet.sweep())

    # -- paho callbacks (paho's thread) ------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"the broker refused the console's account: {reason}"
            log.error("%s; check --account-password-file and the broker's password file", self.last_error)
            return
        client.subscribe([(f"kiosk/+/up/{kind}", 1) for kind in EVENT_KINDS])
        self.last_error = ""
        self.connected.set()
        self.hub.publish(FLEET, "health", self.health())
        log.info("connected to the fleet broker %s:%s", self.account.host, self.account.port)

    def _on_beats_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(HEARTBEATS, qos=0)
            self.fleet.grace()  # heartbeats missed while we were away are ours, not the terminals'
            self.beats_connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stop.is_set():
            self.last_error = f"lost the fleet broker ({reason}); reconnecting"
            log.warning("%s", self.last_error)
            self.hub.publish(FLEET, "health", self.health())

    def _ignore(self, topic: str, why: str, exc: Exception | str) -> None:
        self.garbage[why] += 1
        if topic not in self._garbage_logged and len(self._garbage_logged) < _MAX_LOGGED_TOPICS:
            self._garbage_logged.add(topic)
            log.warning("ignoring a bad fleet message on %s (%s): %s; further ones on this topic are only "
                        "counted", mask_numbers(topic[:100]), why, mask_numbers(str(exc))[:200])

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except Exception:  # a bug must not kill paho's thread: the fleet would go dark
            self.garbage["crash"] += 1
            log.exception("handling a fleet message on %s failed", mask_numbers(msg.topic[:100]))

    def handle(self, topic_name: str, data: bytes) -> None:
        """One message from the broker (public so tests can feed it directly)."""
        try:
            terminal, direction, kind = parse_topic(topic_name)
        except ProtocolError as exc:
            self._ignore(topic_name, "topic", exc)
            return
        if direction != "up":
            self._ignore(topic_name, "topic", "not an up topic")
            return
        try:
            payload = decode(data)
        except ProtocolError as exc:
            self._ignore(topic_name, "payload", exc)
            return
        handler = getattr(self, f"_up_{kind}", None)
        if handler is None:
            self._ignore(topic_name, "kind", f"unknown kind {kind[:30]!r}")
            return
        try:
            handler(terminal, payload)
        except (TypeError, ValueError, LookupError, AttributeError, CallTaken) as exc:
            self._ignore(topic_name, "fields", exc)
            return
        self.processed += 1

    def _emit(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        for kind, data in events:
            if kind == "screen":
                self.hub.publish(call_scope(data["terminal"], data["call_id"]), kind, data)
            elif kind == "call":
                self.hub.publish(FLEET, kind, data)
                self.hub.publish(call_scope(data["terminal"], data["call_id"]), kind, data)
            else:
                self.hub.publish(FLEET, kind, data)

    def _up_state(self, terminal: str, payload: dict[str, Any]) -> None:
        events = self.fleet.on_state(terminal, payload)
        if payload.get("online") is not True:
            events += self.calls.terminal_lost(terminal)
        self._emit(events)

    def _up_heartbeat(self, terminal: str, payload: dict[str, Any]) -> None:
        self._emit(self.fleet.on_heartbeat(terminal, payload))

    def _up_devices(self, terminal: str, payload: dict[str, Any]) -> None:
        self._emit(self.fleet.on_devices(terminal, payload))

    def _up_alert(self, terminal: str, payload: dict[str, Any]) -> None:
        self._emit(self.fleet.on_alert(terminal, payload))

    def _up_help(self, terminal: str, payload: dict[str, Any]) -> None:
        info = self.fleet.terminal(terminal) or {}
        self._emit(self.calls.on_help(terminal, payload, location=str(info.get("location", ""))))

    def _up_screen(self, terminal: str, payload: dict[str, Any]) -> None:
        self._emit(self.calls.on_screen(terminal, payload))

    def _up_reply(self, terminal: str, payload: dict[str, Any]) -> None:
        cmd_id = payload.get("cmd_id")
        if not isinstance(cmd_id, str):
            raise ValueError("reply without cmd_id")
        with self._lock:
            entry = self._pending.get(cmd_id)
            if entry is None or entry[0] != terminal:
                return  # not ours, or late after its deadline
            del self._pending[cmd_id]
        reason = mask_numbers(str(payload.get("reason") or ""))[:300]
        reply = Reply(cmd_id, str(payload.get("action", "")), payload.get("ok") is True, reason, payload)
        if not entry[1].done():
            entry[1].set_result(reply)

    def _up_media(self, terminal: str, payload: dict[str, Any]) -> None:
        call_id = payload.get("call_id")
        if not isinstance(call_id, str):
            raise ValueError("media message without call_id")
        with self._lock:
            fut = self._media.pop((terminal, call_id), None)
        if fut is not None and not fut.done():
            fut.set_result(payload)

    # -- commands (any thread / the server's loop) -------------------------------------------------
    def publish_command(self, terminal: str, action: str, args: dict[str, Any], staff: Staff
                        ) -> tuple[str, concurrent.futures.Future[Reply]]:
        """Sign and publish; the future gets the terminal's reply. ProtocolError for arguments or a
        role that may not send it; NotConnected when the broker is away."""
        envelope = sign_command(self.keypair, terminal, action, args, staff.display_name, staff.role)
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnected("the console is not connected to the fleet broker; try again in a moment")
        fut: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        with self._lock:
            self._pending[envelope["id"]] = (terminal, fut)
        info = client.publish(command_topic(terminal), encode(envelope),
                              qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            with self._lock:
                self._pending.pop(envelope["id"], None)
            raise NotConnected(f"the command could not be published ({mqtt.error_string(info.rc)})")
        return envelope["id"], fut

    def _forget(self, cmd_id: str) -> None:
        with self._lock:
            self._pending.pop(cmd_id, None)

    async def command(self, terminal: str, action: str, args: dict[str, Any], staff: Staff, *,
                      timeout_s: float) -> Reply:
        """Send and wait for the terminal's reply; Refused when it said no, NoAnswer after timeout_s."""
        cmd_id, fut = self.publish_command(terminal, action, args, staff)
        try:
            reply = await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
        except TimeoutError:
            raise NoAnswer(f"no answer from the terminal {terminal} within {timeout_s:.0f} s: it may be "
                           "offline or busy") from None
        finally:
            self._forget(cmd_id)
        if not reply.ok:
            raise Refused(reply.reason or "the terminal refused the command without a reason",
                          str(reply.data.get("code") or ""))
        return reply

    async def media_offer(self, terminal: str, call_id: str, sdp: str, staff: Staff, *,
                          timeout_s: float) -> str:
        """The terminal's WebRTC answer to `sdp`; Refused with its words when it cannot."""
        mfut: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            old = self._media.pop((terminal, call_id), None)
            self._media[(terminal, call_id)] = mfut
        if old is not None:
            old.cancel()
        try:
            cmd_id, rfut = self.publish_command(terminal, "media_offer", {"call_id": call_id, "sdp": sdp}, staff)
        except BaseException:
            with self._lock:
                self._media.pop((terminal, call_id), None)
            raise
        media_task = asyncio.wrap_future(mfut)
        reply_task = asyncio.wrap_future(rfut)
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            pending: set[asyncio.Future[Any]] = {media_task, reply_task}
            while media_task in pending:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise NoAnswer(f"no media answer from the terminal {terminal} within {timeout_s:.0f} s")
                done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if reply_task in done and not reply_task.cancelled():
                    reply = reply_task.result()
                    if not reply.ok:
                        raise Refused(reply.reason or "the terminal could not start audio/video",
                                      str(reply.data.get("code") or ""))
            answer = media_task.result()
        finally:
            self._forget(cmd_id)
            with self._lock:
                if self._media.get((terminal, call_id)) is mfut:
                    del self._media[(terminal, call_id)]
            for task in (media_task, reply_task):
                if not task.done():
                    task.cancel()
        if answer.get("error") or not isinstance(answer.get("sdp"), str):
            raise Refused(mask_numbers(str(answer.get("error") or "the terminal sent no answer")[:300]))
        return str(answer["sdp"])

    def health(self) -> dict[str, Any]:
        return {"connected": self.connected.is_set() and self.beats_connected.is_set(),
                "last_error": self.last_error, "processed": self.processed,
                "heartbeats": self.fleet.heartbeats, "ignored": dict(self.garbage)}
