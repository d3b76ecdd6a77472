"""预约取号: an appointment code held up to the QR scanner on the attract screen prints a
queue ticket, with no ID card and no form.

The code is checked before anything acts on it (kiosk/codes.py: only an appointment code,
with a valid check character); then the platform checks the citizen in and gives the
queue number, and the receipt printer prints the ticket. When paper fails, the number is
on the screen in large type: the citizen writes it down, nothing is lost. The scanner
listens only on the attract screen; elsewhere codes are ignored (a later step that wants
a code, such as an e-licence, arms it for itself).
"""
from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any

from config.schema import KioskConfig
from devices.base import Device, DeviceError
from kiosk.codes import CodeRules, InvalidCode, parse_code
from kiosk.govclient import PlatformError, PlatformRejected, new_idempotency_key
from kiosk.handout import usable
from kiosk.visit import Handout, InvalidTransition, Step, View, Visit

log = logging.getLogger(__name__)

# the platform's refusal codes -> what the citizen is told
_REFUSALS = {"not_found": "ticket.unknown", "too_early": "ticket.too_early", "too_late": "ticket.too_late",
             "booking_cancelled": "ticket.unknown"}


class CheckIn:
    """Listens to the QR scanner; runs one check-in at a time on its own thread."""

    def __init__(self, visit: Visit, cfg: KioskConfig, device: Callable[[str], Device | None],
                 link: Any = None, *, now: Callable[[], datetime.datetime] | None = None) -> None:
        self.visit = visit
        self.cfg = cfg
        self.device = device
        self.link = link
        self.rules = CodeRules.from_mapping(cfg.codes.model_dump())
        self.now = now or (lambda: datetime.datetime.now().astimezone())
        self.scanner_name = next((n for n, d in cfg.devices.items() if d.device_class == "qr_scanner"
                                  and d.enabled), "")
        self.threads: list[threading.Thread] = []  # tests join them

    # -- the scanner listens on the attract screen only ----------------------------------------------
    def on_view(self, view: View) -> None:
        scanner = self.device(self.scanner_name) if self.scanner_name else None
        if scanner is None or not hasattr(scanner, "arm"):
            return
        if view.step is Step.ATTRACT:
            scanner.arm()
        else:
            scanner.disarm()

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "code_scanned":
            self.scanned(str(data.get("text", "")))
        elif kind == "code_unreadable" and self.visit.step is Step.ATTRACT:
            self.visit.code_refused("code.unreadable")

    def scanned(self, text: str) -> None:
        try:
            code = parse_code(text, self.rules, expect={"appointment"})
        except InvalidCode as exc:
            log.info("scanned code refused: %s (%s)", exc.reason, exc.detail)
            self.visit.code_refused(exc.reason)
            return
        try:
            visit_id = self.visit.ticket_started()
        except InvalidTransition:
            log.info("appointment code ignored: the terminal is serving someone")
            return
        log.info("appointment code %s: checking in", code.masked())
        thread = threading.Thread(target=self._guarded, args=(visit_id, code.value), name="checkin", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _guarded(self, visit_id: str, code: str) -> None:
        try:
            self._check_in(visit_id, code)
        except Exception:  # never take the terminal down; the citizen is told to ask at the desk
            log.exception("check-in failed")
            self._tell(visit_id, "ticket.offline")

    def _tell(self, visit_id: str, key: str, **values: str) -> None:
        self.visit.handout_changed(visit_id, Handout(key, dict(values)))

    # -- platform, then paper ------------------------------------------------------------------------
    def _check_in(self, visit_id: str, code: str) -> None:
        if self.link is None or not self.link.enrolled:
            self._tell(visit_id, "ticket.offline")
            return
        try:
            answer = self.link.quick.check_in(code, new_idempotency_key())
        except PlatformRejected as exc:
            key = _REFUSALS.get(exc.code, "ticket.unknown")
            log.info("check-in refused by the platform: %s", exc)
            self._tell(visit_id, key)
            return
        except PlatformError as exc:
            log.warning("check-in not possible: %s", exc)
            self._tell(visit_id, "ticket.offline")
            return
        language = self.visit.language
        counter = answer.get("counter") or {}
        values = {"ticket": str(answer["ticket_number"]), "waiting": str(answer.get("waiting_ahead", 0)),
                  "counter": str(counter.get(language) or counter.get("zh-CN") or "")}
        printer = self.device(self.cfg.handout.receipt_printer) if self.cfg.handout.receipt_printer else None
        if not usable(printer):
            self._tell(visit_id, "ticket.no_paper", **values)
            return
        self._tell(visit_id, "ticket.printing", **values)
        title = answer.get("title") or {}
        document_values = {
            "terminal_id": self.cfg.terminal.id, "location": self.cfg.terminal.location,
            "printed_at": self.now().strftime("%Y-%m-%d %H:%M"), "ticket_number": values["ticket"],
            "waiting_ahead": values["waiting"], "counter": values["counter"],
            "service_title": str(title.get(language) or title.get("zh-CN") or ""),
        }
        try:
            from kiosk import receipts

            printer.print_document(receipts.build("queue_ticket", document_values, language))  # type: ignore[union-attr]
        except DeviceError as exc:
            log.warning("queue ticket %s not printed: %s", values["ticket"], exc)
            self._tell(visit_id, "ticket.no_paper", **values)
            return
        self._tell(visit_id, "ticket.printed", **values)
