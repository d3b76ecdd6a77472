"""Work the visit asks the terminal for, done off the visit's lock and the UI thread: the
citizen's own page from the platform, a help call to the help desk, a scan of a paper material.

Each worker watches the visit's views, starts a thread for the asked work and answers the visit
with the visit id it started for, so an answer that arrives after the citizen left is dropped.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from devices.base import Device, DeviceError, DeviceState
from kiosk.session import ScanError
from kiosk.visit import Step, View, Visit

log = logging.getLogger(__name__)


class _Worker:
    def __init__(self, visit: Visit) -> None:
        self.visit = visit
        self.threads: list[threading.Thread] = []  # tests join them

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception:  # a worker's fault must never take the terminal down
                log.exception("%s failed", name)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float = 10.0) -> None:
        for thread in list(self.threads):
            thread.join(timeout)


class CitizenPage(_Worker):
    """Benefits (免申即享 and eligible) and applications in progress, once identified."""

    def __init__(self, visit: Visit, link: Any) -> None:
        super().__init__(visit)
        self.link = link

    def on_view(self, view: View) -> None:
        if view.step is Step.HOME and view.reason in ("card", "face"):
            # always from a thread of its own, never inside this view's delivery: an answer given
            # here would reach the screen before the view that asked for it
            self._spawn("citizen-page", self._load, self.visit.session)

    def _load(self, session: Any) -> None:
        found = self.link.home(session) if self.link is not None else None
        if found is None:
            self.visit.home_unavailable(session.visit_id)
        else:
            self.visit.home_loaded(session.visit_id, *found)


class HelpCalls(_Worker):
    """求助: live at the help desk when the fleet channel is connected (the agent queues the call
    and the visit waits for staff); otherwise a help consultation at the platform (a ticket the
    desk answers later), and the hotline when neither can be reached."""

    def __init__(self, visit: Visit, link: Any, hotline: str, fleet: Any = None) -> None:
        super().__init__(visit)
        self.link = link
        self.hotline = hotline
        self.fleet = fleet  # kiosk.fleet_agent.FleetAgent (offer_help), or None

    def on_view(self, view: View) -> None:
        if view.reason == "help":
            session = self.visit.session
            self._spawn("help-call", self._call, session.visit_id, session.service_id, view.step.value)

    def _call(self, visit_id: str, item_id: str | None, step: str) -> None:
        if self.fleet is not None and self.fleet.offer_help(visit_id):
            return
        if self.link is None or not self.link.enrolled:
            self.visit.help_failed(visit_id, self.hotline)
            return
        try:
            ticket, hotline = self.link.call_help(visit_id, item_id, step)
        except Exception as exc:  # PlatformError or a malformed answer: the hotline it is
            log.warning("help call failed: %s", exc)
            self.visit.help_failed(visit_id, self.hotline)
            return
        self.visit.help_answered(visit_id, ticket, hotline or self.hotline)


def scanner_usable(device: Device | None) -> bool:
    """There and working: BUSY is a scanner taking a page, not one that went away (counting it
    out made every scan tell the visit "no scanner" until the page was taken)."""
    return device is not None and device.status().device in (DeviceState.ONLINE, DeviceState.BUSY)


class MaterialScanner(_Worker):
    """Scans the paper of one material when the citizen asks, as a bounded JPEG."""

    def __init__(self, visit: Visit, device: Callable[[], Device | None]) -> None:
        super().__init__(visit)
        self.device = device

    def on_view(self, view: View) -> None:
        if view.step is Step.MATERIALS and view.reason == "scan" and view.scanning:
            self._spawn("material-scan", self._scan, self.visit.session.visit_id, view.scanning)

    def _scan(self, visit_id: str, material_id: str) -> None:
        from devices.scanner.interface import NoPageFound, PageUnreadable
        from devices.scanner.output import page_jpeg

        def failed(key: str) -> None:
            if self.visit.session.visit_id == visit_id:
                self.visit.scan_failed(material_id, key)

        device = self.device()
        if not scanner_usable(device):
            failed("materials.scan_problem.no_scanner")
            return
        assert device is not None
        try:
            page = device.scan()  # type: ignore[attr-defined]
            data = page_jpeg(page)
        except PageUnreadable as exc:
            hint = exc.readability.hint
            failed(f"materials.scan_problem.{hint.value}" if hint is not None else "materials.scan_problem.failed")
            return
        except NoPageFound:
            failed("materials.scan_problem.place_page")
            return
        except (DeviceError, ValueError) as exc:
            log.warning("scan of a material failed: %s", exc)
            failed("materials.scan_problem.failed")
            return
        try:
            if self.visit.session.visit_id != visit_id:
                return  # the citizen left while the page was taken: drop it
            self.visit.attach_scan(material_id, "image/jpeg", data)
        except ScanError as exc:
            log.warning("scan refused: %s", exc)
            failed("materials.scan_problem.failed")
        except Exception as exc:  # InvalidTransition: they moved on meanwhile
            log.info("scan not attached: %s", exc)
