"""The fleet channel's contract: topics, messages, and signed commands.

Terminals and the help-desk console talk through an MQTT 5 broker. Every terminal has
its own broker account (user name = terminal id), and the broker's ACL lets it publish
only under ``kiosk/<id>/up/`` and read only ``kiosk/<id>/down/``. The console's account
reads every terminal's ``up`` and writes every ``down``.

Topics (``<id>`` is the terminal id)::

    kiosk/<id>/up/state       retained, QoS 1: online / offline (also the last will)
    kiosk/<id>/up/heartbeat   QoS 0, every heartbeat_s: alive, step, outbox backlog
    kiosk/<id>/up/devices     retained, QoS 1: every device's state, media and fault
    kiosk/<id>/up/alert       QoS 1: a fault raised or cleared (device, paper, outbox)
    kiosk/<id>/up/help        QoS 1: a help call waiting, accepted, ended; consent given
    kiosk/<id>/up/screen      QoS 0: the screen mirror while a call is accepted
    kiosk/<id>/up/reply       QoS 1: a command's outcome (done, refused and why)
    kiosk/<id>/up/media       QoS 1: WebRTC answers from the terminal
    kiosk/<id>/down/cmd       QoS 1: a signed command from the console

Payloads are UTF-8 JSON objects with ``"v": 1``. Nothing personal ever travels in clear
except screen mirror fields the citizen consented to show (see kiosk/screen_mirror.py).

A command is signed by the console's key (SM2 with SM3 by default, govapi.signing), names
the one terminal it is for, carries a unique id and an expiry, and names the staff member.
The broker's ACL already keeps terminals from writing commands; the signature also keeps
out anyone who gets hold of a broker account, and the id/expiry keep a captured command
from being replayed.
"""
from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from govapi.signing import KeyPair, verify

VERSION = 1
ROOT = "kiosk"
UP_KINDS = ("state", "heartbeat", "devices", "alert", "help", "screen", "reply", "media")
COMMAND_TTL_S = 60.0  # a command older than this is refused (clock skew included)
# how far a signed lifetime (expires - issued) may exceed COMMAND_TTL_S: times are rounded to the
# millisecond and may come from two reads of the clock, never a reason to refuse
LIFETIME_SLACK_S = 1.0
MAX_PAYLOAD = 256 * 1024  # a mirror with an offer fits; anything larger is refused unread

# what the console may ask a terminal to do, and the arguments each takes (name -> type)
COMMANDS: dict[str, dict[str, type]] = {
    "restart_device": {"device": str},  # close the device; the supervisor opens it again
    "reset_visit": {},  # wipe the visit, back to the attract screen
    "accept_call": {"call_id": str, "staff_name": str},  # a staff member takes the help call
    "end_call": {"call_id": str},
    "message": {"call_id": str, "text": str},  # shown and spoken on the kiosk
    "point": {"call_id": str, "x": float, "y": float},  # fractions of the screen, 0..1
    "goto_step": {"call_id": str, "step": str},  # move the visit to a step it allows
    "ask_consent": {"call_id": str},  # ask the citizen to show their personal fields
    "media_offer": {"call_id": str, "sdp": str},  # WebRTC offer; the answer comes on up/media
    "media_stop": {"call_id": str},
}
# who may send what (console roles); every action is audited on both sides
ROLE_COMMANDS: dict[str, frozenset[str]] = {
    "viewer": frozenset(),
    "agent": frozenset({"accept_call", "end_call", "message", "point", "goto_step", "ask_consent",
                        "media_offer", "media_stop"}),
    "supervisor": frozenset(COMMANDS),
}
MAX_MESSAGE_CHARS = 300


# why a terminal refused a command: `code` in up/reply, so the console can say it in the
# staff member's language (the `reason` beside it is the terminal's English sentence)
REFUSAL_CODES = ("malformed", "forged", "wrong_terminal", "stale", "replayed", "not_allowed", "invalid",
                 "no_console_key", "call_over", "step_not_allowed", "no_device", "no_restart",
                 "device_failed", "no_media", "media_failed")


class ProtocolError(ValueError):
    """A fleet message that is malformed, unsigned, forged, stale, replayed or not for us;
    `code` is one of REFUSAL_CODES."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def topic(terminal_id: str, direction: str, kind: str) -> str:
    check_terminal_id(terminal_id)
    return f"{ROOT}/{terminal_id}/{direction}/{kind}"


def up(terminal_id: str, kind: str) -> str:
    if kind not in UP_KINDS:
        raise ValueError(f"unknown up topic kind {kind!r}")
    return topic(terminal_id, "up", kind)


def command_topic(terminal_id: str) -> str:
    return topic(terminal_id, "down", "cmd")


def parse_topic(name: str) -> tuple[str, str, str]:
    """(terminal id, direction, kind) of a fleet topic; ProtocolError for anything else."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != ROOT or parts[2] not in ("up", "down"):
        raise ProtocolError(f"not a fleet topic: {name[:80]!r}")
    check_terminal_id(parts[1])
    return parts[1], parts[2], parts[3]


def check_terminal_id(terminal_id: str) -> str:
    """Ids become topic levels and broker user names: letters, digits, '-', '_' and '.' only."""
    if not (0 < len(terminal_id) <= 64) or not all(c.isascii() and (c.isalnum() or c in "-_.")
                                                    for c in terminal_id):
        raise ProtocolError(f"terminal id {terminal_id[:70]!r} may hold only letters, digits, '-', '_' "
                            "and '.' (at most 64)")
    return terminal_id


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, **payload}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> dict[str, Any]:
    """A payload as a dict; ProtocolError for oversize, non-JSON, non-object or another version."""
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(data)} bytes is larger than {MAX_PAYLOAD}")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("payload is not a JSON object")
    if obj.get("v") != VERSION:
        raise ProtocolError(f"payload version {obj.get('v')!r}, this build speaks {VERSION}")
    return obj


# -- signed commands ---------------------------------------------------------------------------
def _canonical(envelope: dict[str, Any]) -> bytes:
    body = {k: v for k, v in envelope.items() if k != "sig"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def check_args(action: str, args: Any) -> dict[str, Any]:
    """The command's arguments, exactly as COMMANDS names them; ProtocolError otherwise."""
    if action not in COMMANDS:
        raise ProtocolError(f"unknown command {action!r}")
    if not isinstance(args, dict):
        raise ProtocolError(f"{action}: arguments are not an object")
    wanted = COMMANDS[action]
    if set(args) != set(wanted):
        raise ProtocolError(f"{action}: arguments {sorted(args)} but it takes {sorted(wanted)}")
    for name, kind in wanted.items():
        value = args[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProtocolError(f"{action}: {name} must be {kind.__name__}")
        args[name] = value
    if action == "point" and not (0.0 <= args["x"] <= 1.0 and 0.0 <= args["y"] <= 1.0):
        raise ProtocolError("point: x and y are fractions of the screen, 0 to 1")
    if action == "message" and not (0 < len(args["text"].strip()) <= MAX_MESSAGE_CHARS):
        raise ProtocolError(f"message: text must have 1 to {MAX_MESSAGE_CHARS} characters")
    return args


def sign_command(keypair: KeyPair, terminal_id: str, action: str, args: dict[str, Any], staff: str,
                 role: str, *, now: float | None = None, ttl_s: float = COMMAND_TTL_S) -> dict[str, Any]:
    """The envelope the console publishes on down/cmd."""
    check_terminal_id(terminal_id)
    if not 0 < ttl_s <= COMMAND_TTL_S:  # terminals refuse an envelope valid for longer
        raise ProtocolError(f"ttl_s {ttl_s} outside 0 to {COMMAND_TTL_S:.0f} s: terminals would refuse the command")
    args = check_args(action, dict(args))
    if action not in ROLE_COMMANDS.get(role, frozenset()):
        raise ProtocolError(f"role {role!r} may not send {action!r}")
    issued = time.time() if now is None else now
    envelope: dict[str, Any] = {"v": VERSION, "id": secrets.token_hex(16), "terminal": terminal_id,
                                "action": action, "args": args, "staff": staff, "role": role,
                                "issued": round(issued, 3), "expires": round(issued + ttl_s, 3),
                                "alg": keypair.algorithm}
    envelope["sig"] = keypair.sign(_canonical(envelope))
    return envelope


@dataclass
class CommandVerifier:
    """The terminal's gate: only signed, fresh, unseen commands for this terminal pass."""

    terminal_id: str
    algorithm: str
    public_key: str  # the console's, from the terminal's config
    clock: Callable[[], float] = time.time
    _seen: dict[str, float] = field(default_factory=dict)

    def check(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """The envelope when it may be carried out; ProtocolError saying why not."""
        for key in ("id", "terminal", "action", "args", "staff", "role", "issued", "expires", "alg", "sig"):
            if key not in envelope:
                raise ProtocolError(f"command without {key!r}", "malformed")
        if not isinstance(envelope["sig"], str) or envelope["alg"] != self.algorithm:
            raise ProtocolError(f"command signed with {envelope['alg']!r}, expected {self.algorithm!r}", "forged")
        if not verify(self.algorithm, self.public_key, _canonical(envelope), envelope["sig"]):
            raise ProtocolError("command signature does not verify with the console's key: forged or altered",
                                "forged")
        if envelope["terminal"] != self.terminal_id:
            raise ProtocolError(f"command is for terminal {str(envelope['terminal'])[:64]!r}, not this one",
                                "wrong_terminal")
        now = self.clock()
        issued, expires = envelope["issued"], envelope["expires"]
        if not isinstance(issued, (int, float)) or not isinstance(expires, (int, float)):
            raise ProtocolError("command times are not numbers", "malformed")
        if not (math.isfinite(issued) and math.isfinite(expires)):
            raise ProtocolError("command times are not finite numbers (Infinity or NaN)", "malformed")
        # the signed lifetime itself is held to the TTL: an envelope valid for longer could be
        # replayed after a restart (the seen ids are forgotten) for as long as it claims
        if not 0 <= expires - issued <= COMMAND_TTL_S + LIFETIME_SLACK_S:
            raise ProtocolError(f"command valid for {expires - issued:.0f} s, outside 0 to {COMMAND_TTL_S:.0f} s: "
                                "signed with another time to live, or altered", "stale")
        if now > expires or issued > now + COMMAND_TTL_S:
            raise ProtocolError("command is stale or from the future: check both clocks (NTP)", "stale")
        cmd_id = str(envelope["id"])
        for seen, until in list(self._seen.items()):
            if until < now:
                del self._seen[seen]
        if cmd_id in self._seen:
            raise ProtocolError("command id seen before: a replay", "replayed")
        check_args(str(envelope["action"]), envelope["args"])  # an unknown action is named as such
        if envelope["action"] not in ROLE_COMMANDS.get(str(envelope["role"]), frozenset()):
            raise ProtocolError(f"role {envelope['role']!r} may not send {envelope['action']!r}", "not_allowed")
        self._seen[cmd_id] = float(expires)
        return envelope
