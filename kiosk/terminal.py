"""Wire one terminal together: config -> emulators -> devices -> visit -> voice.

Both the touchscreen app and the headless runner build a Terminal; the UI only adds
screens on top of it.
"""
from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.schema import KioskConfig
from config.texts import Texts
from devices import registry
from devices.base import Device, DeviceEvent, DeviceState
from devices.supervisor import Supervisor
from kiosk.audit import AuditLog
from kiosk.catalogue import Catalogue
from kiosk.checkin import CheckIn
from kiosk.device_restart import restart_device
from kiosk.device_setup import EmulatorNotStarted, start_emulator
from kiosk.face_check import FaceCheck, cooperative_citizen
from kiosk.fleet_agent import FleetAgent, FleetUnavailable
from kiosk.handout import HandoutDesk, usable
from kiosk.maintenance import Maintenance, MaintenanceState
from kiosk.platform_link import PlatformLink
from kiosk.visit import Step, Timing, View, Visit
from kiosk.visit_workers import CitizenPage, HelpCalls, MaterialScanner, scanner_usable
from kiosk.voice_policy import volume_at

log = logging.getLogger(__name__)

# the reason a view changed -> speak it? Countdown ticks and corrections stay silent.
_SILENT_REASONS = {"correct", "invalid", "continue", "sms", "equipment", "filter", "home", "promised",
                   "promise_withdrawn", "scan_attached", "scan_detached", "help_closed", "help_again",
                   "help_minimized", "reader_back"}
_HELP_KEYS = {"help": "help.calling", "help_answered": "help.called", "help_failed": "help.failed",
              "help_waiting": "help.waiting", "help_connected": "help.connected", "help_pointer": "help.pointer_hint",
              "help_ended": "help.ended", "help_ended_by_citizen": "help.ended"}
# the key a staff message is spoken under (the text itself is the staff member's, not the catalogue's)
HELP_MESSAGE_KEY = "help.message"
# the device classes a citizen proves who they are with (ID card, social security card)
CARD_READER_CLASSES = ("idcard", "smartcard")
# a card reader's failure code -> what the identify screen tells the citizen
CARD_FAILURE_KEYS = {"card_pulled": "identify.card_pulled", "not_social_security": "identify.invalid",
                     "card_blocked": "identify.card_blocked"}


class Terminal:
    def __init__(self, cfg: KioskConfig, *, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], datetime.date] = datetime.date.today,
                 speaker: Any = None, root: Path | None = None,
                 time_of_day: Callable[[], datetime.time] = lambda: datetime.datetime.now().time()) -> None:
        self.cfg = cfg
        self.root = root or Path(__file__).resolve().parent.parent
        data_dir = Path(cfg.terminal.data_dir)
        self.data_dir = data_dir if data_dir.is_absolute() else self.root / data_dir
        self.texts = Texts.load()
        self.link: PlatformLink | None = None
        if cfg.platform.url:
            self.link = PlatformLink(cfg, self.data_dir)
            catalogue = self.link.load_catalogue() or Catalogue([])
        else:  # no platform configured: the local catalogue, and visits say nothing was sent
            catalogue = Catalogue.load()
        self.catalogue = catalogue
        self.visit = Visit(self.catalogue, Timing(cfg.visit.idle_timeout_s, cfg.visit.idle_warning_s,
                                                  cfg.visit.identify_timeout_s),
                           clock=clock, today=today, language=cfg.ui.language,
                           submitter=self.link.submit if self.link else None,
                           prefiller=self.link.prefill if self.link else None,
                           rater=self.link.rate if self.link else None,
                           face_required=cfg.face.enabled, elder_age=cfg.ui.elder_mode_age)
        self.devices: dict[str, Device] = {}
        self.emulators: dict[str, Any] = {}
        self.speaker = speaker
        self.time_of_day = time_of_day
        self.supervisor: Supervisor | None = None
        self._warned = False
        self.visit.subscribe(self._speak)
        self.visit.subscribe(self._after_face)
        if self.link is not None:
            self.link.on_catalogue = self.visit.replace_catalogue
        self.handout = HandoutDesk(self.visit, cfg, self.devices.get, self.link)
        self.visit.subscribe(self.handout.on_view)
        self.checkin = CheckIn(self.visit, cfg, self.devices.get, self.link)
        self.visit.subscribe(self.checkin.on_view)
        self.citizen_page = CitizenPage(self.visit, self.link)
        # the touchscreen app sets this: its touch targets as boxes, for the help desk's mirror
        self.layout_provider: Callable[[], dict[str, Any] | None] | None = None
        self.fleet: FleetAgent | None = None
        if cfg.fleet.enabled:  # the help desk: status, alerts, live help calls and its commands
            self.fleet = FleetAgent(cfg, self.visit, self.devices, data_dir=self.data_dir, texts=self.texts,
                                    outbox_counts=self.link.outbox_counts if self.link is not None else None,
                                    platform_check=self.link.check_reachable if self.link is not None else None,
                                    restart=self.restart_device,
                                    layout=lambda: self.layout_provider() if self.layout_provider else None)
        self.help_calls = HelpCalls(self.visit, self.link, cfg.ui.help_hotline, self.fleet)
        self.scanner_name = next((n for n, d in cfg.devices.items() if d.device_class == "scanner"), None)
        self.material_scanner = MaterialScanner(
            self.visit, lambda: self.devices.get(self.scanner_name) if self.scanner_name else None)
        for worker in (self.citizen_page, self.help_calls, self.material_scanner):
            self.visit.subscribe(worker.on_view)
        self.visit.card_kinds = frozenset(self.cfg.devices[n].device_class for n in self.card_readers())
        # the maintenance screen (technician PIN or card; every action audited): it checks the
        # devices the terminal has open, and only on the attract screen, never during a visit
        audit_file = Path(cfg.maintenance.audit_file)
        self.maintenance = Maintenance(
            cfg.maintenance, self.devices,
            AuditLog(audit_file if audit_file.is_absolute() else self.data_dir / audit_file, cfg.terminal.id),
            may_open=lambda: self.visit.step is Step.ATTRACT,
            outbox_counts=self.link.outbox_counts if self.link is not None else None,
            receipt_printer=cfg.handout.receipt_printer, location=cfg.terminal.location,
            language=cfg.ui.language)
        self.face: FaceCheck | None = None
        if cfg.face.enabled:
            camera_cfg = cfg.devices.get(cfg.face.camera)
            mirrored = bool(camera_cfg.driver_params().get("mirror", True)) if camera_cfg else True
            self.face = FaceCheck(self.visit, cfg.face, lambda: self.devices.get(cfg.face.camera),
                                  mirrored=mirrored,
                                  signer=lambda: self.link.client.keypair if self.link else None)

    # -- lifecycle -------------------------------------------------------------------
    def start(self, supervise: bool = True) -> None:
        """Start emulators, build and open devices; a missing device is a status, not a crash."""
        for name, dev_cfg in self.cfg.devices.items():
            if not dev_cfg.enabled:
                continue
            params = dev_cfg.driver_params()
            if dev_cfg.emulate:
                try:  # points params at the emulator (kiosk/device_setup.py)
                    self.emulators[name] = start_emulator(name, dev_cfg, self.data_dir / "run", params)
                except EmulatorNotStarted as exc:  # one emulator that cannot start must not stop the terminal
                    log.error("%s: the %s emulator did not start, the device is left out: %s",
                              name, dev_cfg.driver, exc)
                    continue
            device = registry.driver_class(dev_cfg.device_class, dev_cfg.driver)(name, **params)
            device.subscribe(self._on_device_event)
            self.devices[name] = device
        if self.link is not None:
            self.link.start()
        if self.face is not None and self.cfg.face.camera in self.emulators:
            self.face.on_prompt = cooperative_citizen(self.emulators[self.cfg.face.camera])
        self.checkin.on_view(self.visit.view())  # the attract screen listens for appointment codes
        self.supervisor = Supervisor(list(self.devices.values()))
        self.maintenance.reopen_by_supervisor = supervise  # a restarted device is reopened by it
        if supervise:
            self.supervisor.start()
        else:
            for device in self.devices.values():
                try:
                    device.open()
                except Exception as exc:  # the status already says why
                    log.warning("%s did not open: %s", device.name, exc)
        if self.fleet is not None:
            self._start_fleet()

    def _start_fleet(self) -> None:
        """A fleet channel that cannot start leaves the terminal running alone: help calls then
        go to the platform as tickets, and the technician reads why in the log."""
        from fleet.client import FleetAccountError

        assert self.fleet is not None
        try:
            self.fleet.start()
        except (FleetUnavailable, FleetAccountError, OSError, ValueError) as exc:
            log.error("fleet channel not started, the help desk cannot see this terminal: %s", exc)
            self.fleet = None
            self.help_calls.fleet = None

    def restart_device(self, name: str) -> tuple[str, str]:
        """Close one device and bring it up again (the help desk's restart_device); returns
        (outcome, fault) as kiosk.device_restart says."""
        return restart_device(self.devices[name], self.maintenance.reopen_by_supervisor)

    def stop(self) -> None:
        self.visit.wipe("shutdown") if self.visit.step is not Step.ATTRACT else None
        if self.maintenance.state is MaintenanceState.OPEN:
            self.maintenance.close("shutdown")  # audited: the technician's session ended here
        if self.fleet is not None:
            self.fleet.stop()  # "stopped" at the help desk, before the devices go offline
        if self.supervisor is not None:
            self.supervisor.stop()
        for emulator in self.emulators.values():
            emulator.stop()
        if self.link is not None:
            self.link.stop()
        if self.speaker is not None:
            self.speaker.close()

    # -- device events -> visit ---------------------------------------------------------
    def _on_device_event(self, event: DeviceEvent) -> None:
        if self.maintenance.active and event.kind in ("card_placed", "code_scanned", "code_unreadable"):
            # the PIN pad or the maintenance screen is up: a card goes to the maintenance (a
            # technician card logs in; any other is refused and wiped), never to the visit, and
            # no code starts a check-in behind the technician's back
            if event.kind == "card_placed":
                self.maintenance.technician_card(event.data.get("identity"))
            return
        if event.kind == "status_changed":
            self.maintenance.device_changed()  # the open maintenance list shows it at once
        if event.kind == "card_placed":
            if "identity" in event.data:
                self.visit.card_read(event.data["identity"])
                session = self.visit.session
                if (self.link is not None and not self.visit.face_required and session.identity is not None
                        and session.citizen_token is None):
                    self.link.identify_in_background(session)
            else:
                self.visit.card_failed(CARD_FAILURE_KEYS.get(event.data.get("code", ""), "identify.read_failed"))
        elif event.kind == "card_removed":
            self.visit.card_removed()
        elif event.kind in ("code_scanned", "code_unreadable"):
            self.checkin.on_event(event.kind, event.data)
        elif event.kind == "status_changed" and event.source in (self.cfg.handout.receipt_printer,
                                                                   self.cfg.handout.a4_printer, self.scanner_name):
            self.update_equipment()
        elif event.kind == "status_changed" and self.cfg.devices[event.source].device_class in CARD_READER_CLASSES:
            online = self._card_kinds_online()
            # identify asks for the cards that can be read now (both kinds before any is known)
            self.visit.card_kinds = frozenset(online) or self.visit.card_kinds
            if event.data.get("device") != DeviceState.ONLINE.value:
                self._card_reader_lost(online)
            else:  # back: identify says only what is still out, or nothing
                self.visit.readers_back(None if "idcard" in online else "identify.idcard_offline")

    def _card_kinds_online(self) -> set[str]:
        return {self.cfg.devices[n].device_class for n in self.card_readers()
                if n in self.devices and self.devices[n].status().device is DeviceState.ONLINE}

    def _card_reader_lost(self, online: set[str]) -> None:
        """Tell the identify screen which card can still be used, if any."""
        if not online:
            self.visit.reader_offline()  # no card of any kind can be read now
        elif "idcard" not in online:
            self.visit.reader_offline("identify.idcard_offline")  # the social security card still works

    def layout_changed(self) -> None:
        """The touchscreen app placed its buttons anew: the help desk's mirror follows."""
        if self.fleet is not None:
            self.fleet.screen_redrawn()

    def card_readers(self) -> list[str]:
        """The enabled readers a visit can start from, by name."""
        return [n for n, d in self.cfg.devices.items() if d.enabled and d.device_class in CARD_READER_CLASSES]

    def update_equipment(self) -> None:
        """Tell the visit what the printers and the scanner allow now, before a citizen chooses."""
        notices: list[str] = []
        unavailable: set[str] = set()
        receipt_name, a4_name = self.cfg.handout.receipt_printer, self.cfg.handout.a4_printer
        if receipt_name in self.devices and not usable(self.devices[receipt_name]):
            notices.append("notice.no_receipt_paper")
        if a4_name in self.devices and not usable(self.devices[a4_name]):
            notices.append("notice.no_certificates")
            unavailable.add("certificate")
        scanner = self.devices.get(self.scanner_name) if self.scanner_name else None
        self.visit.set_equipment(tuple(notices), frozenset(unavailable), scanner_usable(scanner))

    def _after_face(self, view: View) -> None:
        """The holder is verified: now the platform is asked who they are, with the evidence."""
        if view.step is Step.HOME and view.reason == "face" and self.link is not None:
            self.link.identify_in_background(self.visit.session)

    # -- voice ---------------------------------------------------------------------------
    def prompt_for(self, view: View) -> str | None:
        """The text key to speak for a view, or None when nothing should be said."""
        if not view.voice_on:
            return None
        if view.reason in ("repeat", "voice"):  # asked for again, or the voice just turned back on
            if view.warning_seconds is not None:
                return "idle.prompt"
            if view.handout is not None:
                return view.handout.message_key
            return view.message_key or view.prompt_key
        if view.warning_seconds is not None:
            if self._warned:
                return None
            self._warned = True
            return "idle.prompt"
        self._warned = False
        if view.reason in _SILENT_REASONS:
            return None
        if view.reason == "handout" and view.handout is not None:
            return "handout.sms_failed" if view.handout.sms == "failed" else view.handout.message_key
        if view.reason == "help_message" and view.help is not None and view.help.messages:
            return HELP_MESSAGE_KEY
        if view.reason == "help_consent" and view.help is not None:
            return {"asked": "help.consent_text", "granted": "help.consent_granted",
                    "refused": "help.consent_refused"}.get(view.help.consent)
        if view.reason in _HELP_KEYS:
            return _HELP_KEYS[view.reason]
        if view.reason == "elder":
            return "elder.on" if view.elder else "elder.off"
        if view.reason == "scan":
            return "materials.scanning"
        if view.reason == "search":
            return view.message_key  # only "nothing found" is said; results are read on screen
        return view.message_key or view.prompt_key

    def _speak(self, view: View) -> None:
        if self.speaker is None:
            return
        if view.reason == "voice" and not view.voice_on:
            self.speaker.stop()  # silenced mid-sentence: stop at once
            return
        key = self.prompt_for(view)
        if key is None:
            return
        if hasattr(self.speaker, "set_rate"):
            self.speaker.set_rate(self.cfg.voice.elder_rate if view.elder else self.cfg.voice.rate)
        if hasattr(self.speaker, "set_volume"):
            voice = self.cfg.voice
            self.speaker.set_volume(volume_at(self.time_of_day(), voice.volume, voice.quiet_hours,
                                              voice.quiet_volume))
        if key == HELP_MESSAGE_KEY and view.help is not None:
            self.speaker.say(view.help.messages[-1], interrupt=True, key=key)  # the staff member's own words
            return
        values: dict[str, str] = {}
        if view.handout is not None and key.startswith("handout."):
            values = view.handout.values
        elif key.startswith("help.") and view.help is not None:
            values = {"ticket": view.help.ticket, "hotline": view.help.hotline or self.cfg.ui.help_hotline,
                      "staff": view.help.staff}
        elif key == view.message_key:
            values = view.message_values
        self.speaker.say(self.texts.get(key, view.language, **values), interrupt=True, key=key)
