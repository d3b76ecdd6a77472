"""The handout worker's own rules, without devices or a platform (those are in
tests/platform/test_kiosk_handout.py): what goes on the receipt, when a printer counts as
usable, and which words a paper fault becomes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from config.loader import load_config
from devices.base import DeviceState, DeviceStatus, MediaState
from kiosk.catalogue import Catalogue, Field, Material, Service
from kiosk.handout import HandoutDesk, _paper_key, public_url, usable
from kiosk.visit import Receipt, Step, Visit

SERVICE = Service("open-shop", "企业", {"zh-CN": "开办小店", "en": "Open a small shop"},
                  (Field("name", {"zh-CN": "姓名", "en": "Name"}, "identity.name", True),),
                  (Material("id_card", {"zh-CN": "居民身份证", "en": "ID card"}, "id_card", False, True),
                   Material("lease", {"zh-CN": "租赁合同", "en": "Lease"}, None, True, True),
                   Material("plan", {"zh-CN": "平面图", "en": "Floor plan"}, None, True, True)))


@dataclass
class Card:
    name: str = "王小明"
    id_number: str = "110101199003070011"
    card_type: str = "resident"  # counts as the ID e-licence

    def validity_problem(self, _today: Any) -> None:
        return None


class Link:
    """Stands for PlatformLink: the lease is promised, the plan was scanned."""

    enrolled = True

    def materials_for(self, _session: Any, _service: Service) -> list[dict[str, str]]:
        return [{"id": "id_card", "provided": "e_licence", "reference": "x"},
                {"id": "lease", "provided": "promise"},
                {"id": "plan", "provided": "scan", "reference": "scan:" + "0" * 64}]


class Printer:
    def __init__(self, device: DeviceState, media: MediaState) -> None:
        self._status = DeviceStatus(device, media, "")

    def status(self) -> DeviceStatus:
        return self._status


def finished_visit(language: str = "zh-CN") -> tuple[Visit, HandoutDesk]:
    visit = Visit(Catalogue([SERVICE]), submitter=lambda *_: Receipt("L20261127-T1-000001", delivered=False),
                  language=language)
    cfg = load_config(environ={"KIOSK__PLATFORM__URL": "https://zwfw.example.gov.cn/kiosk-api",
                               "KIOSK__TERMINAL__ID": "T1"})
    desk = HandoutDesk(visit, cfg, lambda _name: None, Link())
    visit.subscribe(desk.on_view)
    visit.start()
    visit.card_read(Card())
    visit.choose("open-shop")
    visit.next()  # the form, all from the card
    visit.promise("lease")
    visit.attach_scan("plan", "image/jpeg", b"\xff\xd8\xff\xe0 a floor plan")
    visit.next()
    visit.confirm()
    for thread in desk.threads:
        thread.join(5)
    return visit, desk


def test_the_receipt_lists_what_was_promised_and_nothing_personal_in_clear() -> None:
    visit, desk = finished_visit()
    assert visit.step is Step.FINISH
    assert desk._job is not None
    values = desk.receipt_values(desk._job)
    assert values["commitments"] == ["租赁合同"]  # not the e-licence, not the scanned plan
    assert values["applicant"] != "王小明" and values["applicant"].startswith("王")
    assert values["queued"] is True
    assert values["progress_url"] == "https://zwfw.example.gov.cn/progress/L20261127-T1-000001"
    visit.finish()


def test_no_receipt_printer_is_said_with_the_qr_code_and_no_sms_while_queued() -> None:
    visit, _ = finished_visit()
    handout = visit.view().handout
    assert handout is not None and handout.message_key == "handout.no_printer"
    assert handout.qr == "https://zwfw.example.gov.cn/progress/L20261127-T1-000001"
    assert handout.sms == ""  # the platform does not know this application yet
    visit.finish()
    assert visit.view().handout is None


def test_english_visits_get_english_titles_on_paper() -> None:
    visit, desk = finished_visit("en")
    assert desk._job is not None
    values = desk.receipt_values(desk._job)
    assert values["service_title"] == "Open a small shop" and values["commitments"] == ["Lease"]
    visit.finish()


@pytest.mark.parametrize(("device", "media", "ok"), [
    (DeviceState.ONLINE, MediaState.PRESENT, True), (DeviceState.ONLINE, MediaState.LOW, True),
    (DeviceState.ONLINE, MediaState.UNKNOWN, True), (DeviceState.ONLINE, MediaState.OUT, False),
    (DeviceState.ONLINE, MediaState.JAMMED, False), (DeviceState.HARDWARE_ERROR, MediaState.PRESENT, False),
    (DeviceState.OFFLINE, MediaState.PRESENT, False)])
def test_usable_means_online_with_paper_that_is_not_out_or_jammed(device: DeviceState, media: MediaState,
                                                                  ok: bool) -> None:
    assert usable(Printer(device, media)) is ok  # type: ignore[arg-type]
    assert usable(None) is False


def test_paper_faults_become_the_citizens_words() -> None:
    class PaperOut(Exception):
        pass

    online = Printer(DeviceState.ONLINE, MediaState.PRESENT)
    assert _paper_key(online, PaperOut("out")) == "handout.paper_out"  # type: ignore[arg-type]
    assert _paper_key(Printer(DeviceState.ONLINE, MediaState.JAMMED)) == "handout.paper_jam"  # type: ignore[arg-type]
    assert _paper_key(Printer(DeviceState.HARDWARE_ERROR, MediaState.UNKNOWN)) == "handout.printer_fault"  # type: ignore[arg-type]
    assert _paper_key(None) == "handout.no_printer"


def test_public_pages_live_on_the_platform_host_unless_configured() -> None:
    cfg = load_config(environ={"KIOSK__PLATFORM__URL": "http://10.0.0.5:8780/api"})
    assert public_url(cfg) == "http://10.0.0.5:8780"
    cfg = load_config(environ={"KIOSK__PLATFORM__URL": "http://10.0.0.5:8780/api",
                               "KIOSK__PLATFORM__PUBLIC_URL": "https://zwfw.example.gov.cn/"})
    assert public_url(cfg) == "https://zwfw.example.gov.cn"
    assert public_url(load_config(environ={})) == ""
