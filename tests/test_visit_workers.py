"""The terminal's workers for the journey, without devices or a network: the citizen's page,
help calls and material scans answer the visit they started for, and only that one."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
from visit_doubles import Card

from devices.base import DeviceError, DeviceState, DeviceStatus
from devices.scanner.interface import PageUnreadable, Problem, Readability, ScannedPage
from kiosk.catalogue import Catalogue
from kiosk.visit import Step, Visit
from kiosk.visit_workers import CitizenPage, HelpCalls, MaterialScanner

CATALOGUE = {"version": "v", "items": [{
    "id": "one", "kind": "service", "title": {"zh-CN": "一件事"}, "form": [],
    "materials": [{"id": "paper", "title": {"zh-CN": "申请表"}, "e_licence": None, "promise_allowed": False,
                   "required": True}]}]}


def on_materials() -> Visit:
    visit = Visit(Catalogue.from_platform(CATALOGUE))
    visit.start()
    visit.card_read(Card())
    visit.choose("one")
    assert visit.step is Step.MATERIALS
    return visit


class Link:
    enrolled = True

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.gate, self.fail = gate, fail

    def home(self, _session: Any) -> Any:
        if self.gate is not None:
            self.gate.wait(5)
        return None if self.fail else ([{"title": {"zh-CN": "高龄津贴"}, "status": "granted_automatically"}], [])

    def call_help(self, visit_id: str, item_id: str | None, step: str) -> tuple[str, str]:
        if self.fail:
            raise OSError("platform unreachable")
        return "ZX20261127000001", "12345"


def test_the_page_is_loaded_for_its_visit_and_a_late_answer_is_dropped() -> None:
    gate = threading.Event()
    visit = Visit(Catalogue.from_platform(CATALOGUE))
    page = CitizenPage(visit, Link(gate))
    visit.subscribe(page.on_view)
    visit.start()
    visit.card_read(Card())
    assert visit.view().home.state == "loading"
    visit.cancel()  # the citizen leaves before the platform answers
    visit.start()
    visit.card_read(Card())
    gate.set()
    page.join()
    assert visit.view().home.state == "ready"  # the second visit's own answer
    assert visit.view().home.benefits[0].title == "高龄津贴"


def test_no_platform_or_a_failure_says_unavailable() -> None:
    for link in (None, Link(fail=True)):
        visit = Visit(Catalogue.from_platform(CATALOGUE))
        page = CitizenPage(visit, link)
        visit.subscribe(page.on_view)
        visit.card_read(Card())
        page.join()
        assert visit.view().home.state == "unavailable"


def test_help_reaches_the_desk_or_gives_the_hotline() -> None:
    for link, state in ((Link(), "called"), (Link(fail=True), "failed"), (None, "failed")):
        visit = Visit(Catalogue.from_platform(CATALOGUE))
        calls = HelpCalls(visit, link, "12345")
        visit.subscribe(calls.on_view)
        visit.help()
        calls.join()
        assert visit.view().help.state == state and visit.view().help.hotline == "12345"


class Scanner:
    def __init__(self, result: Any, state: DeviceState = DeviceState.ONLINE) -> None:
        self.result, self.state = result, state

    def status(self) -> DeviceStatus:
        return DeviceStatus(self.state)

    def scan(self, on_progress: Any = None) -> ScannedPage:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def scan_with(device: Any) -> Visit:
    visit = on_materials()
    worker = MaterialScanner(visit, lambda: device)
    visit.subscribe(worker.on_view)
    visit.scan("paper")
    worker.join()
    return visit


def test_a_readable_page_is_attached_as_a_bounded_jpeg() -> None:
    page = np.full((1169, 827, 3), 255, np.uint8)
    page[100:140, 80:700] = 0  # a line of "text"
    visit = scan_with(Scanner(ScannedPage(page, 100.0, Readability(), "camera")))
    scan = visit.session.scans["paper"]
    assert scan.media_type == "image/jpeg" and bytes(scan.data[:3]) == b"\xff\xd8\xff"
    assert {m.id: m.provided for m in visit.view().materials} == {"paper": "scan"}


def test_scan_problems_become_what_the_citizen_should_do() -> None:
    blurred = PageUnreadable("blurred", Readability((Problem.BLURRED,)))
    cases = [(Scanner(blurred), "materials.scan_problem.blurred"),
             (Scanner(DeviceError("jammed")), "materials.scan_problem.failed"),
             (Scanner(None, DeviceState.OFFLINE), "materials.scan_problem.no_scanner"),
             (None, "materials.scan_problem.no_scanner")]
    for device, key in cases:
        visit = scan_with(device)
        assert visit.view().message_key == key and visit.view().scanning is None
        assert visit.session.scans == {}
