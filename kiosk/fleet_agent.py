"""The terminal's side of the fleet channel: tells the help desk how the terminal is, carries
help calls, and carries out the desk's signed commands.

Started by `Terminal` when `[fleet] enabled`. One paho client (fleet.client.make_client, MQTT 5
over TLS, client id and account = the terminal id) reconnects by itself and keeps QoS-1
messages queued while the broker is away; the broker publishes our last will
(`up/state` {"online": false, "reason": "lost"}) when we vanish. Everything else runs on one
worker thread ("fleet-agent"): paho's network thread and the visit's listeners only hand work
over, so a slow restart or a WebRTC answer never stalls the keep-alive or the visit.

What goes up (topics in fleet/protocol.py; every payload also has "v": 1)::

    up/state      {"online", "reason": "connected"|"stopped"|"lost", "location", "version",
                   "since", "time", "heartbeat_s", "keepalive_s"}                     retained
    up/devices    {"time", "devices": {name: {"class", "state", "media", "fault"}},
                   "alerts": [alert, ...]}   (the alerts active now)                   retained
    up/heartbeat  {"seq", "time", "uptime_s", "step", "in_visit", "heartbeat_s",
                   "outbox": {"pending", "delivered", "rejected"} | null,
                   "devices": {"ok", "total"}}
    up/alert      {"id", "state": "raised"|"cleared", "kind", "severity": "warning"|"error",
                   "device", "detail", "since", "time"}
                   kinds: device_offline, hardware_error, no_device, paper_low, paper_out,
                   paper_jammed, outbox_backlog, outbox_unavailable, disk_low, platform_unreachable,
                   command_refused; ids are stable per fault ("receipt_printer.paper_out",
                   "outbox.backlog", "platform.unreachable", "command.refused")
    up/help       {"call_id", "state": "waiting"|"connected"|"ended", "step", "language",
                   "since", "location", "staff", "consent", "reason"}
                   reason (ended): "citizen_ended", "staff_ended", "visit_ended"
    up/screen     {"call_id", "seq", "consent", "mirror"}     (kiosk/screen_mirror.py)
    up/reply      {"cmd_id", "action", "ok", "reason", "code", "detail"}
                   code: why it was refused, one of fleet.protocol.REFUSAL_CODES ("" when done)
    up/media      {"call_id", "type": "answer", "sdp"} | {"call_id", "error"}

Nothing personal goes up except mirror values the citizen consented to show; nothing personal
is logged (staff messages are neither logged nor audited, only counted).
"""
from __future__ import annotations

import logging
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.schema import KioskConfig
from config.texts import Texts
from fleet import protocol
from fleet.protocol import CommandVerifier, ProtocolError
from kiosk.audit import AuditLog
from kiosk.privacy import mask_text
from kiosk.screen_mirror import mirror
from kiosk.visit import HelpNotAllowed, Step, View, Visit

log = logging.getLogger(__name__)

MIRROR_MIN_GAP_S = 0.2  # at most ~5 mirrors a second while the screen changes
REFUSED_ALERT_S = 600.0  # "someone tried a refused command" clears after this long without another
MAX_QUEUED = 1000  # QoS-1 messages kept while the broker is away
_MEDIA_KINDS = {"low": ("paper_low", "warning"), "out": ("paper_out", "error"), "jammed": ("paper_jammed", "error")}
_DEVICE_KINDS = {"offline": "device_offline", "hardware_error": "hardware_error", "no_device": "no_device"}


class FleetUnavailable(RuntimeError):
    """The fleet channel cannot be started (paho missing, account unusable); `str()` says why."""


@dataclass
class _Call:
    call_id: str
    visit_id: str
    since: float
    state: str = "pending"  # pending (help_waiting not answered yet), waiting, connected
    staff: str = ""
    consent: str = ""
    ended: bool = False  # "ended" told to the desk (worker only)


@dataclass
class _Alert:
    id: str
    kind: str
    severity: str
    device: str
    detail: str
    since: float = field(default_factory=time.time)

    def payload(self, state: str, now: float) -> dict[str, Any]:
        return {"id": self.id, "state": state, "kind": self.kind, "severity": self.severity, "device": self.device,
                "detail": self.detail, "since": round(self.since, 3), "time": round(now, 3)}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kiosk-terminal")
    except PackageNotFoundError:  # not installed as a package (a plain checkout)
        return "unknown"


def _resolve(data_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else data_dir / path


class FleetAgent:
    """One terminal's presence on the fleet channel (see the module notes for the messages)."""

    def __init__(self, cfg: KioskConfig, visit: Visit, devices: Mapping[str, Any], *, data_dir: Path,
                 texts: Texts | None = None, outbox_counts: Callable[[], dict[str, int]] | None = None,
                 platform_check: Callable[[], None] | None = None,
                 restart: Callable[[str], tuple[str, str]] | None = None,
                 layout: Callable[[], dict[str, Any] | None] | None = None,
                 media_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.fleet = cfg.fleet
        self.terminal_id = protocol.check_terminal_id(cfg.terminal.id)
        self.visit = visit
        self.devices = devices  # the terminal's own dict, filled when it starts
        self.data_dir = Path(data_dir)
        self.texts = texts or Texts.load()
        self.outbox_counts = outbox_counts
        self.platform_check = platform_check  # raises when the platform does not answer
        self.restart = restart
        self.layout = layout or (lambda: None)
        self.clock = clock
        self.audit = AuditLog(_resolve(self.data_dir, self.fleet.audit_file), self.terminal_id)
        self.verifier = CommandVerifier(self.terminal_id, self.fleet.console_algorithm, self.fleet.console_public_key,
                                        clock=clock)
        self._media_factory = media_factory
        self._media: Any = None
        self._media_lock = threading.Lock()
        self.client: Any = None
        self.started_at = clock()
        self._started_mono = time.monotonic()
        self._connected = threading.Event()
        self._work: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []  # restarts and media answers (tests join them)
        # worker-thread state
        self._call: _Call | None = None
        self._call_lock = threading.Lock()
        self._alerts: dict[str, _Alert] = {}
        self._refused_at = 0.0
        self._outbox_error = ""  # why the outbox counts could not be read ("" when they could)
        self._platform_down = ""  # why the platform has not answered for long enough ("" when it has)
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._devices_sent: dict[str, Any] | None = None
        self._heartbeat_seq = 0
        self._next_heartbeat = 0.0
        self._screen_seq = 0
        self._mirror_dirty = False
        self._last_mirror = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Connect in the background (a broker that is down now is tried again and again).
        Raises FleetUnavailable, or fleet.client.FleetAccountError for an unusable password or
        CA file: the terminal then runs alone and help calls go to the platform."""
        try:
            from fleet.client import FleetAccount, make_client, read_password_file
        except ImportError as exc:  # paho-mqtt missing
            raise FleetUnavailable(f"the fleet channel needs paho-mqtt ({exc}): bash scripts/setup.sh installs it") from None
        password = read_password_file(_resolve(self.data_dir, self.fleet.password_file))
        account = FleetAccount(self.fleet.broker_host, self.fleet.broker_port,
                               str(_resolve(self.data_dir, self.fleet.ca_file)),
                               self.fleet.username or self.terminal_id, password, self.fleet.tls_server_name)
        will = (protocol.up(self.terminal_id, "state"), protocol.encode({"online": False, "reason": "lost"}))
        client = make_client(account, self.terminal_id, will=will)
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        for device in list(self.devices.values()):
            if hasattr(device, "subscribe"):
                self._unsubscribe.append(device.subscribe(self._on_device_event))
        self.visit.subscribe(self.on_view)
        self._worker = threading.Thread(target=self._run, name="fleet-agent", daemon=True)
        self._worker.start()
        if self.platform_check is not None:
            self._watcher = threading.Thread(target=self._watch_platform, name="fleet-platform-watch", daemon=True)
            self._watcher.start()
        client.connect_async(self.fleet.broker_host, self.fleet.broker_port, keepalive=self.fleet.keepalive_s)
        client.loop_start()
        log.info("fleet: connecting to %s:%d as %s", self.fleet.broker_host, self.fleet.broker_port, account.username)

    def stop(self) -> None:
        """Say "stopped" (retained, so the desk does not wait for the last will), then leave."""
        self.visit.unsubscribe(self.on_view)
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe = []
        self._stopping.set()
        if self._worker is not None:
            self._work.put(("stop", None))
            self._worker.join(10)
            self._worker = None
        if self._watcher is not None:  # at most one quick health call to wait for
            self._watcher.join(10)
            self._watcher = None
        with self._media_lock:
            media, self._media = self._media, None
        if media is not None:
            try:
                media.close()
            except Exception:
                log.exception("closing the help-call media")
        client, self.client = self.client, None
        if client is None:
            return
        if self.connected:
            info = client.publish(protocol.up(self.terminal_id, "state"),
                                  protocol.encode(self._state_payload(False, "stopped")), qos=1, retain=True)
            try:
                info.wait_for_publish(3)
            except (RuntimeError, ValueError):
                pass  # the connection went meanwhile: the broker sends the last will instead
            self._connected.clear()  # a disconnect on purpose, not a loss
            client.disconnect()
        client.loop_stop()
        self._connected.clear()
        log.info("fleet: stopped")

    def join(self, timeout: float = 20.0) -> None:
        """Wait for the restarts and media answers started so far (tests)."""
        for thread in list(self._threads):
            thread.join(timeout)

    # -- paho callbacks (network thread): hand over, never block --------------------------------
    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("fleet: the broker refused the connection: %s (check the account and its password file)",
                        reason_code)
            return
        client.subscribe(protocol.command_topic(self.terminal_id), qos=1)
        self._connected.set()
        self._work.put(("connected", None))

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any = None) -> None:
        if self._connected.is_set():
            log.warning("fleet: connection to the broker lost (%s); reconnecting by itself", reason_code)
        self._connected.clear()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic == protocol.command_topic(self.terminal_id):
            self._work.put(("command", bytes(message.payload)))

    # -- hand-overs from the terminal (any thread) -------------------------------------------------
    def on_view(self, view: View) -> None:
        """The visit's listener (called under its lock): queued for the worker."""
        self._work.put(("view", view))

    def screen_redrawn(self) -> None:
        """The app placed its buttons anew (they settle a moment after the view): during a call
        the mirror goes out again soon, so staff never point at where a button was."""
        self._work.put(("layout", None))

    def _on_device_event(self, event: Any) -> None:
        if event.kind == "status_changed":
            self._work.put(("devices", None))

    def offer_help(self, visit_id: str) -> bool:
        """The citizen asked for help: queue the call at the help desk when the broker is there.
        False: not connected (the caller takes the platform's ticket path)."""
        if not self.connected:
            return False
        call = _Call(secrets.token_hex(8), visit_id, self.clock())
        with self._call_lock:
            earlier, self._call = self._call, call
        if earlier is not None:  # ended on screen, and the worker has not caught up with it yet
            self._work.put(("ended", (earlier, "citizen_ended")))
        if not self.visit.help_waiting(visit_id, call.call_id):
            with self._call_lock:
                if self._call is call:
                    self._call = None
        return True  # False from help_waiting: the citizen left or closed the panel meanwhile

    # -- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = max(0.0, self._next_due() - time.monotonic())
            try:
                kind, item = self._work.get(timeout=timeout)
            except queue.Empty:
                kind, item = "tick", None
            if kind == "stop":
                return
            try:
                self._handle(kind, item)
            except Exception:  # the channel must outlive any one bad message
                log.exception("fleet: %s could not be handled", kind)

    def _next_due(self) -> float:
        due = self._next_heartbeat or time.monotonic() + self.fleet.heartbeat_s
        call = self._call
        if call is not None and call.state == "connected":
            gap = MIRROR_MIN_GAP_S if self._mirror_dirty else self.fleet.screen_mirror_interval_s
            due = min(due, self._last_mirror + gap)
        if self._refused_at:
            due = min(due, time.monotonic() + 60.0)
        return due

    def _handle(self, kind: str, item: Any) -> None:
        if kind == "connected":
            self._announce()
        elif kind == "view":
            self._on_view(item)
        elif kind == "devices":
            self._check_devices()
        elif kind == "layout":
            self._mirror_dirty = self._call is not None and self._call.state == "connected"
        elif kind == "command":
            self._command(item)
        elif kind == "ended":
            call, reason = item
            self._end(call, reason, self.visit.view())
        elif kind == "platform":
            self._platform_down = item
            self._check_devices()
        elif kind == "reply":
            cmd_id, action, ok, reason, detail, *code = item
            self._reply(cmd_id, action, ok, reason, detail, code=code[0] if code else "")
        now = time.monotonic()
        if now >= self._next_heartbeat and self._next_heartbeat:
            self._heartbeat()
        call = self._call
        if call is not None and call.state == "connected":
            gap = MIRROR_MIN_GAP_S if self._mirror_dirty else self.fleet.screen_mirror_interval_s
            if now - self._last_mirror >= gap:
                self._send_mirror(call)
        if self._refused_at and self.clock() - self._refused_at >= REFUSED_ALERT_S:
            self._refused_at = 0.0
            self._clear_alert("command.refused")

    def _publish(self, kind: str, payload: dict[str, Any], *, qos: int = 1, retain: bool = False) -> None:
        client = self.client
        if client is None:
            return
        data = protocol.encode(payload)
        if len(data) > protocol.MAX_PAYLOAD:
            log.warning("fleet: %s message of %d bytes is over the limit and was not sent", kind, len(data))
            return
        client.publish(protocol.up(self.terminal_id, kind), data, qos=qos, retain=retain)

    # -- presence ---------------------------------------------------------------------------------
    def _state_payload(self, online: bool, reason: str) -> dict[str, Any]:
        return {"online": online, "reason": reason, "location": self.cfg.terminal.location, "version": _version(),
                "since": round(self.started_at, 3), "time": round(self.clock(), 3),
                "heartbeat_s": self.fleet.heartbeat_s, "keepalive_s": self.fleet.keepalive_s}

    def _announce(self) -> None:
        """Just connected (or again): online, the devices, and a call still going on."""
        log.info("fleet: connected to the broker")
        self._publish("state", self._state_payload(True, "connected"), retain=True)
        self._devices_sent = None
        self._check_devices()
        self._heartbeat()
        call = self._call
        if call is not None and call.state in ("waiting", "connected"):
            self._publish_help(call, call.state)

    def _heartbeat(self) -> None:
        self._next_heartbeat = time.monotonic() + self.fleet.heartbeat_s
        self._heartbeat_seq += 1
        counts = self._outbox()
        rows = self._device_rows()
        ok = sum(1 for r in rows.values() if r["state"] in ("online", "busy") and r["media"] not in ("out", "jammed"))
        step = self.visit.step
        self._publish("heartbeat", {"seq": self._heartbeat_seq, "time": round(self.clock(), 3),
                                    "uptime_s": round(time.monotonic() - self._started_mono, 1),
                                    "step": step.value, "in_visit": step is not Step.ATTRACT,
                                    "heartbeat_s": self.fleet.heartbeat_s, "outbox": counts,
                                    "devices": {"ok": ok, "total": len(rows)}}, qos=0)
        self._check_devices(counts)

    def _outbox(self) -> dict[str, int] | None:
        if self.outbox_counts is None:
            return None
        try:
            counts = dict(self.outbox_counts())
        except Exception as exc:  # the outbox database is a fault to report, not a reason to stop
            if not self._outbox_error:
                log.warning("fleet: outbox counts unavailable: %s", exc)
            self._outbox_error = mask_text(str(exc))[:300] or type(exc).__name__
            return None
        self._outbox_error = ""
        return counts

    def _watch_platform(self) -> None:
        """Ask the platform every platform_check_s whether it answers; hand the worker the reason
        once it has been silent for platform_unreachable_alert_s, and "" once it answers again."""
        assert self.platform_check is not None
        silent_since: float | None = None
        told = ""
        while True:
            try:
                self.platform_check()
                why = ""
            except Exception as exc:  # PlatformError, or anything a broken client raises
                why = mask_text(str(exc))[:300] or type(exc).__name__
            now = time.monotonic()
            if why:
                silent_since = now if silent_since is None else silent_since
                if now - silent_since < self.fleet.platform_unreachable_alert_s:
                    why = ""
                else:
                    why = f"no answer from the platform for {now - silent_since:.0f} s: {why}"
            else:
                silent_since = None
            if bool(why) != bool(told):
                told = why
                self._work.put(("platform", why))
            if self._stopping.wait(self.fleet.platform_check_s):
                return

    # -- devices and alerts -----------------------------------------------------------------------
    def _device_rows(self) -> dict[str, dict[str, str]]:
        rows = {}
        for name, device in list(self.devices.items()):
            try:
                status = device.status()
                state, media, fault = status.device.value, status.media.value, status.fault
            except Exception as exc:  # a broken driver is a fault to show
                state, media, fault = "hardware_error", "unknown", f"status() failed: {exc}"
            rows[name] = {"class": str(getattr(device, "device_class", "device")), "state": state, "media": media,
                          "fault": mask_text(fault)[:200]}
        return rows

    def _check_devices(self, counts: dict[str, int] | None = None) -> None:
        """Publish the devices when they changed, and raise or clear the alerts they imply."""
        rows = self._device_rows()
        wanted: dict[str, _Alert] = {}
        for name, row in rows.items():
            kind = _DEVICE_KINDS.get(row["state"])
            if kind is not None:
                wanted[f"{name}.{kind}"] = _Alert(f"{name}.{kind}", kind, "error", name, row["fault"] or row["state"])
            media = _MEDIA_KINDS.get(row["media"])
            if media is not None and row["class"].endswith("printer"):
                wanted[f"{name}.{media[0]}"] = _Alert(f"{name}.{media[0]}", media[0], media[1], name,
                                                      row["fault"] or row["media"])
        if counts is None:
            counts = self._outbox() if self.outbox_counts is not None else None
        pending = (counts or {}).get("pending", 0)
        if pending >= self.fleet.outbox_backlog_alert:
            wanted["outbox.backlog"] = _Alert("outbox.backlog", "outbox_backlog", "warning", "",
                                              f"{pending} submissions waiting for the platform")
        if self._outbox_error:
            wanted["outbox.unavailable"] = _Alert("outbox.unavailable", "outbox_unavailable", "error", "",
                                                  f"submissions cannot be accepted: {self._outbox_error}")
        if self._platform_down:
            wanted["platform.unreachable"] = _Alert("platform.unreachable", "platform_unreachable", "error", "",
                                                    self._platform_down)
        free_mb = self._free_mb()
        if free_mb is not None and free_mb < self.fleet.disk_free_alert_mb:
            wanted["disk.low"] = _Alert("disk.low", "disk_low", "error", "",
                                        f"{free_mb:.0f} MB free on the terminal's data disk ({self.data_dir}): "
                                        "queued submissions and logs need room")
        changed = False
        for alert_id in [a for a in self._alerts if a not in wanted and a != "command.refused"]:
            self._clear_alert(alert_id)
            changed = True
        for alert_id, alert in wanted.items():
            if alert_id not in self._alerts:
                self._raise_alert(alert)
                changed = True
        if changed or rows != self._devices_sent:
            self._devices_sent = rows
            self._publish_devices()

    def _free_mb(self) -> float | None:
        """Free space where the outbox and the logs live; None when it cannot be read."""
        try:
            return shutil.disk_usage(self.data_dir).free / 1_000_000
        except OSError:
            return None

    def _publish_devices(self) -> None:
        now = self.clock()
        self._publish("devices", {"time": round(now, 3), "devices": self._devices_sent or {},
                                  "alerts": [a.payload("raised", now) for a in self._alerts.values()]}, retain=True)

    def _raise_alert(self, alert: _Alert) -> None:
        alert.since = self.clock()
        self._alerts[alert.id] = alert
        log.warning("fleet: alert %s raised (%s)", alert.id, alert.detail)
        self._publish("alert", alert.payload("raised", alert.since))

    def _clear_alert(self, alert_id: str) -> None:
        alert = self._alerts.pop(alert_id, None)
        if alert is not None:
            log.info("fleet: alert %s cleared", alert_id)
            self._publish("alert", alert.payload("cleared", self.clock()))
            if alert_id == "command.refused":
                self._publish_devices()

    # -- help calls ---------------------------------------------------------------------------------
    def _publish_help(self, call: _Call, state: str, *, reason: str = "", view: View | None = None) -> None:
        view = view or self.visit.view()
        payload: dict[str, Any] = {"call_id": call.call_id, "state": state, "step": view.step.value,
                                   "language": view.language, "since": round(call.since, 3),
                                   "location": self.cfg.terminal.location, "staff": call.staff,
                                   "consent": call.consent}
        if reason:
            payload["reason"] = reason
        self._publish("help", payload)

    def _on_view(self, view: View) -> None:
        with self._call_lock:
            call = self._call
        if call is None:
            return
        help_ = view.help
        if help_ is None or help_.call_id != call.call_id:
            if call.state == "pending":
                return  # help_waiting not answered yet: this view is from before it
            reason = "citizen_ended" if view.reason == "help_closed" else "visit_ended"
            self._end(call, reason, view)
            return
        if help_.state == "ended":
            reason = "citizen_ended" if view.reason == "help_ended_by_citizen" else "staff_ended"
            self._end(call, reason, view)
            return
        if help_.state == "waiting" and call.state == "pending":
            call.state = "waiting"
            self._publish_help(call, "waiting", view=view)
        elif help_.state == "connected":
            if call.state != "connected":
                call.state, call.staff, call.consent = "connected", help_.staff, help_.consent
                self._publish_help(call, "connected", view=view)
                self._last_mirror = 0.0
            elif help_.consent != call.consent:
                call.consent = help_.consent
                self._publish_help(call, "connected", view=view)
            self._mirror_dirty = True

    def _end(self, call: _Call, reason: str, view: View) -> None:
        with self._call_lock:
            if self._call is call:
                self._call = None
        if call.ended:
            return
        call.ended = True
        self._mirror_dirty = False
        if call.state != "pending":
            self._publish_help(call, "ended", reason=reason, view=view)
        self._stop_media(call.call_id)

    def _send_mirror(self, call: _Call) -> None:
        view = self.visit.view()
        self._last_mirror = time.monotonic()
        self._mirror_dirty = False
        if view.help is None or view.help.call_id != call.call_id:
            return  # ended meanwhile: the view that says so is on its way
        try:
            layout = self.layout()
        except Exception as exc:  # the app's snapshot is a nicety, never a reason to stop mirroring
            log.warning("fleet: screen layout unavailable: %s", exc)
            layout = None
        self._screen_seq += 1
        granted = view.help.consent == "granted"
        self._publish("screen", {"call_id": call.call_id, "seq": self._screen_seq, "consent": view.help.consent,
                                 "mirror": mirror(view, self.texts, consent=granted, layout=layout)}, qos=0)

    # -- commands -------------------------------------------------------------------------------------
    def _command(self, data: bytes) -> None:
        envelope: dict[str, Any] = {}
        try:
            envelope = protocol.decode(data)
            if not self.fleet.console_public_key:
                raise ProtocolError("no console key is configured ([fleet] console_public_key): "
                                    "every command is refused", "no_console_key")
            self.verifier.check(envelope)
        except ProtocolError as exc:
            self._refused(envelope, str(exc), exc.code)
            return
        action, args = str(envelope["action"]), dict(envelope["args"])
        who = f"staff:{str(envelope['staff'])[:64]}"
        cmd_id = str(envelope["id"])
        if "call_id" in args:
            call = self._call
            if call is None or call.state == "pending" or args["call_id"] != call.call_id:
                self._refused(envelope, f"call {str(args['call_id'])[:32]!r} is not the help call on this "
                              "terminal now (it ended, or it never was)", "call_over", verified=True)
                return
        handler = getattr(self, f"_do_{action}")
        try:
            outcome = handler(cmd_id, who, args)
        except HelpNotAllowed as exc:
            self._done(cmd_id, action, who, args, False, str(exc), code="step_not_allowed")
            return
        if outcome is not None:  # None: finished later, on its own thread
            ok, reason, *code = outcome
            self._done(cmd_id, action, who, args, ok, reason, code=code[0] if code else "")

    def _refused(self, envelope: dict[str, Any], reason: str, code: str, *, verified: bool = False) -> None:
        cmd_id = str(envelope.get("id", ""))[:64]
        action = str(envelope.get("action", ""))[:40]
        staff = str(envelope.get("staff", ""))[:64]
        log.warning("fleet: command %s refused: %s", action or "?", reason)
        self._reply(cmd_id, action, False, reason, code=code)
        who = f"staff:{staff}" if verified else "unverified"
        facts: dict[str, Any] = {} if verified else {"claimed_staff": staff}
        args = envelope.get("args")
        if isinstance(args, dict) and isinstance(args.get("call_id"), str):
            facts["call_id"] = args["call_id"][:32]
        self._audit(who, action or "unknown", "refused", cmd_id=cmd_id, reason=reason, **facts)
        self._refused_at = self.clock()
        self._alerts.pop("command.refused", None)
        self._raise_alert(_Alert("command.refused", "command_refused", "warning" if verified else "error", "",
                                 f"{action or 'a command'} refused: {reason}"[:300]))
        self._publish_devices()

    def _done(self, cmd_id: str, action: str, who: str, args: dict[str, Any], ok: bool, reason: str = "",
              detail: str = "", *, code: str = "") -> None:
        facts = {k: v for k, v in args.items() if k in ("call_id", "device", "step", "x", "y", "staff_name")}
        if action == "message":
            facts["chars"] = len(args.get("text", ""))
        self._audit(who, action, "done" if ok else "failed", cmd_id=cmd_id,
                    **facts, **({"reason": reason} if reason else {}), **({"detail": detail} if detail else {}))
        self._reply(cmd_id, action, ok, reason, detail, code=code if not ok else "")

    def _reply(self, cmd_id: str, action: str, ok: bool, reason: str = "", detail: str = "", *,
               code: str = "") -> None:
        self._publish("reply", {"cmd_id": cmd_id, "action": action, "ok": ok, "reason": reason, "code": code,
                                "detail": detail})

    def _audit(self, who: str, action: str, outcome: str, **facts: Any) -> None:
        try:
            self.audit.record(who, action, outcome, **facts)
        except OSError:
            pass  # logged loudly by the audit log; the reply still tells the console

    def _spawn(self, name: str, work: Callable[[], None]) -> None:
        thread = threading.Thread(target=work, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # one method per command in fleet.protocol.COMMANDS: (ok, reason[, refusal code]) now, or None
    # when a thread of its own answers later (through the worker's queue)
    def _do_restart_device(self, cmd_id: str, who: str, args: dict[str, Any]) -> tuple[Any, ...] | None:
        name = args["device"]
        if name not in self.devices:
            return (False, f"this terminal has no device named {name[:40]!r} (it has "
                    f"{', '.join(self.devices) or 'none'})", "no_device")
        if self.restart is None:
            return False, "device restarts are not available on this terminal", "no_restart"
        restart = self.restart

        def work() -> None:
            try:
                outcome, fault = restart(name)
            except Exception as exc:  # a driver fault, in words for the console
                outcome, fault = "failed", str(exc)
            ok = outcome == "online"
            facts = {"device": name}
            self._audit(who, "restart_device", outcome if not ok else "done", cmd_id=cmd_id,
                        **facts, **({"fault": fault} if fault else {}))
            self._work.put(("reply", (cmd_id, "restart_device", ok, "" if ok else mask_text(fault or outcome),
                                      outcome, "" if ok else "device_failed")))
            self._work.put(("devices", None))

        self._spawn("fleet-restart", work)
        return None

    def _do_reset_visit(self, _cmd_id: str, _who: str, _args: dict[str, Any]) -> tuple[Any, ...]:
        if self.visit.step is Step.ATTRACT:
            return True, "no visit was going on"
        self.visit.wipe("help_desk")
        return True, ""

    def _do_accept_call(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        call = self._call
        if call is None or call.state != "waiting":
            return False, "the call is not waiting any more", "call_over"
        if not self.visit.help_connected(args["call_id"], args["staff_name"][:40]):
            return False, "the citizen's help call has ended", "call_over"
        return True, ""

    def _do_end_call(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        if not self.visit.help_ended(args["call_id"], "staff"):
            return False, "the call has already ended", "call_over"
        return True, ""

    def _do_message(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        if not self.visit.help_message(args["call_id"], args["text"].strip()):
            return False, "the call is not connected", "call_over"
        return True, ""

    def _do_point(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        if not self.visit.help_pointer(args["call_id"], args["x"], args["y"]):
            return False, "the call is not connected", "call_over"
        return True, ""

    def _do_goto_step(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        try:
            step = Step(args["step"])
        except ValueError:
            return (False, f"there is no step {args['step'][:20]!r} (home, choose, notice, form, materials, "
                    "review)", "invalid")
        if not self.visit.help_goto(args["call_id"], step):
            return False, "the call is not connected", "call_over"
        return True, ""

    def _do_ask_consent(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        if not self.visit.ask_consent(args["call_id"]):
            return False, "the call is not connected", "call_over"
        return True, ""

    def _media_configured(self) -> bool:
        return bool(self.fleet.microphone or self.fleet.media_camera)

    def _get_media(self) -> Any:
        with self._media_lock:
            if self._media is None:
                if self._media_factory is not None:
                    self._media = self._media_factory()
                else:
                    from kiosk.help_media import HelpMedia

                    camera = self.fleet.media_camera
                    # no camera configured: an audio-only call (None), not "the camera is missing"
                    self._media = HelpMedia((lambda: self.devices.get(camera)) if camera else None,
                                            self.fleet.microphone, speaker=self.fleet.speaker,
                                            ice_servers=list(self.fleet.ice_servers))
            return self._media

    def _do_media_offer(self, cmd_id: str, who: str, args: dict[str, Any]) -> tuple[Any, ...] | None:
        if not self._media_configured():
            return False, "no microphone or camera configured", "no_media"
        call_id, offer = args["call_id"], args["sdp"]

        def work() -> None:
            try:
                answer = self._get_media().answer(call_id, offer)
            except Exception as exc:  # MediaUnavailable and friends: the words go to the console
                reason = mask_text(str(exc) or type(exc).__name__)[:300]
                log.warning("fleet: help-call media not answered: %s", reason)
                self._publish("media", {"call_id": call_id, "error": reason})
                self._audit(who, "media_offer", "failed", cmd_id=cmd_id, call_id=call_id, reason=reason)
                self._work.put(("reply", (cmd_id, "media_offer", False, reason, "", "media_failed")))
                return
            with self._call_lock:
                still = self._call is not None and self._call.call_id == call_id
            if not still:  # the call ended while the answer was made
                self._stop_media(call_id)
                self._work.put(("reply", (cmd_id, "media_offer", False, "the call has ended", "", "call_over")))
                return
            self._publish("media", {"call_id": call_id, "type": "answer", "sdp": answer})
            self._audit(who, "media_offer", "done", cmd_id=cmd_id, call_id=call_id)
            self._work.put(("reply", (cmd_id, "media_offer", True, "", "")))

        self._spawn("fleet-media", work)
        return None

    def _do_media_stop(self, _cmd_id: str, _who: str, args: dict[str, Any]) -> tuple[Any, ...]:
        self._stop_media(args["call_id"])
        return True, ""

    def _stop_media(self, call_id: str) -> None:
        with self._media_lock:
            media = self._media
        if media is None:
            return
        try:
            media.stop(call_id)
        except Exception:
            log.exception("stopping the help-call media")
