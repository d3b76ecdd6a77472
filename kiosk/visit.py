"""A visit as a plain-Python state machine, with idle handling and the wipe.

The screens only render `View`s and forward touches; device threads forward card
events. Time comes from an injected clock, so timeouts are tested (and scenarios
played) without waiting, and nothing here knows about Kivy.
"""
from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from kiosk import materials as material_rules
from kiosk.catalogue import Catalogue, CatalogueError, Service, text_in
from kiosk.session import Scan, Session
from kiosk.view import (
    ITEM_STEPS,
    Application,
    Benefit,
    FieldView,
    Handout,
    HelpCall,
    Home,
    ItemInfo,
    MaterialView,
    Step,
    View,
)

log = logging.getLogger(__name__)


class InvalidTransition(RuntimeError):
    """An action that the current step does not offer (a screen or scenario bug)."""


class HelpNotAllowed(RuntimeError):
    """The help desk asked to move the visit to a step it may not go to now; `str()` says why."""


class SubmitError(Exception):
    """The application could not be handed to the platform."""


class SubmissionRefused(SubmitError):
    """The platform looked at the application and refused it; sending it again will not help."""


@dataclass(frozen=True)
class Receipt:
    number: str
    delivered: bool  # False: safely queued on the terminal, delivered when the platform is back


class Prefiller(Protocol):
    def __call__(self, session: Session, service: Service) -> dict[str, str]:
        """Values the state already holds for this service's form (beyond the card)."""


class Submitter(Protocol):
    def __call__(self, session: Session, service: Service, answers: dict[str, str]) -> Receipt:
        """Hand the application over (or queue it durably); raise SubmitError if neither."""


class Rater(Protocol):
    def __call__(self, level: int, receipt: Receipt | None, item_id: str | None, visit_id: str) -> None:
        """Pass the citizen's rating on (queued durably; never raises for a network fault)."""


@dataclass(frozen=True)
class Timing:
    idle_timeout_s: float = 60.0
    idle_warning_s: float = 15.0
    identify_timeout_s: float = 90.0


Listener = Callable[[View], None]

_TITLES = {step: (f"{step.value}.title", f"{step.value}.prompt") for step in Step}
MAX_HELP_MESSAGES = 5  # staff messages a help call keeps for the panel
RATING_LEVELS = (5, 4, 3, 2, 1)  # 非常满意 .. 非常不满意, best first as on every 好差评 form
_SOURCES = {"identity": "card"}  # a field's source prefix -> who filled it, as the screen says it


class Visit:
    """The state machine of one terminal: attract -> identify -> home -> choose -> notice -> form
    -> materials -> review -> finish -> rating -> attract."""

    def __init__(self, catalogue: Catalogue, timing: Timing = Timing(), *,
                 clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], datetime.date] = datetime.date.today,
                 submitter: Submitter | None = None, prefiller: Prefiller | None = None,
                 rater: Rater | None = None, language: str = "zh-CN", face_required: bool = False,
                 elder_age: int = 0) -> None:
        self.catalogue = catalogue
        self.timing = timing
        self.clock = clock
        self.today = today
        self.submitter = submitter
        self.prefiller = prefiller
        self.rater = rater
        self.face_required = face_required  # the card's holder must be verified by face first
        self.elder_age = elder_age  # elder mode turns on by itself from this age (0: never)
        # the kinds of card reader the terminal has ("idcard", "smartcard"): what identify asks for
        self.card_kinds: frozenset[str] = frozenset({"idcard"})
        self.default_language = language
        self.language = language
        self.voice_on = True
        self.elder = False
        self.session = Session()
        self.step = Step.ATTRACT
        self.card_present = False
        self._message: str | None = None
        self._message_values: dict[str, str] = {}
        self._receipt: Receipt | None = None
        self._rated: int | None = None
        self._next_catalogue: Catalogue | None = None
        self._handout: Handout | None = None
        self._home: tuple[str, list[dict[str, Any]], list[dict[str, Any]]] | None = None  # state, platform data
        self._can_scan = True  # a usable scanner: paper materials can be scanned here
        self._filter: tuple[str, str] = ("all", "")
        self._query = ""
        self._field_problem: tuple[str, str] | None = None  # (field key, text key)
        self._scanning: str | None = None
        self._help: HelpCall | None = None
        self._reached: set[Step] = set()  # the chosen item's steps the citizen has been on
        # equipment the terminal reports as unusable: notice keys, and service kinds not offered
        self._notices: tuple[str, ...] = ()
        self._unavailable_kinds: frozenset[str] = frozenset()
        self._warning_deadline: float | None = None
        self._last_activity = clock()
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.wipes = 0

    # -- observation -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def service(self) -> Service | None:
        """The item the citizen chose, while they handle it."""
        sid = self.session.service_id
        return self.catalogue.get(sid) if sid else None

    def view(self, reason: str = "") -> View:
        with self._lock:
            lang = self.language
            title_key, prompt_key = _TITLES[self.step]
            if self.step is Step.IDENTIFY and "smartcard" in self.card_kinds:
                title_key, prompt_key = "identify.title_with_ssc", "identify.prompt_with_ssc"
            if self.step is Step.FINISH and self._message in ("finish.not_submitted", "finish.refused"):
                title_key, prompt_key = "finish.not_submitted_title", self._message
            elif self.step is Step.FINISH and (self._message or "").startswith("face.failed"):
                title_key, prompt_key = "face.failed_title", self._message
            values: dict[str, str] = {}
            if self.step in (Step.HOME, Step.CHOOSE):
                values["name"] = getattr(self.session.identity, "name", "") or ""
            service = self.service if self.step in ITEM_STEPS else None
            if service is not None:
                values["item"] = service.title_in(lang)
            warning = None
            if self._warning_deadline is not None:
                warning = max(0, int(round(self._warning_deadline - self.clock())))
            return View(
                self.step, lang, title_key, prompt_key, values, self._message, dict(self._message_values),
                services=self._services_shown() if self.step is Step.CHOOSE else (),
                fields=self._fields(service) if service and self.step in (Step.FORM, Step.REVIEW) else (),
                warning_seconds=warning,
                receipt=self._receipt.number if self._receipt else None,
                reason=reason,
                handout=self._handout if self.step in (Step.FINISH, Step.TICKET) else None,
                notices=self._notices if self.step in (Step.HOME, Step.CHOOSE) else (),
                voice_on=self.voice_on, elder=self.elder,
                home=self._home_view() if self.step is Step.HOME else None,
                filters=self._filters() if self.step is Step.CHOOSE else (),
                active_filter=self._filter, query=self._query,
                item=self._item_info(service) if service else None,
                materials=self._materials(service) if service and self.step in (Step.MATERIALS, Step.REVIEW) else (),
                scanning=self._scanning if self.step is Step.MATERIALS else None,
                help=self._help, rated=self._rated,
                position=self._position(service) if service else (0, 0))

    # -- what the views hold -----------------------------------------------------------------
    def _offered(self) -> list[Service]:
        return [s for s in self.catalogue.services() if s.kind not in self._unavailable_kinds]

    def _services_shown(self) -> tuple[tuple[str, str], ...]:
        kind, value = self._filter
        shown = []
        for s in self._offered():
            if kind == "category" and s.category != value or kind == "life_event" and s.life_event != value:
                continue
            if self._query and not s.matches(self._query):
                continue
            shown.append((s.id, s.title_in(self.language)))
        return tuple(shown)

    def _filters(self) -> tuple[tuple[str, str, str], ...]:
        """"All", then every category, then every life event the offered items have, in order."""
        out: list[tuple[str, str, str]] = [("all", "", "")]
        for kind in ("category", "life_event"):
            for s in self._offered():
                value = getattr(s, kind)
                if value and (kind, value) not in {(k, v) for k, v, _ in out}:
                    out.append((kind, value, value))
        return tuple(out)

    def _home_view(self) -> Home | None:
        if self._home is None:
            return None
        lang = self.language
        state, benefits, applications = self._home
        return Home(state,
                    tuple(Benefit(text_in(b.get("title"), lang), text_in(b.get("reason"), lang),
                                  str(b.get("status", "")), b.get("item_id")) for b in benefits),
                    tuple(Application(str(a.get("receipt_number", "")), text_in(a.get("title"), lang),
                                      str(a.get("status", "")), str(a.get("accepted_at", ""))[:10])
                          for a in applications))

    def _item_info(self, s: Service) -> ItemInfo:
        lang = self.language
        return ItemInfo(s.id, s.title_in(lang), text_in(s.summary, lang), text_in(s.notice, lang),
                        tuple(text_in(t, lang) for t in s.steps), tuple(text_in(t, lang) for t in s.departments),
                        s.time_limit_days, tuple(text_in(t, lang) for t in s.includes))

    def _fields(self, s: Service) -> tuple[FieldView, ...]:
        lang = self.language
        out = []
        for f in s.fields:
            raw = self.session.answers.get(f.key, "")
            problem = None
            if self._field_problem and self._field_problem[0] == f.key:
                problem = self._field_problem[1]
            elif self._message == "form.missing" and f.problem(raw) == "required":
                problem = "form.problem.required"
            prefix = f.source.split(".", 1)[0] if f.source else ""
            source = _SOURCES.get(prefix, "platform" if prefix and raw else "")
            out.append(FieldView(f.key, text_in(f.label, lang), f.shown(raw, lang), raw, f.type, f.required,
                                 f.can_change(raw), source, tuple((v, text_in(lbl, lang)) for v, lbl in f.choices),
                                 problem))
        return tuple(out)

    def _materials(self, s: Service) -> tuple[MaterialView, ...]:
        lang = self.language
        held = material_rules.held_licences(self.session)
        out = []
        for m in s.materials:
            licence = held.get(m.e_licence or "") if m.e_licence else None
            out.append(MaterialView(m.id, text_in(m.title, lang), m.required,
                                    material_rules.how_provided(m, self.session, held),
                                    text_in(licence.get("title"), lang) if licence and isinstance(
                                        licence.get("title"), dict) else ("" if licence is None else text_in(m.title, lang)),
                                    m.promise_allowed, text_in(m.commitment, lang), self._can_scan))
        return tuple(out)

    def _item_steps(self, s: Service) -> list[Step]:
        """The steps this item needs, in order: no notice, form or materials step when it has none."""
        steps = []
        if s.notice or s.steps:
            steps.append(Step.NOTICE)
        if s.fields:
            steps.append(Step.FORM)
        if s.materials:
            steps.append(Step.MATERIALS)
        steps.append(Step.REVIEW)
        return steps

    def _position(self, s: Service) -> tuple[int, int]:
        steps = self._item_steps(s)
        return (steps.index(self.step) + 1, len(steps)) if self.step in steps else (0, 0)

    # -- publishing -----------------------------------------------------------------------
    def _publish(self, reason: str) -> None:
        view = self.view(reason)
        log.info("visit %s: step %s (%s)", self.session.visit_id[:8], view.step.value, reason)
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("visit listener failed")

    def _touched(self, reason: str) -> None:
        """Something changed on the same step because of the citizen."""
        self._last_activity = self.clock()
        self._publish(reason)

    def _go(self, step: Step, reason: str, message: str | None = None, **values: str) -> None:
        self.step = step
        if step in ITEM_STEPS:
            self._reached.add(step)
        self._message = message
        self._message_values = values
        self._handout = None
        self._field_problem = None
        self._scanning = None
        self._warning_deadline = None
        self._last_activity = self.clock()
        self._publish(reason)

    def _require(self, *steps: Step) -> None:
        if self.step not in steps:
            allowed = ", ".join(s.value for s in steps)
            raise InvalidTransition(f"not possible on step {self.step.value} (only on {allowed})")

    def _identified(self, reason: str) -> None:
        """Card (and face) done: elder mode for older citizens, then their own page."""
        if self.elder_age and _age(getattr(self.session.identity, "birth_date", None), self.today()) >= self.elder_age:
            self.elder = True
        self._home = ("loading", [], [])
        self._go(Step.HOME, reason)

    # -- citizen actions -----------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._require(Step.ATTRACT)
            self.session = Session()
            self._go(Step.IDENTIFY, "start")

    def browse(self) -> None:
        """From their own page to the services (办理新业务)."""
        with self._lock:
            self._require(Step.HOME)
            self._go(Step.CHOOSE, "browse")

    def filter_services(self, kind: str, value: str = "") -> None:
        """Show the items of one category or life event ("all" shows every item)."""
        with self._lock:
            self._require(Step.CHOOSE)
            if kind not in ("all", "category", "life_event"):
                raise InvalidTransition(f"no filter of kind {kind!r} (all, category, life_event)")
            self._filter = (kind, value if kind != "all" else "")
            self._touched("filter")

    def search(self, query: str) -> None:
        """Search the items by words of their titles and summaries; "" shows them all again."""
        with self._lock:
            self._require(Step.CHOOSE)
            self._query = " ".join(query.split())[:40]
            self._message = "choose.no_match" if self._query and not self._services_shown() else None
            self._touched("search")

    def choose(self, service_id: str) -> None:
        """An item chosen on the choose step, or straight from a benefit on the citizen's page."""
        with self._lock:
            self._require(Step.CHOOSE, Step.HOME)
            try:
                service = self.catalogue.get(service_id)
            except CatalogueError as exc:
                raise InvalidTransition(str(exc)) from None
            if service.kind in self._unavailable_kinds:
                raise InvalidTransition(f"service {service_id!r} is not offered now (its printer is unusable)")
            self.session.drop_item()
            self._reached = set()
            self.session.service_id = service.id
            answers = {f.key: f.prefill(self.session.identity) for f in service.fields}
            if self.prefiller is not None:
                known = self.prefiller(self.session, service)
                answers.update({k: v for k, v in known.items() if k in answers and v and not answers[k]})
            for f in service.fields:
                self.session.set_answer(f.key, answers[f.key], personal=f.type != "choice")
            self._go(self._item_steps(service)[0], "choose")

    def next(self) -> None:
        """On to the next step of the item, once this one is complete: the notice accepted,
        the form's required fields filled and well-formed, every required material provided."""
        with self._lock:
            self._require(Step.NOTICE, Step.FORM, Step.MATERIALS)
            service = self.service
            assert service is not None
            if self.step is Step.NOTICE:
                self.session.notice_accepted = True
            elif self.step is Step.FORM:
                wrong = [(f, p) for f in service.fields if (p := f.problem(self.session.answers.get(f.key, "")))]
                if wrong:
                    log.info("form incomplete: %s", ", ".join(f.key for f, _ in wrong))
                    first, problem = wrong[0]
                    self._field_problem = None if problem == "required" else (first.key, f"form.problem.{first.type}")
                    self._message = "form.missing" if problem == "required" else "form.invalid"
                    self._message_values = {"field": text_in(first.label, self.language)}
                    self._touched("missing")
                    return
            elif self.step is Step.MATERIALS:
                lacking = material_rules.missing(service, self.session)
                if lacking:
                    log.info("materials missing: %s", ", ".join(m.id for m in lacking))
                    self._message = "materials.missing"
                    self._message_values = {"materials": "、".join(text_in(m.title, self.language) for m in lacking)}
                    self._touched("missing")
                    return
            steps = self._item_steps(service)
            self._go(steps[steps.index(self.step) + 1], "next")

    def correct(self, key: str, value: str) -> None:
        """The citizen corrects (or fills in) one field of the form. A value the platform would
        refuse is not taken: the field says what is wrong while the citizen is still here."""
        with self._lock:
            self._require(Step.FORM)
            service = self.service
            assert service is not None
            field = next((f for f in service.fields if f.key == key), None)
            if field is None:
                raise InvalidTransition(f"field {key!r} is not on this form")
            if not field.can_change(self.session.answers.get(key, "")):
                raise InvalidTransition(f"field {key!r} comes from the ID card and cannot be changed")
            value = value.strip()
            problem = field.problem(value) if value else None
            if problem:
                self._field_problem = (key, f"form.problem.{field.type}")
                self._touched("invalid")
                return
            self.session.set_answer(key, value, personal=field.type != "choice")
            self._field_problem = None
            self._message = None
            self._touched("correct")

    # -- materials --------------------------------------------------------------------------
    def _material(self, material_id: str) -> Any:
        self._require(Step.MATERIALS)
        service = self.service
        assert service is not None
        try:
            return service.material(material_id)
        except CatalogueError as exc:
            raise InvalidTransition(str(exc)) from None

    def promise(self, material_id: str) -> None:
        """The citizen agrees to the commitment text and hands this material in later (告知承诺)."""
        with self._lock:
            material = self._material(material_id)
            if not material.promise_allowed:
                raise InvalidTransition(f"material {material_id!r} cannot be promised for later")
            self.session.promises.add(material_id)
            self._message = None
            self._touched("promised")

    def withdraw_promise(self, material_id: str) -> None:
        with self._lock:
            self._material(material_id)
            self.session.promises.discard(material_id)
            self._touched("promise_withdrawn")

    def scan(self, material_id: str) -> None:
        """The citizen wants to scan the paper of this material: the terminal's scanner takes it
        (and calls attach_scan or scan_failed)."""
        with self._lock:
            self._material(material_id)
            if not self._can_scan:
                raise InvalidTransition("no usable scanner on this terminal")
            self._scanning = material_id
            self._message = None
            self._touched("scan")

    def scan_failed(self, material_id: str, message_key: str) -> None:
        """The scanner could not take a readable page: say why and how to try again."""
        with self._lock:
            if self.step is not Step.MATERIALS or self._scanning != material_id:
                return
            self._scanning = None
            self._message = message_key
            self._touched("scan_failed")

    def attach_scan(self, material_id: str, media_type: str, data: bytes | bytearray) -> None:
        """The paper of one material was scanned; a new scan replaces (and wipes) the earlier one.
        Raises InvalidTransition off the materials step or for a material the item does not ask
        for, ScanError for bytes the platform would refuse (scan again)."""
        with self._lock:
            self._material(material_id)
            scan = Scan.of(media_type, data)
            earlier = self.session.scans.pop(material_id, None)
            if earlier is not None:
                earlier.wipe()
            self.session.scans[material_id] = scan
            if self._scanning == material_id:
                self._scanning = None
            self._message = None
            self._touched("scan_attached")

    def detach_scan(self, material_id: str) -> None:
        """The citizen takes a scan back: its bytes are wiped now, not at the end of the visit.
        Detaching a material that has no scan changes nothing (a double tap)."""
        with self._lock:
            self._material(material_id)
            scan = self.session.scans.pop(material_id, None)
            self._last_activity = self.clock()
            if scan is not None:
                scan.wipe()
                self._publish("scan_detached")

    # -- submission ---------------------------------------------------------------------------
    def confirm(self) -> None:
        with self._lock:
            self._require(Step.REVIEW)
            service = self.service
            assert service is not None
            wrong = [f.key for f in service.fields if f.problem(self.session.answers.get(f.key, ""))]
            if wrong or material_rules.missing(service, self.session):
                # never a receipt for an application that is bound to be refused later
                log.info("confirm refused: incomplete (%s)", ", ".join(wrong) or "materials")
                self._message = "review.missing"
                self._touched("missing")
                return
            if self.submitter is None:
                log.warning("no platform client configured: application not submitted")
                self._receipt = None
                self._go(Step.FINISH, "not_submitted", "finish.not_submitted")
                return
            try:
                receipt = self.submitter(self.session, service, dict(self.session.answers))
            except SubmissionRefused as exc:
                log.warning("submission refused: %s", exc)
                self._receipt = None
                self._go(Step.FINISH, "refused", "finish.refused")
                return
            except SubmitError as exc:
                log.warning("submission failed: %s", exc)
                self._receipt = None
                self._go(Step.FINISH, "not_submitted", "finish.not_submitted")
                return
            self._receipt = receipt
            if receipt.delivered:
                self._go(Step.FINISH, "submitted")
            else:
                self._go(Step.FINISH, "queued", "finish.queued")

    def back(self) -> None:
        """One step back; leaving the item's first step gives the item up (its data wiped)."""
        with self._lock:
            if self.step in ITEM_STEPS:
                service = self.service
                assert service is not None
                steps = self._item_steps(service)
                at = steps.index(self.step)
                if at > 0:
                    self._go(steps[at - 1], "back")
                    return
                self.session.drop_item()
                self._go(Step.CHOOSE, "back")
            elif self.step is Step.CHOOSE:
                self._go(Step.HOME, "back")
            elif self.step in (Step.IDENTIFY, Step.FACE, Step.HOME):
                self.wipe("back")
            else:
                raise InvalidTransition(f"no way back from step {self.step.value}")

    def cancel(self) -> None:
        with self._lock:
            if self.step is not Step.ATTRACT:
                self.wipe("cancel")

    def finish(self) -> None:
        """The citizen is done with the finish screen: after a submission they are asked for a
        rating (with everything personal already wiped), otherwise the visit ends."""
        with self._lock:
            self._require(Step.FINISH, Step.TICKET, Step.RATING)
            if self.step is Step.FINISH and self._receipt is not None:
                self._to_rating("finished")
            else:
                self.wipe("finished")

    def _to_rating(self, reason: str) -> None:
        """Nothing personal is needed to rate: identity, answers and scans go now."""
        item_id = self.session.service_id
        visit_id = self.session.visit_id
        self.session.wipe()
        self.session = Session(visit_id=visit_id, service_id=item_id)
        self._home = None
        self._rated = None
        self._go(Step.RATING, reason)

    def rate(self, level: int) -> None:
        """好差评: 5 非常满意 .. 1 非常不满意. Passed on, then the visit ends with a thank-you."""
        with self._lock:
            self._require(Step.RATING)
            if level not in RATING_LEVELS:
                raise InvalidTransition(f"a rating is 1..5, not {level!r}")
            self._rated = level
            if self.rater is not None:
                try:
                    self.rater(level, self._receipt, self.session.service_id, self.session.visit_id)
                except Exception:
                    log.exception("the rating could not be passed on")
            self.wipe("rated", "rating.thanks")

    def keep_alive(self) -> None:
        """Any touch: the citizen is still there; clears an idle warning."""
        with self._lock:
            warned = self._warning_deadline is not None
            self._warning_deadline = None
            self._last_activity = self.clock()
            if warned:
                self._publish("continue")

    def repeat(self) -> None:
        """The citizen asks to hear the current prompt again (重听)."""
        with self._lock:
            self._touched("repeat")

    def toggle_voice(self) -> None:
        """The citizen silences the voice, or turns it back on, for this visit only."""
        with self._lock:
            self.voice_on = not self.voice_on
            self._touched("voice")

    def toggle_elder(self) -> None:
        """长辈模式 on or off, for this visit: larger type, more space, slower speech."""
        with self._lock:
            self.elder = not self.elder
            self._touched("elder")

    def set_language(self, language: str) -> None:
        with self._lock:
            self.language = language
            self._touched("language")

    # -- help (求助) ------------------------------------------------------------------------------
    # The citizen presses 求助; the terminal's HelpCalls worker queues the call at the help desk
    # (help_waiting, then the desk's staff drive it through the fleet agent) or, without the fleet
    # channel, asks the platform for a ticket (help_answered / help_failed). Every answer names the
    # visit or the call it belongs to and is dropped when that is over.
    def help(self) -> None:
        with self._lock:
            call = self._help
            if call is not None and call.state in ("waiting", "connected"):
                if call.minimized:  # the folded panel touched: open it again
                    self._help = replace(call, minimized=False)
                self._touched("help_again")
                return
            if call is not None and call.state in ("calling", "called"):
                self._touched("help_again")
                return
            self._help = HelpCall("calling")
            self._touched("help")

    def help_answered(self, visit_id: str, ticket: str, hotline: str) -> None:
        with self._lock:
            if self._help is None or self.session.visit_id != visit_id:
                return
            self._help = HelpCall("called", ticket, hotline)
            self._touched("help_answered")

    def help_failed(self, visit_id: str, hotline: str = "") -> None:
        with self._lock:
            if self._help is None or self.session.visit_id != visit_id:
                return
            self._help = HelpCall("failed", "", hotline)
            self._touched("help_failed")

    def _call(self, call_id: str, *states: str) -> HelpCall | None:
        """The current help call when it is `call_id` and in one of `states`, else None."""
        call = self._help
        if call is None or not call_id or call.call_id != call_id or call.state not in states:
            return None
        return call

    def help_waiting(self, visit_id: str, call_id: str) -> bool:
        """The help desk has the call in its queue. False when the citizen has gone or closed
        the panel meanwhile (the caller then tells the desk the call ended)."""
        with self._lock:
            if (self._help is None or self._help.state != "calling" or self.session.visit_id != visit_id
                    or not call_id):
                return False
            self._help = HelpCall("waiting", call_id=call_id)
            self._touched("help_waiting")
            return True

    def help_connected(self, call_id: str, staff: str) -> bool:
        """A staff member took the call: the citizen is asked whether staff may see their details."""
        with self._lock:
            call = self._call(call_id, "waiting", "connected")
            if call is None:
                return False
            self._help = replace(call, state="connected", staff=staff, consent="asked", minimized=False)
            self._touched("help_connected")
            return True

    def help_message(self, call_id: str, text: str) -> bool:
        """A staff message: shown (the last few) and spoken by the terminal."""
        with self._lock:
            call = self._call(call_id, "connected")
            if call is None:
                return False
            self._help = replace(call, messages=(call.messages + (text,))[-MAX_HELP_MESSAGES:])
            self._touched("help_message")
            return True

    def help_pointer(self, call_id: str, x: float, y: float) -> bool:
        """Staff point at a place of the screen (fractions from the top-left)."""
        with self._lock:
            call = self._call(call_id, "connected")
            if call is None:
                return False
            seq = call.pointer[2] + 1 if call.pointer else 1
            self._help = replace(call, pointer=(min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0), seq))
            self._touched("help_pointer")
            return True

    def ask_consent(self, call_id: str) -> bool:
        """Staff ask (again) to see the citizen's personal fields."""
        with self._lock:
            call = self._call(call_id, "connected")
            if call is None:
                return False
            self._help = replace(call, consent="asked", minimized=False)
            self._touched("help_consent")
            return True

    def give_consent(self, granted: bool) -> None:
        """The citizen's answer on screen: show my details to staff (True), or keep them masked."""
        with self._lock:
            call = self._help
            if call is None or call.state != "connected":
                raise InvalidTransition("no help call is connected: there is nothing to consent to")
            self._help = replace(call, consent="granted" if granted else "refused")
            self._touched("help_consent")

    def help_goto(self, call_id: str, step: Step) -> bool:
        """Staff move the visit to a step: the citizen's page or the services once identified, or
        a step of the chosen item the citizen has already been on. HelpNotAllowed otherwise."""
        with self._lock:
            if self._call(call_id, "connected") is None:
                return False
            identified = self.session.identity is not None and self.step in (Step.HOME, Step.CHOOSE, *ITEM_STEPS)
            if not identified:
                raise HelpNotAllowed(f"the visit is on step {self.step.value}: only an identified citizen's "
                                     "visit (their page, the services or an item) can be moved")
            if step in (Step.HOME, Step.CHOOSE):
                if self.step in ITEM_STEPS:  # leaving the item gives it up, as going back from it does
                    self.session.drop_item()
                    self._reached = set()
                self._go(step, "help_goto")
                return True
            service = self.service
            if step not in ITEM_STEPS or service is None or self.step not in ITEM_STEPS:
                raise HelpNotAllowed(f"step {step.value} cannot be reached from {self.step.value}: only home, "
                                     "choose, or a step of the chosen item already reached")
            if step not in self._item_steps(service) or step not in self._reached:
                raise HelpNotAllowed(f"the citizen has not reached step {step.value} of this item yet")
            self._go(step, "help_goto")
            return True

    def help_ended(self, call_id: str, reason_word: str = "") -> bool:
        """The help desk ended the call: the panel says so until the citizen closes it."""
        with self._lock:
            call = self._call(call_id, "waiting", "connected")
            if call is None:
                return False
            log.info("help call ended by the help desk (%s)", reason_word or "no reason")
            self._help = replace(call, state="ended", pointer=None, minimized=False)
            self._touched("help_ended")
            return True

    def end_help(self) -> None:
        """结束求助: the citizen ends the call (the fleet agent tells the help desk)."""
        with self._lock:
            call = self._help
            if call is None or call.state not in ("waiting", "connected"):
                raise InvalidTransition("no help call is waiting or connected")
            self._help = replace(call, state="ended", pointer=None, minimized=False)
            self._touched("help_ended_by_citizen")

    def minimize_help(self) -> None:
        """收起: the panel folds away; a waiting or connected call goes on."""
        with self._lock:
            call = self._help
            if call is None or call.state not in ("waiting", "connected"):
                raise InvalidTransition("only a waiting or connected help call can be folded away")
            if not call.minimized:
                self._help = replace(call, minimized=True)
                self._touched("help_minimized")

    def close_help(self) -> None:
        """The panel closes. A call still waiting or connected ends with it (the desk is told)."""
        with self._lock:
            if self._help is not None:
                self._help = None
                self._touched("help_closed")

    # -- the citizen's own page (filled by the terminal from the platform) -----------------------
    def home_loaded(self, visit_id: str, benefits: list[dict[str, Any]], applications: list[dict[str, Any]]) -> None:
        """The platform's answers (GET /v1/citizens/me/benefits and .../applications), kept as
        given so a language switch shows them in the other language."""
        with self._lock:
            if self.session.visit_id != visit_id or self._home is None:
                return
            self._home = ("ready", list(benefits), list(applications))
            if self.step is Step.HOME:
                self._publish("home")

    def home_unavailable(self, visit_id: str) -> None:
        """The platform could not be asked; an answer already shown is not taken back."""
        with self._lock:
            if self.session.visit_id != visit_id or self._home is None or self._home[0] == "ready":
                return
            self._home = ("unavailable", [], [])
            if self.step is Step.HOME:
                self._publish("home")

    # -- device events -------------------------------------------------------------------
    def card_read(self, identity: Any) -> None:
        """A card was read. On attract it starts a visit by itself; elsewhere it is ignored."""
        with self._lock:
            self.card_present = True
            if self.step not in (Step.ATTRACT, Step.IDENTIFY):
                log.info("card read on step %s ignored", self.step.value)
                return
            if self.step is Step.ATTRACT:
                self.session = Session()
            problem = identity.validity_problem(self.today()) if hasattr(identity, "validity_problem") else None
            if problem:
                log.info("card refused: %s", problem)
                key = "identify.expired" if problem == "expired" else "identify.invalid"
                if hasattr(identity, "wipe"):
                    identity.wipe()
                self._go(Step.IDENTIFY, "card_refused", key)
                return
            if self.face_required and not getattr(identity, "photo_bmp", None) and \
                    getattr(identity, "card_type", "") == "social_security":
                log.info("social security card without a photo: the face check cannot be made")
                identity.wipe()
                self._go(Step.IDENTIFY, "card_refused", "identify.no_photo")
                return
            self.session.set_identity(identity)
            if self.face_required:
                self._go(Step.FACE, "card")
            else:
                self._identified("card")

    # -- face verification (driven by the terminal's face worker) --------------------------
    def face_update(self, key: str | None) -> None:
        """What the citizen should do now (a positioning hint or a challenge); said once per change."""
        with self._lock:
            if self.step is not Step.FACE:
                return
            self._last_activity = self.clock()  # someone is in front of the camera
            if key != self._message:
                self._message = key
                self._publish("face")

    def face_passed(self, evidence: dict[str, Any]) -> None:
        with self._lock:
            if self.step is not Step.FACE:
                return
            self.session.face_check = evidence
            self._identified("face")

    def face_failed(self, reason_key: str) -> None:
        """No match, no liveness or no camera: a clear ending that sends the citizen to people."""
        with self._lock:
            if self.step is not Step.FACE:
                return
            self._receipt = None
            self._go(Step.FINISH, "face_failed", reason_key)

    def card_failed(self, message_key: str = "identify.read_failed") -> None:
        with self._lock:
            self.card_present = True
            if self.step in (Step.ATTRACT, Step.IDENTIFY):
                self._go(Step.IDENTIFY, "card_failed", message_key)

    def card_removed(self) -> None:
        """The card was taken: on the finish step that is the citizen leaving (rating, if they
        submitted, with nothing personal kept); while they handle an item it is only noted."""
        with self._lock:
            self.card_present = False
            if self.step is Step.FINISH:
                if self._receipt is not None:
                    self._to_rating("card_removed")
                else:
                    self.wipe("card_removed")

    def reader_offline(self, message_key: str = "identify.reader_offline") -> None:
        """A card reader went away: the identify screen says what the citizen can still do."""
        with self._lock:
            if self.step is Step.IDENTIFY:
                self._message = message_key
                self._publish("reader_offline")

    def readers_back(self, message_key: str | None) -> None:
        """A card reader came back: the identify notice says what is still out, or goes."""
        with self._lock:
            if self.step is Step.IDENTIFY and self._message in (
                    "identify.reader_offline", "identify.idcard_offline") and self._message != message_key:
                self._message = message_key
                self._publish("reader_back")

    # -- an appointment code on the attract screen (driven by the terminal's check-in) -----
    def code_refused(self, reason_key: str) -> None:
        """A code was held up that cannot be used here: say why, calmly, on the attract screen."""
        with self._lock:
            if self.step is not Step.ATTRACT:
                return
            self._message = reason_key
            self._publish("code_refused")

    def ticket_started(self) -> str:
        """A valid appointment code: the queue ticket is being fetched. Returns the visit id
        that the check-in's updates (`handout_changed`) must carry."""
        with self._lock:
            self._require(Step.ATTRACT)
            self.session = Session()
            self._go(Step.TICKET, "checkin")
            return self.session.visit_id

    # -- what the citizen takes away (driven by the terminal's print worker) ----------------
    def handout_changed(self, visit_id: str, handout: Handout) -> None:
        """Printing got further (or failed and another way is offered). Ignored when the visit
        it belongs to is over, so a slow printer never writes into the next citizen's screen."""
        with self._lock:
            if self.step not in (Step.FINISH, Step.TICKET) or self.session.visit_id != visit_id:
                return
            self._handout = handout
            self._last_activity = self.clock()
            self._publish("handout")

    def request_sms(self) -> None:
        """The citizen asks for the receipt by SMS (offered when paper failed)."""
        with self._lock:
            self._require(Step.FINISH)
            if self._handout is None or self._handout.sms not in ("offer", "failed"):
                raise InvalidTransition("no SMS is offered on this finish screen")
            self._handout = Handout(self._handout.message_key, self._handout.values, self._handout.qr, "sending")
            self._touched("sms")

    def set_equipment(self, notices: tuple[str, ...], unavailable_kinds: frozenset[str],
                      can_scan: bool = True) -> None:
        """What the terminal's devices allow now: told before a citizen chooses, so nobody
        starts a certificate that cannot be printed or expects a paper receipt that cannot come,
        and scanning is offered only with a scanner that works."""
        with self._lock:
            if (notices, unavailable_kinds, can_scan) == (self._notices, self._unavailable_kinds, self._can_scan):
                return
            self._notices, self._unavailable_kinds, self._can_scan = notices, unavailable_kinds, can_scan
            if self.step in (Step.HOME, Step.CHOOSE, Step.MATERIALS):
                self._publish("equipment")

    # -- time ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Called about once a second: idle warning, then the wipe."""
        with self._lock:
            if self.step is Step.ATTRACT:
                return
            now = self.clock()
            if self._warning_deadline is not None:
                if now >= self._warning_deadline:
                    self.wipe("timeout")
                else:
                    self._publish("warning")
                return
            limit = (self.timing.identify_timeout_s if self.step in (Step.IDENTIFY, Step.FACE)
                     else self.timing.idle_timeout_s)
            if now - self._last_activity >= limit:
                self._warning_deadline = now + self.timing.idle_warning_s
                if self.timing.idle_warning_s <= 0:
                    self.wipe("timeout")
                else:
                    self._publish("warning")

    def replace_catalogue(self, catalogue: Catalogue) -> None:
        """A newer catalogue from the platform: used at once when nobody is being served,
        otherwise from the next visit on, so a citizen's service never changes under them."""
        with self._lock:
            if self.step is Step.ATTRACT:
                self.catalogue, self._next_catalogue = catalogue, None
            else:
                self._next_catalogue = catalogue

    # -- the wipe ------------------------------------------------------------------------
    def wipe(self, reason: str, message: str | None = None) -> None:
        """End the visit: personal data overwritten and dropped, language reset, attract."""
        with self._lock:
            self.session.wipe()
            self.session = Session()
            if self._next_catalogue is not None:
                self.catalogue, self._next_catalogue = self._next_catalogue, None
            self._receipt = None
            self._handout = None
            self._home = None
            self._help = None
            self._reached = set()
            self._rated = None
            self._filter, self._query = ("all", ""), ""
            self.language = self.default_language
            self.voice_on = True  # the next citizen hears the prompts again
            self.elder = False
            self.wipes += 1
            if self.card_present:
                message = "card.take_back"
            self._go(Step.ATTRACT, reason, message)


def _age(birth: Any, today: datetime.date) -> int:
    """Full years since `birth` (a date or "YYYY-MM-DD"); 0 when unknown."""
    if isinstance(birth, str):
        try:
            birth = datetime.date.fromisoformat(birth)
        except ValueError:
            return 0
    if not isinstance(birth, datetime.date):
        return 0
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
