"""Help calls: the durable queue (in the store) and the live side of an accepted call.

The queue survives a console restart (store). What a call shows live — the kiosk's screen
mirror, the consent, the staff messages sent, the pointer — lives in memory only: the mirror
may hold personal values the citizen consented to show, and those never reach the disk.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from govapi.masking import mask_numbers
from helpdesk.store import Call, Staff, Store

MAX_TRANSCRIPT = 50
CONSENT_WORDS = ("", "asked", "granted", "refused")


@dataclass
class LiveCall:
    """An accepted (or waiting) call's screen and conversation, memory only."""

    terminal: str
    call_id: str
    consent: str = ""
    mirror: dict[str, Any] | None = None
    mirror_seq: int = -1
    mirror_at: float = 0.0
    transcript: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_TRANSCRIPT))
    media: str = ""  # "", "starting", "on", "stopped", "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"terminal": self.terminal, "call_id": self.call_id, "consent": self.consent,
                "mirror": self.mirror, "mirror_seq": self.mirror_seq, "mirror_at": self.mirror_at,
                "transcript": list(self.transcript), "media": self.media}


Event = tuple[str, dict[str, Any]]


def call_event(call: Call, live: LiveCall | None) -> Event:
    data = call.as_dict()
    data["consent"] = live.consent if live else ""
    return ("call", data)


class CallDesk:
    """Turns the terminals' up/help and up/screen messages into the queue and live calls."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._live: dict[tuple[str, str], LiveCall] = {}
        self._lock = threading.Lock()

    def live(self, terminal: str, call_id: str) -> LiveCall:
        with self._lock:
            key = (terminal, call_id)
            if key not in self._live:
                self._live[key] = LiveCall(terminal, call_id)
            return self._live[key]

    def snapshot(self, terminal: str, call_id: str) -> dict[str, Any]:
        live = self.live(terminal, call_id)
        with self._lock:
            return live.as_dict()

    def _forget(self, terminal: str, call_id: str) -> None:
        with self._lock:
            self._live.pop((terminal, call_id), None)

    def on_help(self, terminal: str, payload: dict[str, Any], location: str = "") -> list[Event]:
        """A terminal's word on a call: waiting, connected, consent changed, ended."""
        call_id = payload.get("call_id")
        if not isinstance(call_id, str) or not (0 < len(call_id) <= 64) or not call_id.isprintable():
            return []
        now = self.clock()
        state = str(payload.get("state", ""))
        events: list[Event] = []
        if state == "waiting":
            for old in self.store.end_calls_of(terminal, "replaced", now, keep=call_id):
                self._forget(terminal, old.call_id)
                events.append(call_event(self.store.call(terminal, old.call_id), None))
            call = self.store.call_waiting(terminal, call_id, step=str(payload.get("step", "")),
                                           language=str(payload.get("language", "")),
                                           location=mask_numbers(str(payload.get("location") or location)),
                                           now=now)
        else:
            try:
                call = self.store.call(terminal, call_id)
            except LookupError:
                if state == "ended":
                    return []
                # a call the console never saw waiting (it was down): queue it now
                call = self.store.call_waiting(terminal, call_id, step=str(payload.get("step", "")),
                                               language=str(payload.get("language", "")),
                                               location=mask_numbers(str(payload.get("location") or location)),
                                               now=now)
        if call.state == "ended" and state in ("waiting", "connected"):
            if call.end_reason != "terminal_offline":
                return []  # a stale word about a call staff or the citizen ended
            call = self.store.reopen_call(terminal, call_id, "accepted" if state == "connected" and call.staff
                                          else "waiting")
        live = self.live(terminal, call_id)
        consent = payload.get("consent")
        if isinstance(consent, str) and consent in CONSENT_WORDS:
            with self._lock:
                live.consent = consent
        if state == "ended":
            call = self.store.end_call(terminal, call_id, str(payload.get("reason") or "ended"), now) or call
            self._forget(terminal, call_id)
            return [*events, call_event(call, None)]
        if state == "connected" and call.state == "waiting":
            # accepted elsewhere (another console, or before the console restarted): follow the terminal
            staff = mask_numbers(str(payload.get("staff", "")))[:64]
            call = self.store.claim_call(terminal, call_id, Staff(staff or "?", staff or "?", "agent"), now)
        if isinstance(payload.get("step"), str) and payload["step"] != call.step:
            self.store.update_call_step(terminal, call_id, payload["step"])
            call = self.store.call(terminal, call_id)
        return [*events, call_event(call, live)]

    def on_screen(self, terminal: str, payload: dict[str, Any]) -> list[Event]:
        """The mirror of an open call; older sequence numbers than the last are dropped."""
        call_id = payload.get("call_id")
        mirror = payload.get("mirror")
        if not isinstance(call_id, str) or not isinstance(mirror, dict):
            return []
        try:
            call = self.store.call(terminal, call_id)
        except LookupError:
            return []
        if call.state == "ended":
            return []
        seq = payload.get("seq")
        seq = int(seq) if isinstance(seq, int) and not isinstance(seq, bool) else None
        live = self.live(terminal, call_id)
        with self._lock:
            if seq is not None and seq <= live.mirror_seq and seq > live.mirror_seq - 1000:
                return []  # late or repeated (QoS 0 may reorder after a reconnect)
            live.mirror = mirror
            live.mirror_seq = seq if seq is not None else live.mirror_seq + 1
            live.mirror_at = self.clock()
            consent = payload.get("consent")
            if isinstance(consent, str) and consent in CONSENT_WORDS:
                live.consent = consent
            data = {"terminal": terminal, "call_id": call_id, "seq": live.mirror_seq, "consent": live.consent,
                    "mirror": mirror}
        return [("screen", data)]

    def note(self, terminal: str, call_id: str, kind: str, text: str, staff: str) -> dict[str, Any]:
        """A line of the call's transcript (memory only): a message sent, a point, a step."""
        entry = {"at": self.clock(), "kind": kind, "text": text, "staff": staff}
        live = self.live(terminal, call_id)
        with self._lock:
            live.transcript.append(entry)
        return entry

    def set_media(self, terminal: str, call_id: str, state: str) -> None:
        live = self.live(terminal, call_id)
        with self._lock:
            live.media = state

    def terminal_lost(self, terminal: str) -> list[Event]:
        """The terminal went offline by its last will: its calls cannot go on."""
        now = self.clock()
        events: list[Event] = []
        for call in self.store.end_calls_of(terminal, "terminal_offline", now):
            self._forget(terminal, call.call_id)
            events.append(call_event(self.store.call(terminal, call.call_id), None))
        return events
