"""Fuzzing the fleet channel's parsers (fleet/protocol.py) on both sides: topics, payloads,
signed commands and their arguments; the terminal's command handler (kiosk/fleet_agent.py)
fed any bytes on its command topic; and the help-desk console's bridge (helpdesk/bridge.py)
fed any message on any terminal's topics.

A terminal's command topic is written only by the console (the broker's ACL), but anyone
holding a broker account, or a console with a bug, can put anything there: unsigned bytes
must be refused, and so must signed envelopes whose fields are wrong. The console reads
what every terminal sends, and one broken or hostile terminal must not take the help desk
down. Signing uses ECDSA P-256 here (SM2 in pure Python costs ~11 ms a signature); the
verification path is the same code for both algorithms, and SM2 signatures get their own
property.
"""
from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fuzzing import fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st
from terminal_config import write_config

from config.loader import load_config
from fleet import protocol
from fleet.protocol import COMMANDS, ROLE_COMMANDS, UP_KINDS, CommandVerifier, ProtocolError
from govapi.signing import ECDSA_P256_SHA256, SM2_SM3, KeyPair, verify
from kiosk.catalogue import Catalogue
from kiosk.fleet_agent import FleetAgent
from kiosk.visit import Visit

TERMINAL = "ZJ-FUZZ-0001"
NOW = 1_780_000_000.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)


@functools.cache
def console_key() -> KeyPair:
    return KeyPair.generate(ECDSA_P256_SHA256)


@functools.cache
def sm2_key() -> KeyPair:
    return KeyPair.generate(SM2_SM3)


# -- payloads and topics --------------------------------------------------------------------------------------
@fuzz(200)
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 json_values.map(lambda v: json.dumps({"v": 1, "x": v}).encode()),
                 st.integers(2, 60).map(lambda n: b'{"v":1,"a":' + b"[" * n * 100 + b"]" * n * 100 + b"}")))
def test_any_payload_decodes_to_an_object_or_is_a_protocol_error(data: bytes) -> None:
    try:
        payload = protocol.decode(data)
    except ProtocolError as exc:
        assert exc.code in protocol.REFUSAL_CODES
        return
    assert isinstance(payload, dict) and payload["v"] == protocol.VERSION


@fuzz(100)
@given(st.dictionaries(st.text(max_size=12).filter(lambda k: k != "v"), json_values, max_size=6))
def test_payloads_round_trip(payload: dict[str, Any]) -> None:
    decoded = protocol.decode(protocol.encode(payload))
    assert decoded.pop("v") == protocol.VERSION
    assert json.dumps(decoded, sort_keys=True) == json.dumps(payload, sort_keys=True)  # NaN != NaN, text is


_ID_CHARS = st.sampled_from(list("ABCZabz019-_.") + ["/", "+", "#", " ", "张", "\x00"])


@fuzz(200)
@given(st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.just("kiosk"), st.text(_ID_CHARS, max_size=70), st.sampled_from(["up", "down"]),
                       st.sampled_from(UP_KINDS + ("cmd", "", "#", "+"))), max_size=6).map("/".join),
))
def test_any_topic_parses_to_a_terminal_or_is_a_protocol_error(name: str) -> None:
    try:
        terminal, direction, kind = protocol.parse_topic(name)
    except ProtocolError:
        return
    assert protocol.topic(terminal, direction, kind) == name


@fuzz(100)
@given(st.text(st.sampled_from("ABCZabz019-_."), min_size=1, max_size=64), st.sampled_from(UP_KINDS))
def test_topics_round_trip(terminal: str, kind: str) -> None:
    assert protocol.parse_topic(protocol.up(terminal, kind)) == (terminal, "up", kind)
    assert protocol.parse_topic(protocol.command_topic(terminal)) == (terminal, "down", "cmd")


# -- commands ---------------------------------------------------------------------------------------------------
_ARG = {str: st.text(max_size=40), float: st.floats(0, 1)}


@st.composite
def valid_commands(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    action = draw(st.sampled_from(sorted(COMMANDS)))
    args = {name: draw(_ARG[kind]) for name, kind in COMMANDS[action].items()}
    if action == "message":
        args["text"] = draw(st.text(min_size=1, max_size=300).filter(lambda t: t.strip()))
    role = draw(st.sampled_from(sorted(r for r, allowed in ROLE_COMMANDS.items() if action in allowed)))
    return action, args, role


def _verifier(now: float = NOW) -> CommandVerifier:
    key = console_key()
    return CommandVerifier(TERMINAL, key.algorithm, key.public_key, clock=lambda: now)


@fuzz(100)
@given(valid_commands(), st.floats(-50, 50))
def test_signed_commands_pass_once_and_their_replay_is_refused(command: tuple[str, dict[str, Any], str],
                                                                skew: float) -> None:
    action, args, role = command
    envelope = protocol.sign_command(console_key(), TERMINAL, action, args, "staff", role, now=NOW)
    wire = protocol.encode({k: v for k, v in envelope.items() if k != "v"})
    verifier = _verifier(NOW + skew)
    passed = verifier.check(protocol.decode(wire))
    assert passed["action"] == action and passed["args"] == args
    try:
        verifier.check(protocol.decode(wire))
    except ProtocolError as exc:
        assert exc.code == "replayed"
    else:
        raise AssertionError("a replayed command passed")


# who may send what, written out from the console's role description (not read from fleet.protocol)
_CALL_ACTIONS = {"accept_call", "end_call", "message", "point", "goto_step", "ask_consent", "media_offer", "media_stop"}
_MAY_SEND = {"viewer": set(), "agent": _CALL_ACTIONS, "supervisor": _CALL_ACTIONS | {"restart_device", "reset_visit"}}
_ENVELOPE_KEYS = ("id", "terminal", "action", "args", "staff", "role", "issued", "expires", "alg", "sig")


@st.composite
def envelopes(draw: st.DrawFn, signed: bool) -> dict[str, Any]:
    """A command envelope with some fields replaced by anything; signed by the console key after
    the damage (a console with a bug), or not (a forger)."""
    action, args, role = draw(valid_commands())
    envelope = protocol.sign_command(console_key(), TERMINAL, action, args, "staff", role, now=NOW)
    for key in draw(st.sets(st.sampled_from(_ENVELOPE_KEYS + ("extra",)), max_size=3)):
        choice = draw(st.sampled_from(["replace", "drop", "args"]))
        if choice == "drop":
            envelope.pop(key, None)
        elif choice == "args" and isinstance(envelope.get("args"), dict):
            envelope["args"][draw(st.text(max_size=8) | st.sampled_from(["x", "y", "text", "call_id"]))] = \
                draw(json_values)
        else:
            envelope[key] = draw(json_values | st.sampled_from([math.inf, -math.inf, math.nan, True, "", TERMINAL,
                                                                 "ecdsa-p256-sha256", "sm2-sm3", "viewer", "agent",
                                                                 "supervisor", "admin", *COMMANDS]))
    if signed and "sig" in envelope and "alg" in envelope:
        envelope["sig"] = console_key().sign(protocol._canonical(envelope))
    return envelope


@fuzz(200)
@given(st.booleans().flatmap(envelopes), st.floats(-100, 100))
def test_a_damaged_command_is_carried_out_only_when_whole_or_refused_with_a_code(envelope: dict[str, Any],
                                                                                skew: float) -> None:
    wire = json.dumps(envelope, ensure_ascii=False).encode()  # as the broker delivers it
    try:
        decoded = protocol.decode(wire)
        passed = _verifier(NOW + skew).check(decoded)
    except ProtocolError as exc:
        assert exc.code in protocol.REFUSAL_CODES
        event(f"refused: {exc.code}")
        return
    event("carried out")
    assert passed["terminal"] == TERMINAL and passed["action"] in COMMANDS
    assert passed["action"] in _MAY_SEND[passed["role"]], (passed["role"], passed["action"])
    assert protocol.check_args(passed["action"], dict(passed["args"])) == passed["args"]
    assert isinstance(passed["expires"], (int, float)) and not NOW + skew > passed["expires"]


@example(NOW - 3600, NOW + 3600)
@example(NOW, math.inf)
@example(NOW, math.nan)
@example(-math.inf, NOW)
@example(NOW - 30, NOW + 30)  # fresh: carried out
@fuzz(50)
@given(st.floats(NOW - 10 * 3600, NOW) | st.sampled_from([-math.inf, math.nan]),
       st.floats(NOW, NOW + 10 * 3600) | st.sampled_from([math.inf, math.nan]))
def test_a_signed_command_is_refused_once_older_than_its_time_to_live(issued: float, expires: float) -> None:
    """Even correctly signed, an envelope that lives longer than COMMAND_TTL_S (or forever: Infinity,
    NaN) is refused: after a restart the seen ids are forgotten and it could be replayed."""
    envelope = protocol.sign_command(console_key(), TERMINAL, "reset_visit", {}, "staff", "supervisor", now=NOW)
    envelope.update(issued=issued, expires=expires)
    envelope["sig"] = console_key().sign(protocol._canonical(envelope))
    limit = protocol.COMMAND_TTL_S + protocol.LIFETIME_SLACK_S
    fresh = NOW - issued <= limit and expires - issued <= limit  # False for NaN and Infinity
    try:
        _verifier().check(protocol.decode(json.dumps(envelope).encode()))
    except ProtocolError as exc:
        assert not fresh, f"a fresh command was refused: {exc}"
        assert exc.code == ("stale" if math.isfinite(issued) and math.isfinite(expires) else "malformed"), exc
        return
    assert fresh, f"a command issued {NOW - issued:.0f} s ago, valid until {expires}, was carried out"


def test_the_console_cannot_sign_a_command_that_lives_longer_than_terminals_accept() -> None:
    with pytest.raises(ProtocolError, match="ttl_s"):
        protocol.sign_command(console_key(), TERMINAL, "reset_visit", {}, "staff", "supervisor",
                              ttl_s=protocol.COMMAND_TTL_S + 5)


@fuzz(30)
@given(st.one_of(
    st.text(max_size=140),
    st.text(st.sampled_from("0123456789abcdefABCDEF"), min_size=128, max_size=128),
    st.text(st.sampled_from("0123456789abcdef_ \u0663\uff10x"), min_size=128, max_size=128),
), st.binary(max_size=40))
def test_an_sm2_signature_of_any_text_is_valid_or_not_never_an_error(signature: str, message: bytes) -> None:
    key = sm2_key()
    assert verify(SM2_SM3, key.public_key, message, signature) in (True, False)
    assert verify(SM2_SM3, key.public_key, message, key.sign(message)) is True


# -- the terminal's command handler -----------------------------------------------------------------------------
class FakeMqtt:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, data: bytes, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, data))


class Terminal:
    """A FleetAgent (not started: no broker) with a fake MQTT client, shared by the examples."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-fleet-")
        root = Path(self._tmp.name)
        cfg = load_config(write_config(root, {}), environ={})
        cfg.terminal.id = TERMINAL
        cfg.fleet.console_algorithm = ECDSA_P256_SHA256  # type: ignore[assignment]
        cfg.fleet.console_public_key = console_key().public_key
        self.visit = Visit(Catalogue([]))
        self.agent = FleetAgent(cfg, self.visit, {}, data_dir=root, clock=lambda: NOW)
        self.agent.client = FakeMqtt()


@functools.cache
def terminal() -> Terminal:
    return Terminal()


@fuzz(150)
@given(st.one_of(st.binary(max_size=120), st.booleans().flatmap(envelopes).map(
    lambda e: json.dumps(e, ensure_ascii=False).encode())))
def test_the_terminal_answers_every_command_it_is_sent_and_stays_up(data: bytes) -> None:
    """Whatever arrives on down/cmd: the handler returns, and the console gets exactly one reply."""
    t = terminal()
    client = t.agent.client
    client.published.clear()
    t.agent._command(data)
    replies = [json.loads(d) for topic, d in client.published if topic == protocol.up(TERMINAL, "reply")]
    assert len(replies) == 1, [topic for topic, _ in client.published]
    event("ok" if replies[0]["ok"] else f"refused: {replies[0]['code'] or 'not ok'}")


# -- the console's bridge ----------------------------------------------------------------------------------------
class Console:
    def __init__(self) -> None:
        from helpdesk.bridge import FleetBridge
        from helpdesk.calls import CallDesk
        from helpdesk.events import EventHub
        from helpdesk.fleet_state import FleetState
        from helpdesk.store import Store

        self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-console-")
        self.bridge = FleetBridge(None, console_key(), FleetState(), CallDesk(Store(Path(self._tmp.name) / "hd.db")),
                                  EventHub())  # type: ignore[arg-type]  # the account is for start() only


@functools.cache
def console() -> Console:
    return Console()


@st.composite
def up_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    terminal_id = draw(st.sampled_from([TERMINAL, "ZJ-FUZZ-0002"]) | st.text(_ID_CHARS, max_size=12))
    kind = draw(st.sampled_from(UP_KINDS + ("cmd", "other")))
    topic_name = f"kiosk/{terminal_id}/{draw(st.sampled_from(['up', 'up', 'down']))}/{kind}"
    fields = {
        "state": {"online": st.booleans() | json_values, "reason": st.text(max_size=10),
                  "location": st.text(max_size=10)},
        "heartbeat": {"seq": st.integers() | json_values, "step": st.text(max_size=10), "outbox": json_values},
        "devices": {"devices": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values},
        "alert": {"id": st.text(max_size=8), "state": st.sampled_from(["raised", "cleared"]) | json_values,
                  "severity": json_values, "message": json_values},
        "help": {"call_id": st.text(max_size=8) | json_values, "state": st.sampled_from(
            ["waiting", "accepted", "connected", "ended", "consent"]) | json_values, "step": json_values},
        "screen": {"call_id": st.text(max_size=8) | json_values, "seq": json_values, "mirror": json_values,
                   "consent": json_values},
        "reply": {"cmd_id": st.text(max_size=8) | json_values, "ok": json_values, "reason": json_values},
        "media": {"call_id": st.text(max_size=8) | json_values, "sdp": json_values},
    }.get(kind, {})
    payload = {"v": 1, **{k: draw(v) for k, v in fields.items() if draw(st.booleans())}}
    data = draw(st.sampled_from(["payload"] * 6 + ["bytes", "json"]))
    if data == "bytes":
        return topic_name, draw(st.binary(max_size=60))
    if data == "json":
        return topic_name, json.dumps(draw(json_values)).encode()
    return topic_name, json.dumps(payload, ensure_ascii=False).encode()


@fuzz(120)
@given(st.lists(up_messages(), min_size=1, max_size=6))
def test_the_console_takes_any_terminal_message_without_failing(messages: list[tuple[str, bytes]]) -> None:
    """A run of messages from terminals: each is processed or counted as garbage, never a crash
    (a crash in paho's thread would leave the whole help desk without a fleet)."""
    bridge = console().bridge
    for topic_name, data in messages:
        before = (bridge.processed, sum(bridge.garbage.values()))
        bridge.handle(topic_name, data)
        after = (bridge.processed, sum(bridge.garbage.values()))
        assert after != before and bridge.garbage["crash"] == 0
