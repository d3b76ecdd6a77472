"""The fleet as the console knows it: every terminal's liveness, step, backlog, devices, alerts.

Plain in-memory data fed by the MQTT bridge (one message at a time, from paho's thread) and
read by the web pages (from the server's threads), so every method takes the lock. Each
change returns the events the pages should hear about; the caller publishes them.

A terminal is offline when its retained state says so (it said goodbye, or the broker sent
its last will) and also when no heartbeat came for 3 x the heartbeat interval it announced
(`sweep`): a half-open connection can keep a dead terminal "online" at the broker for a while.
Times are the console's own clock at reception, so a terminal with a wrong clock still shows
the right "since".
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from govapi.masking import mask_numbers

DEFAULT_HEARTBEAT_S = 30.0
MISSED_HEARTBEATS = 3
MAX_ALERTS = 500
PAPER_PROBLEMS = ("low", "out", "jammed")  # media states staff must send someone for
DEVICE_OK = ("online", "busy")
_TEXT = 200


def _text(value: Any, limit: int = _TEXT) -> str:
    """A short, masked string from whatever a terminal sent."""
    return mask_numbers(str(value))[:limit] if value is not None else ""


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


@dataclass
class Device:
    name: str
    cls: str = ""
    state: str = ""
    media: str = ""
    fault: str = ""

    @property
    def faulty(self) -> bool:
        return bool(self.fault) or (bool(self.state) and self.state not in DEVICE_OK)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "class": self.cls, "state": self.state, "media": self.media, "fault": self.fault,
                "faulty": self.faulty}


@dataclass
class Alert:
    terminal: str
    id: str
    kind: str
    text: str
    device: str
    active: bool
    raised_at: float
    cleared_at: float | None = None
    source: str = "terminal"  # or "console" (an offline terminal)

    def as_dict(self) -> dict[str, Any]:
        return {"terminal": self.terminal, "id": self.id, "kind": self.kind, "text": self.text,
                "device": self.device, "active": self.active, "raised_at": self.raised_at,
                "cleared_at": self.cleared_at, "source": self.source}


@dataclass
class Terminal:
    id: str
    online: bool | None = None  # None: nothing heard yet
    since: float = 0.0
    reason: str = ""
    location: str = ""
    version: str = ""
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    last_heartbeat: float | None = None
    last_seen: float = 0.0  # the last message of any kind, the base of the heartbeat deadline
    step: str = ""
    in_visit: bool = False
    outbox: dict[str, int] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)

    def paper(self) -> str:
        """The worst paper state of the terminal's printers: "", "low", "out" or "jammed"."""
        worst = ""
        for dev in self.devices.values():
            if dev.media in PAPER_PROBLEMS and PAPER_PROBLEMS.index(dev.media) >= (
                    PAPER_PROBLEMS.index(worst) if worst else -1):
                worst = dev.media
        return worst

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id, "online": self.online, "since": self.since, "reason": self.reason,
            "location": self.location, "version": self.version, "heartbeat_s": self.heartbeat_s,
            "heartbeat_age_s": None if self.last_heartbeat is None else round(now - self.last_heartbeat, 1),
            "step": self.step, "in_visit": self.in_visit, "backlog": int(self.outbox.get("pending", 0)),
            "paper": self.paper(),
            "faults": [d.as_dict() for d in self.devices.values() if d.faulty],
            "devices": [d.as_dict() for d in sorted(self.devices.values(), key=lambda d: d.name)],
        }


Event = tuple[str, dict[str, Any]]  # (kind, data): "terminal", "alert"


class FleetState:
    """Every terminal heard of since the console started, and the alerts, newest first."""

    def __init__(self, *, default_heartbeat_s: float = DEFAULT_HEARTBEAT_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.default_heartbeat_s = default_heartbeat_s
        self.clock = clock
        self._terminals: dict[str, Terminal] = {}
        self._alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        self._lock = threading.RLock()
        self.heartbeats = 0  # received, for the bench and the health page

    # -- reading ---------------------------------------------------------------------------------
    def terminals(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            return [t.summary(now) for t in sorted(self._terminals.values(), key=lambda t: t.id)]

    def terminal(self, terminal_id: str) -> dict[str, Any] | None:
        with self._lock:
            t = self._terminals.get(terminal_id)
            return None if t is None else t.summary(self.clock())

    def alerts(self, *, active_only: bool = False) -> list[dict[str, Any]]:
        """Newest first (by the time raised, or cleared when that is later)."""
        with self._lock:
            chosen = [a for a in self._alerts if a.active or not active_only]
        chosen.sort(key=lambda a: max(a.raised_at, a.cleared_at or 0.0), reverse=True)
        return [a.as_dict() for a in chosen]

    # -- feeding ---------------------------------------------------------------------------------
    def _get(self, terminal_id: str) -> Terminal:
        t = self._terminals.get(terminal_id)
        if t is None:
            t = self._terminals[terminal_id] = Terminal(terminal_id, heartbeat_s=self.default_heartbeat_s)
        return t

    def _announce_interval(self, t: Terminal, payload: dict[str, Any]) -> None:
        for key in ("heartbeat_s", "interval_s"):
            value = _number(payload.get(key))
            if value > 0:
                t.heartbeat_s = min(max(value, 0.5), 3600.0)
                return

    def _set_online(self, t: Terminal, online: bool, reason: str, now: float, events: list[Event]) -> None:
        if t.online is not online:
            t.online = online
            t.since = now
            alert_id = "console.offline"
            if online:
                self._clear(t.id, alert_id, now, events)
            else:
                self._raise(t.id, alert_id, "offline", reason, "", now, events, source="console")
        t.reason = reason

    def on_state(self, terminal_id: str, payload: dict[str, Any]) -> list[Event]:
        now = self.clock()
        events: list[Event] = []
        with self._lock:
            t = self._get(terminal_id)
            t.last_seen = now
            if "location" in payload:
                t.location = _text(payload.get("location"), 120)
            if "version" in payload:
                t.version = _text(payload.get("version"), 40)
            self._announce_interval(t, payload)
            online = payload.get("online") is True
            self._set_online(t, online, _text(payload.get("reason") or ("connected" if online else "lost"), 40),
                             now, events)
            events.append(("terminal", t.summary(now)))
        return events

    def on_heartbeat(self, terminal_id: str, payload: dict[str, Any]) -> list[Event]:
        now = self.clock()
        events: list[Event] = []
        with self._lock:
            self.heartbeats += 1
            t = self._get(terminal_id)
            t.last_seen = t.last_heartbeat = now
            self._announce_interval(t, payload)
            before = (t.step, t.in_visit, dict(t.outbox), t.online)
            if "step" in payload:
                t.step = _text(payload.get("step"), 32)
            t.in_visit = payload.get("in_visit") is True
            outbox = payload.get("outbox")
            if isinstance(outbox, dict):
                t.outbox = {str(k)[:20]: int(_number(v)) for k, v in list(outbox.items())[:10]}
            if t.online is not True:
                self._set_online(t, True, "heartbeat", now, events)
            if events or before != (t.step, t.in_visit, t.outbox, t.online):
                events.append(("terminal", t.summary(now)))
        return events

    def on_devices(self, terminal_id: str, payload: dict[str, Any]) -> list[Event]:
        """The retained device list (a dict by name or a list of objects with "name"), and the
        terminal's active alerts, which replace what the console held for it."""
        now = self.clock()
        events: list[Event] = []
        with self._lock:
            t = self._get(terminal_id)
            t.last_seen = now
            raw = payload.get("devices")
            items: list[tuple[str, Any]] = []
            if isinstance(raw, dict):
                items = list(raw.items())
            elif isinstance(raw, list):
                items = [(str(d.get("name", "")), d) for d in raw if isinstance(d, dict)]
            devices = {}
            for name, info in items[:64]:
                if not name or not isinstance(info, dict):
                    continue
                devices[_text(name, 40)] = Device(_text(name, 40), _text(info.get("class"), 30),
                                                  _text(info.get("state"), 30), _text(info.get("media"), 30),
                                                  _text(info.get("fault")))
            t.devices = devices
            alerts = payload.get("alerts")
            if isinstance(alerts, list):
                active_ids = set()
                for one in alerts[:100]:
                    if isinstance(one, dict) and one.get("id"):
                        active_ids.add(_text(one["id"], 80))
                        self._alert_from(terminal_id, {**one, "state": "raised"}, now, events)
                for a in list(self._alerts):
                    if a.terminal == terminal_id and a.active and a.source == "terminal" and a.id not in active_ids:
                        self._clear(terminal_id, a.id, now, events)
            events.append(("terminal", t.summary(now)))
        return events

    def on_alert(self, terminal_id: str, payload: dict[str, Any]) -> list[Event]:
        now = self.clock()
        events: list[Event] = []
        with self._lock:
            self._get(terminal_id).last_seen = now
            self._alert_from(terminal_id, payload, now, events)
        return events

    def _alert_from(self, terminal_id: str, p: dict[str, Any], now: float, events: list[Event]) -> None:
        alert_id = _text(p.get("id") or p.get("alert_id") or p.get("kind"), 80)
        if not alert_id:
            return
        state = str(p.get("state", "")).lower()
        active = state in ("raised", "active", "raise") or p.get("raised") is True or p.get("active") is True
        if active:
            kind = _text(p.get("kind") or alert_id, 40)
            text = _text(p.get("detail") or p.get("message") or p.get("text") or p.get("fault") or kind)
            self._raise(terminal_id, alert_id, kind, text, _text(p.get("device"), 40), now, events)
        else:
            self._clear(terminal_id, alert_id, now, events)

    def _find(self, terminal_id: str, alert_id: str) -> Alert | None:
        for a in self._alerts:
            if a.terminal == terminal_id and a.id == alert_id and a.active:
                return a
        return None

    def _raise(self, terminal_id: str, alert_id: str, kind: str, text: str, device: str, now: float,
               events: list[Event], *, source: str = "terminal") -> None:
        existing = self._find(terminal_id, alert_id)
        if existing is not None:
            if (existing.text, existing.kind, existing.device) == (text, kind, device):
                return
            existing.text, existing.kind, existing.device = text, kind, device
            events.append(("alert", existing.as_dict()))
            return
        alert = Alert(terminal_id, alert_id, kind, text, device, True, now, source=source)
        self._alerts.append(alert)
        events.append(("alert", alert.as_dict()))

    def _clear(self, terminal_id: str, alert_id: str, now: float, events: list[Event]) -> None:
        existing = self._find(terminal_id, alert_id)
        if existing is not None:
            existing.active = False
            existing.cleared_at = now
            events.append(("alert", existing.as_dict()))

    def grace(self) -> None:
        """Start every terminal's heartbeat deadline afresh (the console's own feed was away)."""
        now = self.clock()
        with self._lock:
            for t in self._terminals.values():
                t.last_seen = max(t.last_seen, now)

    def sweep(self) -> list[Event]:
        """Mark offline every terminal silent for 3 x its heartbeat interval."""
        now = self.clock()
        events: list[Event] = []
        with self._lock:
            for t in self._terminals.values():
                if t.online and now - t.last_seen > MISSED_HEARTBEATS * t.heartbeat_s:
                    self._set_online(t, False, "no_heartbeat", now, events)
                    events.append(("terminal", t.summary(now)))
        return events
