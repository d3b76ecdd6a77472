"""What a screen shows and the voice says at one moment of a visit, as plain frozen data.

The visit builds a `View` for every change; screens render it and the terminal speaks its
prompt. Nothing here holds behaviour, so a remote help-desk screen or a test can read a View
without the visit's machinery.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Step(str, enum.Enum):
    ATTRACT = "attract"
    IDENTIFY = "identify"
    FACE = "face"
    HOME = "home"  # the citizen's own page: benefits granted or open to them, applications in progress
    CHOOSE = "choose"
    NOTICE = "notice"  # 办事须知: what the item is, how it is handled, read and accepted first
    FORM = "form"  # one merged form, prefilled; the citizen confirms or corrects
    MATERIALS = "materials"  # e-licences found, papers scanned, or promised for later (告知承诺)
    REVIEW = "review"  # everything once more, then confirm and submit
    FINISH = "finish"
    RATING = "rating"  # 好差评: how was it (personal data already wiped)
    TICKET = "ticket"  # 预约取号: an appointment code held up on the attract screen


# the steps of handling one chosen item, in order (the visit skips those the item does not need)
ITEM_STEPS = (Step.NOTICE, Step.FORM, Step.MATERIALS, Step.REVIEW)


@dataclass(frozen=True)
class Handout:
    """What the citizen takes away on the finish step (a printed receipt or certificate), as
    far as it has got: shown on screen and spoken, updated by the terminal's print worker."""

    message_key: str  # e.g. "handout.printing", "handout.receipt_printed", "handout.paper_out"
    values: dict[str, str] = field(default_factory=dict)  # placeholders of the message
    qr: str | None = None  # a link shown as a QR code when paper failed (progress or verify page)
    sms: str = ""  # "" not offered, "offer", "sending", "sent", "failed"


@dataclass(frozen=True)
class Benefit:
    title: str
    reason: str
    status: str  # "granted_automatically" (免申即享) or "eligible" (may be applied for)
    item_id: str | None = None  # the catalogue item that applies for it, when there is one


@dataclass(frozen=True)
class Application:
    receipt_number: str
    title: str
    status: str  # the platform's status word ("accepted", "in_progress", "completed", ...)
    accepted_on: str  # ISO date


@dataclass(frozen=True)
class Home:
    """The citizen's own page, as far as the platform has answered."""

    state: str  # "loading", "ready" or "unavailable" (the platform could not be asked)
    benefits: tuple[Benefit, ...] = ()
    applications: tuple[Application, ...] = ()


@dataclass(frozen=True)
class ItemInfo:
    """The chosen item as the notice, form, materials and review steps describe it."""

    id: str
    title: str
    summary: str = ""
    notice: str = ""
    steps: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()  # lead department first
    time_limit_days: int = 0
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldView:
    key: str
    label: str
    value: str  # as the citizen reads it (a choice's label, not its code)
    raw: str  # as stored and sent
    type: str  # text, date, phone, choice, number
    required: bool
    editable: bool  # False: read from the ID card, shown only
    source: str  # where it was filled from: "card", "platform" or "" (typed by the citizen)
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) for type choice
    problem: str | None = None  # text key of what is wrong with it, when the citizen must fix it


@dataclass(frozen=True)
class MaterialView:
    id: str
    title: str
    required: bool
    provided: str  # "e_licence", "scan", "promise" or "" (not provided yet)
    licence_title: str = ""  # the e-licence that replaces it, when the citizen holds one
    promise_allowed: bool = False
    commitment: str = ""  # the text the citizen agrees to when promising
    can_scan: bool = True  # a scanner is there to scan the paper


@dataclass(frozen=True)
class HelpCall:
    """The citizen pressed 求助. Through the platform: "calling", then "called" (ticket and
    hotline) or "failed". Through the help desk (the fleet channel): "waiting" in the desk's
    queue, "connected" once a staff member took it, "ended"."""

    state: str  # "calling" | "called" | "failed" | "waiting" | "connected" | "ended"
    ticket: str = ""
    hotline: str = ""
    call_id: str = ""  # the fleet call's id (waiting, connected, ended)
    staff: str = ""  # the staff member's display name once connected
    messages: tuple[str, ...] = ()  # the staff member's messages, oldest first, at most 5 kept
    consent: str = ""  # "" not asked, "asked", "granted", "refused": may staff see personal fields?
    # (x, y) fractions of the screen from the TOP-LEFT, and a number that grows with every point
    pointer: tuple[float, float, int] | None = None
    minimized: bool = False  # the citizen folded the panel away; a connected call goes on


@dataclass(frozen=True)
class View:
    """Everything a screen shows and the voice says for the current moment of the visit."""

    step: Step
    language: str
    title_key: str
    prompt_key: str | None = None
    title_values: dict[str, str] = field(default_factory=dict)
    message_key: str | None = None  # a notice shown on the step (expired card, ...)
    message_values: dict[str, str] = field(default_factory=dict)
    services: tuple[tuple[str, str], ...] = ()  # (id, title) on the choose step, after filter/search
    fields: tuple[FieldView, ...] = ()  # the form (form and review steps)
    warning_seconds: int | None = None  # idle countdown, None when not warning
    receipt: str | None = None
    reason: str = ""  # why the view changed: "start", "card", "timeout", ...
    handout: Handout | None = None  # the finish step's receipt/certificate, once printing began
    notices: tuple[str, ...] = ()  # equipment notices on the choose step (no receipt paper, ...)
    voice_on: bool = True  # the citizen may silence the voice for their visit
    elder: bool = False  # 长辈模式: larger type, slower speech
    home: Home | None = None
    filters: tuple[tuple[str, str, str], ...] = ()  # (kind, value, label): "all", "category", "life_event"
    active_filter: tuple[str, str] = ("all", "")
    query: str = ""  # the search text on the choose step
    item: ItemInfo | None = None  # the chosen item (notice, form, materials, review)
    materials: tuple[MaterialView, ...] = ()
    scanning: str | None = None  # the material whose paper is being scanned
    help: HelpCall | None = None
    rated: int | None = None  # the level the citizen gave (rating step)
    position: tuple[int, int] = (0, 0)  # (step n, of m) while handling an item: "第 2 步，共 4 步"

    @property
    def scanned(self) -> tuple[str, ...]:
        """Materials with a scan attached."""
        return tuple(m.id for m in self.materials if m.provided == "scan")
