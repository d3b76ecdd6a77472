"""The visit state machine: every transition, the idle timeout and the wipe, without Kivy."""
from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass

import pytest

from kiosk import privacy
from kiosk.catalogue import Catalogue
from kiosk.visit import InvalidTransition, Receipt, Step, SubmissionRefused, SubmitError, Timing, Visit


@dataclass
class FakeIdentity:
    """Unit-test stand-in for devices.idcard's IdentityCard (same duck type)."""

    name: str = "赵六"
    id_number: str = "11010519491231002X"
    address: str = "北京市东城区测试路1号"
    problem: str | None = None
    wiped: bool = False

    def validity_problem(self, today: datetime.date) -> str | None:
        return self.problem

    def wipe(self) -> None:
        self.name = self.id_number = self.address = ""
        self.wiped = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def visit(clock: Clock) -> Visit:
    return Visit(Catalogue.load(), Timing(60, 15, 90), clock=clock)


def to_form(visit: Visit, identity: FakeIdentity | None = None, service: str = "social-insurance-record") -> FakeIdentity:
    identity = identity or FakeIdentity()
    visit.start()
    visit.card_read(identity)
    visit.browse()
    visit.choose(service)
    return identity


def to_review(visit: Visit, identity: FakeIdentity | None = None) -> FakeIdentity:
    identity = to_form(visit, identity)
    visit.next()  # the local catalogue's items have a form and no notice or materials
    assert visit.step is Step.REVIEW
    return identity


def test_starts_on_attract(visit: Visit) -> None:
    assert visit.step is Step.ATTRACT and visit.session.is_empty
    assert visit.view().title_key == "attract.title"


def test_full_visit_path(visit: Visit) -> None:
    seen: list[str] = []
    visit.subscribe(lambda v: seen.append(v.step.value))
    identity = to_review(visit)
    assert visit.view().fields[0].value == "赵六"  # prefilled from the card
    assert visit.view().fields[0].source == "card" and not visit.view().fields[0].editable
    assert visit.session.answers["id_number"] == "11010519491231002X"
    visit.confirm()
    assert visit.step is Step.FINISH
    visit.finish()
    assert visit.step is Step.ATTRACT and identity.wiped and visit.session.is_empty
    assert seen == ["identify", "home", "choose", "form", "review", "finish", "attract"]


def test_card_on_attract_starts_visit(visit: Visit) -> None:
    visit.card_read(FakeIdentity())
    assert visit.step is Step.HOME
    assert visit.view().title_values["name"] == "赵六"
    assert visit.view().home is not None and visit.view().home.state == "loading"


def test_expired_card_refused_and_wiped(visit: Visit) -> None:
    visit.start()
    card = FakeIdentity(problem="expired")
    visit.card_read(card)
    assert visit.step is Step.IDENTIFY and visit.view().message_key == "identify.expired"
    assert card.wiped and visit.session.identity is None


def test_invalid_card_refused(visit: Visit) -> None:
    visit.start()
    visit.card_read(FakeIdentity(problem="bad_id_number"))
    assert visit.view().message_key == "identify.invalid"


def test_read_failure_and_reader_offline_notices(visit: Visit) -> None:
    visit.start()
    visit.card_failed()
    assert visit.view().message_key == "identify.read_failed"
    visit.reader_offline()
    assert visit.view().message_key == "identify.reader_offline"


def test_back_and_cancel(visit: Visit) -> None:
    to_review(visit)
    visit.back()
    assert visit.step is Step.FORM and visit.session.answers  # one step back keeps the form
    visit.back()
    assert visit.step is Step.CHOOSE and visit.session.answers == {}
    visit.back()
    assert visit.step is Step.HOME and visit.session.identity is not None
    visit.back()
    assert visit.step is Step.ATTRACT and visit.session.identity is None
    to_review(visit)
    visit.cancel()
    assert visit.step is Step.ATTRACT and visit.session.is_empty
    visit.cancel()  # on attract: nothing happens
    assert visit.step is Step.ATTRACT


def test_card_fields_cannot_be_changed_and_unknown_fields_refused(visit: Visit) -> None:
    to_form(visit)
    with pytest.raises(InvalidTransition, match="ID card"):
        visit.correct("name", "赵六六")
    assert visit.session.answers["name"] == "赵六"
    with pytest.raises(InvalidTransition):
        visit.correct("salary", "1")


@pytest.mark.parametrize("action", ["choose", "confirm", "finish", "correct", "next", "browse", "rate",
                                    "promise", "scan", "filter_services", "search"])
def test_actions_on_wrong_step_raise(visit: Visit, action: str) -> None:
    args = {"choose": ("social-insurance-record",), "correct": ("name", "x"), "rate": (5,),
            "promise": ("x",), "scan": ("x",), "filter_services": ("all",), "search": ("x",)}.get(action, ())
    with pytest.raises(InvalidTransition):
        getattr(visit, action)(*args)


def test_start_twice_raises(visit: Visit) -> None:
    visit.start()
    with pytest.raises(InvalidTransition):
        visit.start()
    with pytest.raises(InvalidTransition):
        Visit(Catalogue.load()).back()


def test_card_read_mid_visit_ignored(visit: Visit) -> None:
    first = to_review(visit)
    visit.card_read(FakeIdentity(name="别人"))
    assert visit.step is Step.REVIEW and visit.session.identity is first


def test_idle_warning_then_wipe(visit: Visit, clock: Clock) -> None:
    identity = to_review(visit)
    clock.now += 59
    visit.tick()
    assert visit.view().warning_seconds is None
    clock.now += 1
    visit.tick()
    assert visit.view().warning_seconds == 15
    clock.now += 10
    visit.tick()
    assert visit.view().warning_seconds == 5 and visit.step is Step.REVIEW
    clock.now += 5
    visit.tick()
    assert visit.step is Step.ATTRACT and identity.wiped and visit.session.is_empty


def test_touch_during_warning_continues(visit: Visit, clock: Clock) -> None:
    to_review(visit)
    clock.now += 61
    visit.tick()
    assert visit.view().warning_seconds is not None
    visit.keep_alive()
    assert visit.view().warning_seconds is None
    clock.now += 30
    visit.tick()
    assert visit.step is Step.REVIEW


def test_identify_has_its_own_timeout(visit: Visit, clock: Clock) -> None:
    visit.start()
    clock.now += 80
    visit.tick()
    assert visit.view().warning_seconds is None
    clock.now += 10
    visit.tick()
    assert visit.view().warning_seconds == 15


def test_attract_never_times_out(visit: Visit, clock: Clock) -> None:
    clock.now += 10_000
    visit.tick()
    assert visit.step is Step.ATTRACT and visit.wipes == 0


def test_submission_paths(clock: Clock) -> None:
    calls = []

    def ok(session, service, answers):  # type: ignore[no-untyped-def]
        calls.append((service.id, answers["name"]))
        return Receipt("R-0001", delivered=True)

    v = Visit(Catalogue.load(), clock=clock, submitter=ok)
    to_review(v)
    v.confirm()
    assert v.step is Step.FINISH and v.view().receipt == "R-0001"
    assert calls == [("social-insurance-record", "赵六")]
    v.finish()  # after a submission: the rating, with everything personal already gone
    assert v.step is Step.RATING and v.session.identity is None and v.session.answers == {}

    def down(session, service, answers):  # type: ignore[no-untyped-def]
        raise SubmitError("platform unreachable")

    v = Visit(Catalogue.load(), clock=clock, submitter=lambda *a: Receipt("L-1", delivered=False))
    to_review(v)
    v.confirm()
    assert v.view().receipt == "L-1" and v.view().message_key == "finish.queued"

    v = Visit(Catalogue.load(), clock=clock, submitter=down)
    to_review(v)
    v.confirm()
    assert v.step is Step.FINISH and v.view().message_key == "finish.not_submitted"
    assert v.view().receipt is None

    def refused(session, service, answers):  # type: ignore[no-untyped-def]
        raise SubmissionRefused("platform refused (422 validation): answers.period: required")

    v = Visit(Catalogue.load(), clock=clock, submitter=refused)
    to_review(v)
    v.confirm()
    view = v.view()
    assert view.message_key == "finish.refused" and view.title_key == "finish.not_submitted_title"
    assert view.receipt is None


def test_no_platform_is_said_plainly(visit: Visit) -> None:
    to_review(visit)
    visit.confirm()
    assert visit.view().message_key == "finish.not_submitted"


def test_card_removed_on_finish_wipes(visit: Visit) -> None:
    to_review(visit)
    visit.confirm()
    visit.card_removed()
    assert visit.step is Step.ATTRACT and visit.session.is_empty


def test_card_removed_after_a_submission_asks_for_a_rating(clock: Clock) -> None:
    v = Visit(Catalogue.load(), clock=clock, submitter=lambda *a: Receipt("R-9", True))
    identity = to_review(v)
    v.confirm()
    v.card_removed()
    assert v.step is Step.RATING and identity.wiped and v.session.identity is None


def test_wipe_with_card_left_asks_to_take_it(visit: Visit, clock: Clock) -> None:
    to_review(visit)
    clock.now += 100
    visit.tick()
    clock.now += 100
    visit.tick()
    assert visit.step is Step.ATTRACT and visit.view().message_key == "card.take_back"


def test_language_switch_keeps_the_visit_and_resets_after(visit: Visit) -> None:
    to_review(visit)
    visit.set_language("en")
    view = visit.view()
    assert view.step is Step.REVIEW and view.language == "en" and view.fields[0].label == "Name"
    visit.cancel()
    assert visit.language == "zh-CN"


def test_wipe_forgets_secrets_for_logging(visit: Visit) -> None:
    to_review(visit)
    assert "赵六" not in privacy.mask_text("赵六")
    visit.cancel()
    assert privacy.mask_text("赵六") == "赵六"


def test_session_repr_has_no_personal_data(visit: Visit) -> None:
    to_review(visit)
    assert "赵六" not in repr(visit.session) and "1101" not in repr(visit.session)


def test_kiosk_never_imports_kivy() -> None:
    import kiosk.scenario  # noqa: F401  the widest import of kiosk/
    import kiosk.terminal  # noqa: F401

    assert not any(m == "kivy" or m.startswith("kivy.") for m in sys.modules)


def test_new_service_needs_no_code(visit: Visit) -> None:
    extra = Catalogue.from_data([{"id": "new-one", "title": {"zh-CN": "新事项"},
                                  "fields": [{"key": "n", "label": {"zh-CN": "姓名"},
                                              "source": "identity.name"}]}])
    visit.catalogue.add(extra.get("new-one"))
    visit.start()
    visit.card_read(FakeIdentity())
    visit.browse()
    assert ("new-one", "新事项") in visit.view().services
    visit.choose("new-one")
    assert [(f.key, f.label, f.value) for f in visit.view().fields] == [("n", "姓名", "赵六")]


def _platform_catalogue(version: str, *items: tuple[str, str]) -> Catalogue:
    return Catalogue.from_platform({"version": version, "items": [
        {"id": item_id, "kind": kind, "title": {"zh-CN": item_id}, "form": [], "materials": []}
        for item_id, kind in items]})


def test_choose_offers_only_what_a_visit_can_carry_out(visit: Visit) -> None:
    visit.catalogue = _platform_catalogue("v1", ("a-bundle", "bundle"), ("a-cert", "certificate"),
                                          ("progress", "lookup"), ("booking", "appointment"))
    visit.start()
    visit.card_read(FakeIdentity())
    visit.browse()
    assert [sid for sid, _ in visit.view().services] == ["a-bundle", "a-cert"]


def test_new_catalogue_waits_for_the_end_of_a_visit(visit: Visit) -> None:
    newer = _platform_catalogue("v2", ("only-new", "service"))
    to_review(visit)
    visit.replace_catalogue(newer)
    assert visit.catalogue is not newer  # the citizen's service does not change under them
    visit.confirm()
    visit.finish()
    assert visit.catalogue is newer and visit.catalogue.version == "v2"
    newest = _platform_catalogue("v3", ("x", "service"))
    visit.replace_catalogue(newest)  # nobody is being served: at once
    assert visit.catalogue is newest


def test_a_required_field_empty_keeps_the_citizen_on_the_form(clock: Clock) -> None:
    sent = []
    catalogue = Catalogue.from_platform({"version": "v1", "items": [{
        "id": "cert", "kind": "certificate", "title": {"zh-CN": "证明"}, "materials": [],
        "form": [{"key": "name", "label": {"zh-CN": "姓名"}, "source": "identity.name", "required": True},
                 {"key": "period", "label": {"zh-CN": "查询期间"}, "source": "", "required": True},
                 {"key": "note", "label": {"zh-CN": "备注"}, "source": "", "required": False}]}]})
    v = Visit(catalogue, clock=clock, submitter=lambda s, svc, a: sent.append(a) or Receipt("R-1", True))
    v.start()
    v.card_read(FakeIdentity())
    v.choose("cert")
    v.next()
    view = v.view()
    assert v.step is Step.FORM and view.message_key == "form.missing" and not sent
    assert view.message_values == {"field": "查询期间"}
    assert [f.problem for f in view.fields] == [None, "form.problem.required", None]  # said in words too
    v.correct("period", "12m")
    assert v.view().message_key is None
    v.next()
    v.confirm()
    assert v.step is Step.FINISH and sent == [{"name": "赵六", "period": "12m", "note": ""}]


def test_face_step_between_card_and_services(clock: Clock) -> None:
    v = Visit(Catalogue.load(), clock=clock, face_required=True)
    seen: list[tuple[str, str | None]] = []
    v.subscribe(lambda view: seen.append((view.step.value, view.message_key)))
    v.start()
    v.card_read(FakeIdentity())
    assert v.step is Step.FACE and v.view().title_key == "face.title"
    v.face_update("face.hint.closer")
    v.face_update("face.hint.closer")  # said once, not once per frame
    v.face_update("face.challenge.turn_left")
    evidence = {"method": "card_photo_1to1", "passed": True, "score": 0.61}
    v.face_passed(evidence)
    assert v.step is Step.HOME and v.session.face_check == evidence
    assert seen == [("identify", None), ("face", None), ("face", "face.hint.closer"),
                    ("face", "face.challenge.turn_left"), ("home", None)]
    v.cancel()
    assert v.session.face_check is None and v.session.is_empty


def test_face_failure_ends_calmly_and_late_results_are_ignored(clock: Clock) -> None:
    v = Visit(Catalogue.load(), clock=clock, face_required=True)
    v.start()
    v.card_read(FakeIdentity())
    v.face_failed("face.failed.liveness")
    view = v.view()
    assert view.step is Step.FINISH and view.title_key == "face.failed_title"
    assert view.message_key == "face.failed.liveness" and view.receipt is None
    v.face_passed({"passed": True})  # a result arriving after the step ended changes nothing
    assert v.step is Step.FINISH and v.session.face_check is None
    v.card_removed()
    assert v.step is Step.ATTRACT


# -- scanned paper materials (materials step) -----------------------------------------------------------
JPEG = b"\xff\xd8\xff\xe0" + b"page-one" * 64
PDF = b"%PDF-1.3\n" + b"page-two" * 64


def _with_materials(clock: Clock, **kwargs: object) -> Visit:
    catalogue = Catalogue.from_platform({"version": "v1", "items": [{
        "id": "with-paper", "kind": "service", "title": {"zh-CN": "要材料的事项"},
        "form": [{"key": "name", "label": {"zh-CN": "姓名"}, "source": "identity.name", "required": True}],
        "materials": [
            {"id": "household_register", "title": {"zh-CN": "户口簿"}, "e_licence": None,
             "promise_allowed": False, "required": True},
            {"id": "photo", "title": {"zh-CN": "照片"}, "e_licence": None, "promise_allowed": True, "required": True},
        ]}]})
    v = Visit(catalogue, clock=clock, **kwargs)  # type: ignore[arg-type]
    v.start()
    v.card_read(FakeIdentity())
    v.choose("with-paper")  # straight from the citizen's page (a benefit's item) works too
    v.next()
    assert v.step is Step.MATERIALS
    return v


def test_attach_replace_and_detach_scans(clock: Clock) -> None:
    v = _with_materials(clock)
    seen: list[tuple[str, tuple[str, ...]]] = []
    v.subscribe(lambda view: seen.append((view.reason, view.scanned)))
    assert v.view().scanned == ()
    v.attach_scan("photo", "image/jpeg", JPEG)
    v.attach_scan("household_register", "application/pdf", PDF)
    assert v.view().scanned == ("household_register", "photo")  # in the service's order
    first = v.session.scans["photo"].data
    v.attach_scan("photo", "image/jpeg", JPEG + b"again")  # scanned again: replaces, the first is wiped
    assert bytes(v.session.scans["photo"].data) == JPEG + b"again"
    assert first == bytes(len(JPEG))
    held = v.session.scans["household_register"].data
    v.detach_scan("household_register")
    assert held == bytes(len(PDF)) and "household_register" not in v.session.scans
    v.detach_scan("household_register")  # a double tap changes nothing
    assert seen == [("scan_attached", ("photo",)), ("scan_attached", ("household_register", "photo")),
                    ("scan_attached", ("household_register", "photo")), ("scan_detached", ("photo",))]
    assert v.step is Step.MATERIALS


def test_scans_only_for_the_chosen_service_and_on_the_materials_step(clock: Clock) -> None:
    v = _with_materials(clock)
    with pytest.raises(InvalidTransition, match="asks for no material"):
        v.attach_scan("driving_licence", "image/jpeg", JPEG)
    with pytest.raises(InvalidTransition, match="asks for no material"):
        v.detach_scan("driving_licence")
    v.back()
    with pytest.raises(InvalidTransition, match="only on materials"):
        v.attach_scan("photo", "image/jpeg", JPEG)
    assert v.view().scanned == ()


@pytest.mark.parametrize(("media_type", "data", "says"), [
    ("image/gif", b"GIF89a....", "cannot be sent"),
    ("image/jpeg", b"", "empty"),
    ("application/pdf", JPEG, "not application/pdf"),
    ("image/jpeg", b"\xff\xd8\xff" + bytes(1024 * 1024), "more than the platform accepts"),
])
def test_a_scan_the_platform_would_refuse_is_refused_now(clock: Clock, media_type: str, data: bytes,
                                                         says: str) -> None:
    from kiosk.session import ScanError

    v = _with_materials(clock)
    with pytest.raises(ScanError, match=says):
        v.attach_scan("photo", media_type, data)
    assert v.session.scans == {} and v.view().scanned == ()


def test_scans_are_overwritten_at_the_end_of_the_visit(clock: Clock) -> None:
    sent: list[dict[str, str]] = []
    v = _with_materials(clock, submitter=lambda s, svc, a: sent.append(
        {k: bytes(scan.data).decode("latin-1")[:4] for k, scan in s.scans.items()}) or Receipt("R-1", True))
    v.attach_scan("photo", "image/jpeg", bytearray(JPEG))
    v.attach_scan("household_register", "application/pdf", PDF)
    buffers = [scan.data for scan in v.session.scans.values()]
    assert "page-one" not in repr(v.session.scans) and "bytes" in repr(v.session.scans["photo"])
    v.next()
    v.confirm()
    assert sent == [{"photo": "\xff\xd8\xff\xe0", "household_register": "%PDF"}]  # the submitter saw them
    v.finish()
    assert v.step is Step.RATING  # nothing personal is kept for the rating
    assert all(buf == bytes(len(buf)) and len(buf) for buf in buffers)  # overwritten in place
    assert v.session.identity is None and v.session.scans == {}
    v.finish()  # no rating given
    assert v.step is Step.ATTRACT and v.session.is_empty


def test_timeout_on_materials_wipes_the_scans(clock: Clock) -> None:
    v = _with_materials(clock)
    v.attach_scan("photo", "image/jpeg", JPEG)
    buffer = v.session.scans["photo"].data
    clock.now += 200
    v.tick()
    clock.now += 200
    v.tick()
    assert v.step is Step.ATTRACT and buffer == bytes(len(JPEG)) and v.session.is_empty


# -- the social security card ----------------------------------------------------------------------
def test_a_social_security_card_with_a_photo_goes_to_the_face_check(clock: Clock) -> None:
    from devices.smartcard.holder import SocialSecurityCard

    v = Visit(Catalogue.load(), clock=clock, face_required=True, today=lambda: datetime.date(2026, 11, 27))
    v.start()
    v.card_read(SocialSecurityCard(id_number="110101199003070011", name="张三", gender_code="1",
                                   birth_date=datetime.date(1990, 3, 7), photo_bmp=b"\xff\xd8\xff photo"))
    assert v.step is Step.FACE and v.session.identity.card_type == "social_security"


def test_a_social_security_card_without_a_photo_asks_for_the_id_card_and_is_wiped(clock: Clock) -> None:
    from devices.smartcard.holder import SocialSecurityCard

    v = Visit(Catalogue.load(), clock=clock, face_required=True, today=lambda: datetime.date(2026, 11, 27))
    v.start()
    card = SocialSecurityCard(id_number="110101196004120056", name="李四", gender_code="1",
                              birth_date=datetime.date(1960, 4, 12))
    v.card_read(card)
    view = v.view()
    assert view.step is Step.IDENTIFY and view.message_key == "identify.no_photo"
    assert card.name == "" and card.id_number == "" and v.session.identity is None


def test_identify_asks_for_either_card_when_the_terminal_has_a_smart_card_reader(visit: Visit) -> None:
    visit.start()
    assert (visit.view().title_key, visit.view().prompt_key) == ("identify.title", "identify.prompt")
    visit.card_kinds = frozenset({"idcard", "smartcard"})
    assert (visit.view().title_key, visit.view().prompt_key) == ("identify.title_with_ssc", "identify.prompt_with_ssc")
