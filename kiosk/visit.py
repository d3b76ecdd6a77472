"""A visit as a plain-Python state machine, with idle handling and the wipe.

The screens only render `View`s and forward touches; device threads forward card
events. Time comes from an injected clock, so timeouts are tested (and scenarios
played) without waiting, and nothing here knows about Kivy.
"""
from __future__ import annotations

import datetime
import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from kiosk.catalogue import Catalogue, Service
from kiosk.session import Scan, Session

log = logging.getLogger(__name__)


class Step(str, enum.Enum):
    ATTRACT = "attract"
    IDENTIFY = "identify"
    FACE = "face"
    CHOOSE = "choose"
    REVIEW = "review"
    FINISH = "finish"
    TICKET = "ticket"  # 预约取号: an appointment code held up on the attract screen


class InvalidTransition(RuntimeError):
    """An action that the current step does not offer (a screen or scenario bug)."""


class SubmitError(Exception):
    """The application could not be handed to the platform."""


class SubmissionRefused(SubmitError):
    """The platform looked at the application and refused it; sending it again will not help."""


@dataclass(frozen=True)
class Receipt:
    number: str
    delivered: bool  # False: safely queued on the terminal, delivered when the platform is back


@dataclass(frozen=True)
class Handout:
    """What the citizen takes away on the finish step (a printed receipt or certificate), as
    far as it has got: shown on screen and spoken, updated by the terminal's print worker."""

    message_key: str  # e.g. "handout.printing", "handout.receipt_printed", "handout.paper_out"
    values: dict[str, str] = field(default_factory=dict)  # placeholders of the message
    qr: str | None = None  # a link shown as a QR code when paper failed (progress or verify page)
    sms: str = ""  # "" not offered, "offer", "sending", "sent", "failed"


class Prefiller(Protocol):
    def __call__(self, session: Session, service: Service) -> dict[str, str]:
        """Values the state already holds for this service's form (beyond the card)."""


class Submitter(Protocol):
    def __call__(self, session: Session, service: Service, answers: dict[str, str]) -> Receipt:
        """Hand the application over (or queue it durably); raise SubmitError if neither."""


@dataclass(frozen=True)
class Timing:
    idle_timeout_s: float = 60.0
    idle_warning_s: float = 15.0
    identify_timeout_s: float = 90.0


@dataclass(frozen=True)
class View:
    """Everything a screen shows and the voice says for the current moment of the visit."""

    step: Step
    language: str
    title_key: str
    prompt_key: str | None = None
    title_values: dict[str, str] = field(default_factory=dict)
    message_key: str | None = None  # a notice shown on the step (expired card, ...)
    services: tuple[tuple[str, str], ...] = ()  # (id, title) on the choose step
    fields: tuple[tuple[str, str, str], ...] = ()  # (key, label, value) on the review step
    warning_seconds: int | None = None  # idle countdown, None when not warning
    receipt: str | None = None
    reason: str = ""  # why the view changed: "start", "card", "timeout", ...
    handout: Handout | None = None  # the finish step's receipt/certificate, once printing began
    notices: tuple[str, ...] = ()  # equipment notices on the choose step (no receipt paper, ...)
    voice_on: bool = True  # the citizen may silence the voice for their visit
    scanned: tuple[str, ...] = ()  # material ids with a scan attached, on the review step


Listener = Callable[[View], None]

_TITLES = {
    Step.ATTRACT: ("attract.title", "attract.prompt"),
    Step.IDENTIFY: ("identify.title", "identify.prompt"),
    Step.FACE: ("face.title", "face.prompt"),
    Step.CHOOSE: ("choose.title", "choose.prompt"),
    Step.REVIEW: ("review.title", "review.prompt"),
    Step.FINISH: ("finish.title", "finish.prompt"),
    Step.TICKET: ("ticket.title", "ticket.prompt"),
}


class Visit:
    """The state machine of one terminal: attract -> identify -> choose -> review -> finish."""

    def __init__(self, catalogue: Catalogue, timing: Timing = Timing(), *,
                 clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], datetime.date] = datetime.date.today,
                 submitter: Submitter | None = None, prefiller: Prefiller | None = None,
                 language: str = "zh-CN", face_required: bool = False) -> None:
        self.catalogue = catalogue
        self.timing = timing
        self.clock = clock
        self.today = today
        self.submitter = submitter
        self.prefiller = prefiller
        self.face_required = face_required  # the card's holder must be verified by face first
        self.default_language = language
        self.language = language
        self.voice_on = True
        self.session = Session()
        self.step = Step.ATTRACT
        self.card_present = False
        self._message: str | None = None
        self._receipt: str | None = None
        self._next_catalogue: Catalogue | None = None
        self._handout: Handout | None = None
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

    def view(self, reason: str = "") -> View:
        with self._lock:
            title_key, prompt_key = _TITLES[self.step]
            if self.step is Step.FINISH and self._message in ("finish.not_submitted", "finish.refused"):
                title_key, prompt_key = "finish.not_submitted_title", self._message
            elif self.step is Step.FINISH and (self._message or "").startswith("face.failed"):
                title_key, prompt_key = "face.failed_title", self._message
            values: dict[str, str] = {}
            services: tuple[tuple[str, str], ...] = ()
            fields: tuple[tuple[str, str, str], ...] = ()
            if self.step is Step.CHOOSE:
                values["name"] = getattr(self.session.identity, "name", "") or ""
                services = tuple((s.id, s.title_in(self.language)) for s in self.catalogue.services()
                                 if s.kind not in self._unavailable_kinds)
            if self.step is Step.REVIEW and self.session.service_id:
                service = self.catalogue.get(self.session.service_id)
                fields = tuple((f.key, f.label.get(self.language) or f.label["zh-CN"],
                                self.session.answers.get(f.key, "")) for f in service.fields)
            warning = None
            if self._warning_deadline is not None:
                warning = max(0, int(round(self._warning_deadline - self.clock())))
            handout = self._handout if self.step in (Step.FINISH, Step.TICKET) else None
            notices = self._notices if self.step is Step.CHOOSE else ()
            scanned = self._scanned() if self.step is Step.REVIEW else ()
            return View(self.step, self.language, title_key, prompt_key, values, self._message,
                        services, fields, warning, self._receipt, reason, handout, notices,
                        voice_on=self.voice_on, scanned=scanned)

    def _publish(self, reason: str) -> None:
        view = self.view(reason)
        log.info("visit %s: step %s (%s)", self.session.visit_id[:8], view.step.value, reason)
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("visit listener failed")

    def _go(self, step: Step, reason: str, message: str | None = None) -> None:
        self.step = step
        self._message = message
        self._handout = None
        self._warning_deadline = None
        self._last_activity = self.clock()
        self._publish(reason)

    def _require(self, *steps: Step) -> None:
        if self.step not in steps:
            allowed = ", ".join(s.value for s in steps)
            raise InvalidTransition(f"not possible on step {self.step.value} (only on {allowed})")

    # -- citizen actions -----------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._require(Step.ATTRACT)
            self.session = Session()
            self._go(Step.IDENTIFY, "start")

    def choose(self, service_id: str) -> None:
        with self._lock:
            self._require(Step.CHOOSE)
            service = self.catalogue.get(service_id)
            if service.kind in self._unavailable_kinds:
                raise InvalidTransition(f"service {service_id!r} is not offered now (its printer is unusable)")
            self.session.service_id = service.id
            answers = {f.key: f.prefill(self.session.identity) for f in service.fields}
            if self.prefiller is not None:
                known = self.prefiller(self.session, service)
                answers.update({k: v for k, v in known.items() if k in answers and v and not answers[k]})
            self.session.answers = answers
            self._go(Step.REVIEW, "choose")

    def correct(self, key: str, value: str) -> None:
        """The citizen corrects one prefilled field on the review step."""
        with self._lock:
            self._require(Step.REVIEW)
            if key not in self.session.answers:
                raise InvalidTransition(f"field {key!r} is not on this form")
            self.session.answers[key] = value
            self._message = None
            self._last_activity = self.clock()
            self._publish("correct")

    # -- scanned paper materials (review step) -----------------------------------------------
    def _material_ids(self) -> tuple[str, ...]:
        """The materials the chosen service asks for, in catalogue order."""
        if self.session.service_id is None:
            return ()
        return tuple(m.id for m in self.catalogue.get(self.session.service_id).materials)

    def _scanned(self) -> tuple[str, ...]:
        """Attached scans of the chosen service's materials: exactly what a confirm sends."""
        return tuple(mid for mid in self._material_ids() if mid in self.session.scans)

    def attach_scan(self, material_id: str, media_type: str, data: bytes | bytearray) -> None:
        """The citizen scanned the paper of one material; a new scan replaces (and wipes) the
        earlier one. Raises InvalidTransition off the review step or for a material the service
        does not ask for, ScanError for bytes the platform would refuse (scan again)."""
        with self._lock:
            self._require(Step.REVIEW)
            if material_id not in self._material_ids():
                raise InvalidTransition(f"material {material_id!r} is not one service "
                                        f"{self.session.service_id!r} asks for")
            scan = Scan.of(media_type, data)
            earlier = self.session.scans.pop(material_id, None)
            if earlier is not None:
                earlier.wipe()
            self.session.scans[material_id] = scan
            self._last_activity = self.clock()
            self._publish("scan_attached")

    def detach_scan(self, material_id: str) -> None:
        """The citizen takes a scan back: its bytes are wiped now, not at the end of the visit.
        Detaching a material that has no scan changes nothing (a double tap)."""
        with self._lock:
            self._require(Step.REVIEW)
            if material_id not in self._material_ids():
                raise InvalidTransition(f"material {material_id!r} is not one service "
                                        f"{self.session.service_id!r} asks for")
            scan = self.session.scans.pop(material_id, None)
            self._last_activity = self.clock()
            if scan is not None:
                scan.wipe()
                self._publish("scan_detached")

    def confirm(self) -> None:
        with self._lock:
            self._require(Step.REVIEW)
            assert self.session.service_id is not None
            service = self.catalogue.get(self.session.service_id)
            missing = [f.key for f in service.fields if f.required and not self.session.answers.get(f.key, "").strip()]
            if missing:
                # never a receipt for an application that is bound to be refused later
                log.info("confirm refused: required field(s) empty: %s", ", ".join(missing))
                self._message = "review.missing"
                self._last_activity = self.clock()
                self._publish("missing")
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
            self._receipt = receipt.number
            if receipt.delivered:
                self._go(Step.FINISH, "submitted")
            else:
                self._go(Step.FINISH, "queued", "finish.queued")

    def back(self) -> None:
        with self._lock:
            if self.step is Step.REVIEW:
                self.session.service_id = None
                self.session.answers.clear()
                for scan in self.session.scans.values():  # papers of a service no longer chosen
                    scan.wipe()
                self.session.scans.clear()
                self._go(Step.CHOOSE, "back")
            elif self.step in (Step.IDENTIFY, Step.FACE, Step.CHOOSE):
                self.wipe("back")
            else:
                raise InvalidTransition(f"no way back from step {self.step.value}")

    def cancel(self) -> None:
        with self._lock:
            if self.step is not Step.ATTRACT:
                self.wipe("cancel")

    def finish(self) -> None:
        """The citizen is done (or leaves the finish screen): wipe and return to attract."""
        with self._lock:
            self._require(Step.FINISH, Step.TICKET)
            self.wipe("finished")

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
            self._last_activity = self.clock()
            self._publish("repeat")

    def toggle_voice(self) -> None:
        """The citizen silences the voice, or turns it back on, for this visit only."""
        with self._lock:
            self.voice_on = not self.voice_on
            self._last_activity = self.clock()
            self._publish("voice")

    def set_language(self, language: str) -> None:
        with self._lock:
            self.language = language
            self._last_activity = self.clock()
            self._publish("language")

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
            self.session.set_identity(identity)
            self._go(Step.FACE if self.face_required else Step.CHOOSE, "card")

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
            self._go(Step.CHOOSE, "face")

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
        with self._lock:
            self.card_present = False
            if self.step is Step.FINISH:
                self.wipe("card_removed")

    def reader_offline(self) -> None:
        with self._lock:
            if self.step is Step.IDENTIFY:
                self._message = "identify.reader_offline"
                self._publish("reader_offline")

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
            self._last_activity = self.clock()
            self._publish("sms")

    def set_equipment(self, notices: tuple[str, ...], unavailable_kinds: frozenset[str]) -> None:
        """What the terminal's devices allow now: told before a citizen chooses, so nobody
        starts a certificate that cannot be printed or expects a paper receipt that cannot come."""
        with self._lock:
            if (notices, unavailable_kinds) == (self._notices, self._unavailable_kinds):
                return
            self._notices, self._unavailable_kinds = notices, unavailable_kinds
            if self.step is Step.CHOOSE:
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
    def wipe(self, reason: str) -> None:
        """End the visit: personal data overwritten and dropped, language reset, attract."""
        with self._lock:
            self.session.wipe()
            self.session = Session()
            if self._next_catalogue is not None:
                self.catalogue, self._next_catalogue = self._next_catalogue, None
            self._receipt = None
            self._handout = None
            self.language = self.default_language
            self.voice_on = True  # the next citizen hears the prompts again
            self.wipes += 1
            message = "card.take_back" if self.card_present else None
            self._go(Step.ATTRACT, reason, message)
