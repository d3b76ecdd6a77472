"""The guided journey on the platform's real catalogue, without Kivy or a network: the citizen's
page, finding an item, notice, form, materials (e-licence, scan, promise), review, rating,
help, elder mode, language switches, back and timeouts on every step."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
from visit_doubles import Card

from config.texts import Texts
from govplatform.catalogue import load_catalogue
from kiosk import materials
from kiosk.catalogue import Catalogue
from kiosk.view import ITEM_STEPS
from kiosk.visit import InvalidTransition, Receipt, Step, Timing, Visit

JPEG = b"\xff\xd8\xff\xe0" + b"scanned-page" * 50
TODAY = datetime.date(2026, 11, 27)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.from_platform(load_catalogue())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent() -> list[tuple[str, dict[str, str], list[dict[str, str]]]]:
    return []


@pytest.fixture
def visit(catalogue: Catalogue, clock: Clock, sent: list) -> Visit:  # type: ignore[type-arg]
    def submit(session, service, answers):  # type: ignore[no-untyped-def]
        sent.append((service.id, answers, materials.for_application(service, session)))
        return Receipt("SQ20261127000001", delivered=True)

    return Visit(catalogue, Timing(60, 15, 90), clock=clock, today=lambda: TODAY, submitter=submit,
                 prefiller=lambda session, service: {"contact_phone": "13800138000"}, elder_age=60)


def identified(visit: Visit, card: Card | None = None) -> Card:
    card = card or Card()
    visit.start()
    visit.card_read(card)
    return card


def sample(field) -> str:  # type: ignore[no-untyped-def]
    """A well-formed value a citizen might type for a field of this type."""
    if field.choices:
        return field.choices[0][0]
    return {"date": "2026-12-01", "phone": "13800138000", "number": "1"}.get(field.type, "测试内容")


def advance(visit: Visit, until: Step) -> None:
    """Go through the item's steps as a citizen would: fill what the form still lacks, scan or
    promise what the materials step still needs, then on; at most a few rounds."""
    for _ in range(8):
        if visit.step is until:
            return
        if visit.step is Step.FORM:
            for f in visit.view().fields:
                if f.editable and f.required and not f.raw:
                    visit.correct(f.key, sample(f))
        if visit.step is Step.MATERIALS:
            for m in visit.view().materials:
                if m.required and not m.provided:
                    if m.promise_allowed:
                        visit.promise(m.id)
                    else:
                        visit.attach_scan(m.id, "image/jpeg", JPEG)
        if visit.step is Step.REVIEW:
            visit.confirm()
        else:
            visit.next()
    raise AssertionError(f"stuck on {visit.step.value}: {visit.view().message_key}")


def test_own_page_shows_benefits_and_applications_in_either_language(visit: Visit) -> None:
    identified(visit)
    assert visit.step is Step.HOME and visit.view().home.state == "loading"
    benefits = [{"id": "b1", "title": {"zh-CN": "高龄津贴", "en": "Old-age allowance"},
                 "reason": {"zh-CN": "年满80周岁", "en": "Aged 80+"}, "status": "granted_automatically"},
                {"id": "b2", "title": {"zh-CN": "养老服务补贴"}, "reason": {"zh-CN": "符合条件"},
                 "status": "eligible", "item_id": "elderly-allowance"}]
    apps = [{"receipt_number": "SQ20261101000007", "title": {"zh-CN": "新生儿出生一件事", "en": "Birth"},
             "status": "in_progress", "accepted_at": "2026-11-01T09:00:00Z"}]
    visit.home_loaded("someone-else", benefits, apps)  # an answer for another visit is dropped
    assert visit.view().home.state == "loading"
    visit.home_loaded(visit.session.visit_id, benefits, apps)
    home = visit.view().home
    assert home.state == "ready" and [b.title for b in home.benefits] == ["高龄津贴", "养老服务补贴"]
    assert home.applications[0].accepted_on == "2026-11-01" and home.applications[0].status == "in_progress"
    visit.set_language("en")
    assert visit.view().home.benefits[0].title == "Old-age allowance"
    assert visit.view().home.benefits[1].title == "养老服务补贴"  # no English given: the Chinese
    visit.choose(home.benefits[1].item_id)  # apply for an eligible benefit straight from the page
    assert visit.step is Step.NOTICE and visit.view().item.id == "elderly-allowance"


def test_own_page_unavailable_still_lets_the_citizen_go_on(visit: Visit) -> None:
    identified(visit)
    visit.home_unavailable(visit.session.visit_id)
    assert visit.view().home.state == "unavailable"
    visit.browse()
    assert visit.step is Step.CHOOSE and visit.view().home is None


def test_choose_by_category_life_event_and_search(visit: Visit) -> None:
    identified(visit)
    visit.browse()
    view = visit.view()
    kinds = {(k, v) for k, v, _ in view.filters}
    assert ("all", "") in kinds and ("category", "企业") in kinds and ("life_event", "出生") in kinds
    every = {sid for sid, _ in view.services}
    assert "newborn" in every and "application-progress" not in every  # lookups need their own flow
    visit.filter_services("category", "企业")
    assert {sid for sid, _ in visit.view().services} == {
        "enterprise-info-change", "transport-enterprise-start", "restaurant-start", "bankruptcy-info-check",
        "business-deregistration", "credit-repair", "utilities-connection"}
    visit.filter_services("life_event", "出生")
    assert [sid for sid, _ in visit.view().services] == ["newborn"]
    visit.filter_services("all")
    visit.search("社保卡")  # a word in the summary
    assert "social-security-card" in {sid for sid, _ in visit.view().services}
    visit.search("RETIREMENT")  # English, any case
    assert [sid for sid, _ in visit.view().services] == ["retirement"]
    visit.search("不存在的事项")
    assert visit.view().services == () and visit.view().message_key == "choose.no_match"
    visit.search("")
    assert {sid for sid, _ in visit.view().services} == every and visit.view().message_key is None
    with pytest.raises(InvalidTransition):
        visit.filter_services("colour", "red")


def test_a_whole_bundle_notice_form_materials_review_rating(visit: Visit, sent: list) -> None:  # type: ignore[type-arg]
    card = identified(visit)
    visit.session.licences = [{"type": "birth_certificate", "number": "N110000001", "title": {"zh-CN": "出生医学证明"}},
                              {"type": "household_register", "number": "H1"}]
    visit.browse()
    visit.choose("newborn")
    view = visit.view()
    assert view.step is Step.NOTICE and view.item.notice and len(view.item.steps) == 5
    assert view.item.departments[0] == "卫生健康委员会" and view.item.time_limit_days == 5
    assert view.position == (1, 4) and view.title_values["item"] == "新生儿出生一件事"
    visit.next()
    assert visit.step is Step.FORM and visit.session.notice_accepted
    fields = {f.key: f for f in visit.view().fields}
    assert fields["applicant_name"].value == "王芳" and not fields["applicant_name"].editable
    assert fields["contact_phone"].value == "13800138000" and fields["contact_phone"].source == "platform"
    assert fields["applicant_relation"].choices == (("father", "父亲"), ("mother", "母亲"))
    visit.next()  # required fields still empty
    assert visit.step is Step.FORM and visit.view().message_key == "form.missing"
    visit.correct("applicant_relation", "aunt")  # not one of the choices: not taken
    assert visit.session.answers["applicant_relation"] == ""
    assert {f.key: f.problem for f in visit.view().fields}["applicant_relation"] == "form.problem.choice"
    visit.correct("contact_phone", "12345")
    assert visit.session.answers["contact_phone"] == "13800138000"  # the good value stays
    visit.correct("baby_birth_date", "2026-02-30")
    assert {f.key: f.problem for f in visit.view().fields}["baby_birth_date"] == "form.problem.date"
    visit.correct("applicant_relation", "mother")
    assert {f.key: f.value for f in visit.view().fields}["applicant_relation"] == "母亲"  # its label
    for key, value in {"marital_status": "20", "baby_name": "王小宝", "baby_gender": "2",
                       "baby_birth_date": "2026-11-20", "birth_certificate_number": "N110000001",
                       "registration_address": "北京市东城区测试路2号"}.items():
        visit.correct(key, value)
    visit.next()
    view = visit.view()
    assert view.step is Step.MATERIALS and view.position == (3, 4)
    got = {m.id: m for m in view.materials}
    assert got["birth_certificate"].provided == "e_licence" and got["birth_certificate"].licence_title == "出生医学证明"
    assert got["parents_id"].provided == "e_licence"  # the ID card just read
    assert got["marriage_certificate"].provided == "" and got["marriage_certificate"].commitment
    with pytest.raises(InvalidTransition, match="cannot be promised"):
        visit.promise("birth_certificate")
    visit.promise("marriage_certificate")
    visit.scan("baby_photo")
    assert visit.view().scanning == "baby_photo"
    visit.attach_scan("baby_photo", "image/jpeg", JPEG)
    assert {m.id: m.provided for m in visit.view().materials} == {
        "birth_certificate": "e_licence", "parents_id": "e_licence", "household_register": "e_licence",
        "marriage_certificate": "promise", "baby_photo": "scan"}
    visit.next()
    view = visit.view()
    assert view.step is Step.REVIEW and len(view.fields) == 12 and len(view.materials) == 5
    visit.set_language("en")  # switching language on the last step keeps everything
    assert visit.view().item.title == "Birth of a child (one-stop)" and visit.session.answers["baby_name"] == "王小宝"
    visit.confirm()
    assert visit.step is Step.FINISH
    item, answers, given = sent[0]
    assert item == "newborn" and answers["applicant_relation"] == "mother"
    assert {m["id"]: m["provided"] for m in given} == {
        "birth_certificate": "e_licence", "parents_id": "e_licence", "household_register": "e_licence",
        "marriage_certificate": "promise", "baby_photo": "scan"}
    visit.finish()
    assert visit.step is Step.RATING and card.wiped and visit.session.scans == {}
    assert visit.session.service_id == "newborn"  # only what the rating names


def test_nothing_is_promised_on_the_citizens_behalf(visit: Visit) -> None:
    identified(visit)
    visit.choose("retirement")
    visit.next()
    for f in visit.view().fields:
        if f.editable and f.required and not f.raw:
            visit.correct(f.key, sample(f))
    assert {f.key: f.raw for f in visit.view().fields}["gender"] == "2"  # 女 on the card
    visit.next()
    visit.next()  # personnel_file may be promised, social_security_card e-licence not held
    view = visit.view()
    assert view.step is Step.MATERIALS and view.message_key == "materials.missing"
    assert "社会保障卡" in view.message_values["materials"] and "人事档案" in view.message_values["materials"]
    visit.promise("personnel_file")
    visit.withdraw_promise("personnel_file")
    assert {m.id: m.provided for m in visit.view().materials}["personnel_file"] == ""


def test_rating_is_passed_on_then_the_visit_ends_with_thanks(catalogue: Catalogue, clock: Clock) -> None:
    rated = []
    v = Visit(catalogue, clock=clock, submitter=lambda *a: Receipt("SQ20261127000002", True),
              rater=lambda level, receipt, item, vid: rated.append((level, receipt.number, item)))
    identified(v)
    v.choose("social-insurance-record")
    advance(v, Step.FINISH)
    v.card_removed()  # taking the card leads to the rating
    with pytest.raises(InvalidTransition):
        v.rate(6)
    v.rate(5)
    assert rated == [(5, "SQ20261127000002", "social-insurance-record")]
    assert v.step is Step.ATTRACT and v.view().message_key == "rating.thanks" and v.session.is_empty


def test_a_failing_rater_never_keeps_the_citizen(catalogue: Catalogue, clock: Clock) -> None:
    def broken(*_a):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    v = Visit(catalogue, clock=clock, submitter=lambda *a: Receipt("L1", False), rater=broken)
    identified(v)
    v.choose("social-insurance-record")
    advance(v, Step.FINISH)
    v.finish()
    v.rate(1)
    assert v.step is Step.ATTRACT


def test_back_walks_the_item_steps_and_leaving_the_item_forgets_it(visit: Visit) -> None:
    identified(visit)
    visit.choose("newborn")
    visit.next()
    visit.correct("baby_name", "王小宝")
    visit.back()
    assert visit.step is Step.NOTICE and visit.session.answers["baby_name"] == "王小宝"
    visit.back()
    assert visit.step is Step.CHOOSE and visit.session.answers == {} and visit.session.service_id is None


def identified_on(visit: Visit, step: Step, item: str = "newborn") -> Card:
    """A card read, then on to `step` as a citizen would get there."""
    card = identified(visit)
    if step is not Step.HOME:
        visit.browse()
    if step in ITEM_STEPS:
        visit.choose(item)
        advance(visit, step)
    if step is Step.RATING:
        visit.choose("social-insurance-record")
        advance(visit, Step.FINISH)
        visit.finish()
    assert visit.step is step
    return card


@pytest.mark.parametrize("step", [Step.HOME, Step.CHOOSE, *ITEM_STEPS, Step.RATING])
def test_every_step_warns_then_wipes_when_left_alone(visit: Visit, clock: Clock, step: Step) -> None:
    card = identified_on(visit, step, "social-security-card")
    clock.now += 60
    visit.tick()
    assert visit.view().warning_seconds == 15 and visit.step is step
    clock.now += 15
    visit.tick()
    assert visit.step is Step.ATTRACT and card.wiped and visit.session.is_empty


@pytest.mark.parametrize("step", [Step.HOME, Step.CHOOSE, *ITEM_STEPS])
def test_cancel_on_every_step_wipes(visit: Visit, step: Step) -> None:
    card = identified_on(visit, step)
    visit.cancel()
    assert visit.step is Step.ATTRACT and card.wiped and visit.session.is_empty


def test_help_is_on_every_step_and_late_answers_are_dropped(visit: Visit) -> None:
    visit.help()  # even on the attract screen
    assert visit.view().help.state == "calling"
    visit.help_failed(visit.session.visit_id, "12345")
    assert visit.view().help.state == "failed" and visit.view().help.hotline == "12345"
    visit.close_help()
    identified(visit)
    visit.help()
    old = visit.session.visit_id
    visit.help_answered(old, "ZX20261127000001", "12345")
    assert visit.view().help.ticket == "ZX20261127000001" and visit.step is Step.HOME
    visit.cancel()
    assert visit.view().help is None
    visit.help_answered(old, "ZX2", "12345")  # the citizen has gone
    assert visit.view().help is None


def test_elder_mode_by_age_by_touch_and_reset(visit: Visit) -> None:
    identified(visit, Card(birth_date=datetime.date(1960, 11, 27)))  # 66 today
    assert visit.view().elder
    visit.toggle_elder()
    assert not visit.view().elder
    visit.cancel()
    identified(visit, Card(birth_date=datetime.date(1966, 11, 28)))  # 59 until tomorrow
    assert not visit.view().elder
    visit.toggle_elder()
    assert visit.view().elder
    visit.cancel()
    assert not visit.elder  # the next citizen starts in standard mode


def test_scanner_out_means_no_scan_button(visit: Visit) -> None:
    identified(visit)
    visit.choose("social-security-card")
    visit.set_equipment((), frozenset(), can_scan=False)
    advance(visit, Step.MATERIALS)
    assert not any(m.can_scan for m in visit.view().materials)
    with pytest.raises(InvalidTransition, match="no usable scanner"):
        visit.scan("photo")
    visit.set_equipment((), frozenset(), can_scan=True)
    visit.scan("photo")
    visit.scan_failed("photo", "materials.scan_problem.blurred")
    assert visit.view().message_key == "materials.scan_problem.blurred" and visit.view().scanning is None


def test_every_text_a_view_can_name_exists_in_both_languages(catalogue: Catalogue) -> None:
    texts = Texts.load()
    keys = set(texts.keys())
    for step in Step:
        assert f"{step.value}.title" in keys and f"{step.value}.prompt" in keys
    for kind in ("required", "text", "date", "phone", "number", "choice"):
        assert f"form.problem.{kind}" in keys
    for level in (1, 2, 3, 4, 5):
        assert f"rating.level.{level}" in keys
    from devices.scanner.interface import Phase
    for phase in Phase:
        if phase.value not in ("starting", "scanning", "processing", "done"):
            assert f"materials.scan_problem.{phase.value}" in keys
    for key in keys:
        assert texts.get(key, "en") != texts.get(key, "zh-CN") or key in ("attract.language",), key


def test_the_cards_newer_address_is_the_one_on_the_form() -> None:
    from kiosk.catalogue import Field

    field = Field("address", {"zh-CN": "住址"}, "identity.address")

    @dataclass
    class Moved:
        address: str = "北京市东城区旧址1号"
        appended_address: str = "北京市西城区新址2号"

    assert field.prefill(Moved()) == "北京市西城区新址2号"
    assert field.prefill(Moved(appended_address="")) == "北京市东城区旧址1号"
