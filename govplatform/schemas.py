"""Request and response bodies of the API: the source of `govapi/openapi.json`.

Requests are strict where a kiosk's mistake would otherwise pass silently: unknown fields
are refused (extra="forbid"), booleans and integers are not guessed from strings. Every
response has a model too, so the published document says exactly what comes back.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator
from pydantic.json_schema import SkipJsonSchema

from govapi.signing import ALGORITHMS

VISIT_ID = r"^[A-Za-z0-9_-]{8,64}$"
ITEM_ID = r"^[a-z][a-z0-9-]{0,63}$"
KEY = r"^[a-z][a-z0-9_]{0,63}$"
RECEIPT = r"^SQ[0-9]{14}$"
ID_NUMBER = r"^[0-9A-Za-z]{15,18}$"
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_-]{8,128}$"
TERMINAL_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# The number a terminal prints while a submission waits in its outbox (kiosk/outbox.py
# `_local_receipt`): "L" + the terminal's local date + "-" + its terminal id + "-" + outbox row.
TERMINAL_RECEIPT = r"^L[0-9]{8}-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}-[0-9]{6,12}$"
# A stored scan as an application names it (PUT /v1/scans/{sha256} answers it as `reference`).
SHA256_HEX = r"^[0-9a-f]{64}$"
SCAN_REFERENCE = r"^scan:[0-9a-f]{64}$"
SCAN_MEDIA_TYPES = ("image/jpeg", "image/png", "application/pdf")
# the cards a terminal identifies a citizen by: the ID card types (GA 467) and the social
# security card (社会保障卡, read over PC/SC; no address, its issuing place as `issuer`)
CARD_TYPES = ("resident", "hmt_permit", "foreign_2017", "foreign_2023", "social_security")
LONG_TERM = "长期"


def _no_nul(value: object) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _no_nul(v)


class Request(BaseModel):
    """A request body: unknown fields refused, no NUL characters (no database stores them everywhere)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: object) -> object:
        _no_nul(value)
        return value


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Text(Out):
    """A user-facing text in Chinese and English."""

    zh_CN: str = Field(alias="zh-CN")
    en: str


# -- health and enrolment ------------------------------------------------------------------------
class Health(Out):
    status: Literal["ok"]
    version: str
    server_time: int = Field(description="platform clock, Unix seconds: compare with the terminal's "
                                         "(signing allows 300 s)")


class EnrolRequest(Request):
    enrolment_code: str = Field(min_length=8, max_length=64,
                                description="one-time code from `python -m govplatform enrolment-code`; "
                                            "dashes optional")
    terminal_id: str = Field(pattern=TERMINAL_ID)
    algorithm: Literal["sm2-sm3", "ecdsa-p256-sha256"]
    public_key: str = Field(min_length=128, max_length=130, pattern=r"^[0-9a-fA-F]+$",
                            description="SM2: x||y, 128 hex; ECDSA P-256: uncompressed point, 130 hex")
    location: str = Field(min_length=1, max_length=200, description="where the terminal stands")


class EnrolResponse(Out):
    terminal_id: str
    algorithm: Literal["sm2-sm3", "ecdsa-p256-sha256"]
    location: str
    enrolled_at: dt.datetime
    accepted_algorithms: list[str] = Field(description=f"what this platform verifies; one of {ALGORITHMS}")


# -- identity ------------------------------------------------------------------------------------
class Card(Request):
    """What the card reader read (an ID card's GA 467 text block, or a social security card's
    holder records), dates ISO 8601."""

    card_type: Literal["resident", "hmt_permit", "foreign_2017", "foreign_2023", "social_security"]
    id_number: str = Field(pattern=ID_NUMBER, description="18 characters (GB 11643); 15 on a 2017 foreigner card")
    name: str = Field(min_length=1, max_length=60)
    birth_date: dt.date
    gender_code: Literal["0", "1", "2", "9"]
    nation_code: str = Field(default="", pattern=r"^([0-9]{2})?$")
    address: str = Field(default="", max_length=200)
    appended_address: str = Field(default="", max_length=200, description="a newer address written to the card, if any")
    valid_from: dt.date | None = None
    valid_to: dt.date | Literal["长期"] | None = None
    issuer: str = Field(default="", max_length=60)


class FaceCheck(Request):
    """The terminal's evidence that the person at the screen is the card's holder."""

    method: str = Field(min_length=1, max_length=64, description="e.g. card_photo_1to1")
    passed: StrictBool
    score: float | None = Field(default=None, ge=0, le=1)
    liveness: StrictBool | None = Field(default=None, description="liveness challenge passed; null when not run")
    model_versions: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=64)]] = Field(
        default_factory=dict, max_length=16)
    evidence_signature: str = Field(default="", max_length=512, pattern=r"^[0-9a-fA-F]*$",
                                    description="the terminal's signature over the evidence (hex)")
    timestamp: str | None = Field(default=None, max_length=40,
                                  pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
                                  description="when the terminal decided (ISO 8601, UTC); covered by the signature")


class IdentifyRequest(Request):
    visit_id: str = Field(pattern=VISIT_ID, description="the terminal's id of this visit")
    card: Card
    face_check: FaceCheck | None = None


class CitizenSummary(Out):
    known: bool = Field(description="the platform holds a file for this person (prefill, licences, benefits)")
    display_name: str = Field(description="masked, fit for the screen: 张*")


class IdentifyResponse(Out):
    citizen_token: str = Field(description="Bearer token for this terminal and visit only")
    expires_at: dt.datetime
    citizen: CitizenSummary


# -- catalogue -----------------------------------------------------------------------------------
class Department(Out):
    id: str
    zh_CN: str = Field(alias="zh-CN")
    en: str


class Choice(Out):
    value: str
    label: Text


class FormField(Out):
    key: str
    label: Text
    type: Literal["text", "date", "phone", "choice", "number"]
    required: bool
    source: str = Field(description="where the platform prefills it from; empty: the citizen types it")
    choices: list[Choice] | SkipJsonSchema[None] = Field(default=None,
                                                         description="only for type choice (absent otherwise)")


class Material(Out):
    id: str
    title: Text
    e_licence: str | None = Field(description="e-licence type that replaces the paper, or null")
    promise_allowed: bool = Field(description="may be promised and handed in later (告知承诺+容缺办理)")
    commitment: Text | None
    required: bool


class Included(Out):
    id: str
    title: Text
    department: Department


class Item(Out):
    id: str
    kind: Literal["bundle", "service", "certificate", "lookup", "appointment"]
    title: Text
    category: str
    life_event: str
    summary: Text
    notice: Text
    steps: list[Text]
    form: list[FormField]
    materials: list[Material]
    lead_department: Department
    cooperating_departments: list[Department]
    time_limit_days: int
    includes: list[Included]


class Catalogue(Out):
    version: str = Field(description="changes whenever the content changes")
    items: list[Item]


# -- citizen data --------------------------------------------------------------------------------
class PrefillValue(Out):
    value: str
    source: str


class Prefill(Out):
    item_id: str
    values: dict[str, PrefillValue] = Field(description="form key -> value the state already holds")


class Licence(Out):
    type: str
    title: Text
    number: str
    issuer: str
    valid_to: str = Field(description="ISO date, or 长期 (long-term)")


class Licences(Out):
    licences: list[Licence]


class Benefit(Out):
    id: str
    title: Text
    reason: Text
    status: Literal["granted_automatically", "eligible"]
    item_id: str | None = Field(default=None,
                                description="the catalogue item that claims it (prefilled), when it needs one")


class Benefits(Out):
    benefits: list[Benefit]


# -- applications --------------------------------------------------------------------------------
class CitizenRef(Request):
    id_number: str = Field(pattern=ID_NUMBER)
    name: str = Field(min_length=1, max_length=60)


class MaterialProvided(Request):
    id: str = Field(pattern=KEY)
    provided: Literal["e_licence", "scan", "promise"]
    reference: str | None = Field(default=None, max_length=200,
                                  description='e-licence number; for a scan "scan:<sha256>" of a scan stored '
                                              "first with PUT /v1/scans/{sha256}")


class ApplicationRequest(Request):
    item_id: str = Field(pattern=ITEM_ID)
    visit_id: str = Field(pattern=VISIT_ID)
    citizen: CitizenRef
    face_check: FaceCheck | None = None
    answers: dict[Annotated[str, Field(pattern=KEY)], Annotated[str, Field(max_length=1000)]] = Field(max_length=200)
    materials: list[MaterialProvided] = Field(default_factory=list, max_length=100)
    submitted_at: AwareDatetime = Field(description="when the citizen confirmed, with a UTC offset")
    terminal_receipt: str | None = Field(
        default=None, pattern=TERMINAL_RECEIPT, max_length=96,
        description="the number the terminal printed while the submission waited in its outbox "
                    "(L<yyyymmdd>-<terminal id>-<row>); optional, unique per terminal, and its terminal id "
                    "must be the signing terminal's. The public progress page finds the application by it.")

    def hashed_form(self) -> dict[str, object]:
        """The body as the idempotency store hashes it. Without a terminal_receipt the field is
        left out, so a submission queued before the field existed hashes as it always did."""
        return self.model_dump(mode="json", exclude={"terminal_receipt"} if self.terminal_receipt is None else None)


class DepartmentStatus(Out):
    department: str
    name: Text
    role: Literal["lead", "cooperating"]
    status: str


class ApplicationAccepted(Out):
    receipt_number: str
    status: Literal["accepted"]
    item_id: str
    departments: list[DepartmentStatus]
    accepted_at: dt.datetime


class HistoryEntry(Out):
    at: dt.datetime
    status: str
    department: str | None
    note: Text


class Commitment(Out):
    material_id: str
    title: Text
    commitment: Text


class ApplicationDetail(Out):
    receipt_number: str
    item_id: str
    title: Text
    status: str
    submitted_at: dt.datetime
    accepted_at: dt.datetime
    departments: list[DepartmentStatus]
    commitments: list[Commitment]
    history: list[HistoryEntry]


class ApplicationSummary(Out):
    receipt_number: str
    item_id: str
    title: Text
    status: str
    accepted_at: dt.datetime
    departments: list[DepartmentStatus]


class MyApplications(Out):
    applications: list[ApplicationSummary]


# -- scans ---------------------------------------------------------------------------------------
class ScanStored(Out):
    """A scan the platform holds; applications name it by `reference`."""

    reference: str = Field(pattern=SCAN_REFERENCE, description='"scan:<sha256>": put it in the material\'s '
                                                                "`reference` (provided: scan)")
    media_type: Literal["image/jpeg", "image/png", "application/pdf"]
    size: int = Field(description="bytes stored")


# -- ratings and 12345 ---------------------------------------------------------------------------
class RatingRequest(Request):
    level: StrictInt = Field(ge=1, le=5, description="1 非常不满意 .. 5 非常满意")
    receipt_number: str | None = Field(default=None, pattern=RECEIPT)
    item_id: str | None = Field(default=None, pattern=ITEM_ID)
    visit_id: str | None = Field(default=None, pattern=VISIT_ID)
    comment: str | None = Field(default=None, max_length=500)


class RatingAccepted(Out):
    rating_number: str
    level: int
    received_at: dt.datetime


class ConsultationRequest(Request):
    kind: Literal["consultation", "complaint", "suggestion", "help"]
    text: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="what the citizen said; not blank")
    item_id: str | None = Field(default=None, pattern=ITEM_ID)
    visit_id: str | None = Field(default=None, pattern=VISIT_ID)
    contact_phone: str | None = Field(default=None, pattern=r"^1[3-9][0-9]{9}$", description="for a call back")


class ConsultationAccepted(Out):
    ticket_number: str
    kind: Literal["consultation", "complaint", "suggestion", "help"]
    status: Literal["received"]
    received_at: dt.datetime
    hotline: str = Field(description="the number to call about this ticket")


# -- appointments --------------------------------------------------------------------------------
class Slot(Out):
    slot_id: int
    item_id: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    place: Text
    capacity: int
    remaining: int


class Slots(Out):
    item_id: str
    slots: list[Slot]


class BookingRequest(Request):
    slot_id: StrictInt = Field(ge=1, le=2**31 - 1)
    item_id: str = Field(pattern=ITEM_ID)
    visit_id: str = Field(pattern=VISIT_ID)


class BookingAccepted(Out):
    booking_number: str
    status: Literal["booked"]
    item_id: str
    slot: Slot
    appointment_code: str = Field(description="what the citizen shows a terminal's QR scanner to check in "
                                  "(预约码: YY + YYMMDD + 6-digit serial + MOD 11-2 check character)")


class CheckInRequest(Request):
    appointment_code: str = Field(pattern=r"^YY[0-9]{12}[0-9X]$", description="the code of the booking")


class CheckedIn(Out):
    booking_number: str
    ticket_number: str = Field(description="the queue number the hall calls, e.g. A023")
    item_id: str
    title: Text
    counter: Text = Field(description="where the number is called")
    waiting_ahead: int = Field(ge=0, description="bookings of the same item checked in earlier today")
    slot: Slot
    checked_in_at: dt.datetime


# -- certificates ----------------------------------------------------------------------------------
class Holder(Out):
    name: str = Field(description="the holder's name as read from the ID card (the document is the holder's own)")
    id_number: str = Field(description="masked: region and last four kept, 110101********0011")


class CertificateTable(Out):
    columns: list[str] = Field(description="column headings, zh-CN")
    rows: list[list[str]] = Field(description="one list of cells (text) per row, as wide as `columns`; may be empty")


class CertificateDocument(Out):
    """What a kiosk prints: every text is ready to print; no layout."""

    kind: str = Field(description="the catalogue item id, e.g. social-insurance-record")
    title: Text
    holder: Holder
    issuer: str = Field(description="the lead department's name (zh-CN)")
    issued_at: dt.datetime = Field(description="when the certificate was issued, China time (+08:00)")
    verification_code: str = Field(description="16 characters of Crockford base32; unique, unguessable")
    verify_url: str = Field(description="{public_url}/verify/{verification_code}: for the QR code")
    summary: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        description="[label, value] pairs, zh-CN labels")
    table: CertificateTable
    notes: list[str] = Field(description="zh-CN notes, including how to verify the certificate")


class MaskedHolder(Out):
    name: str = Field(description="masked: surname kept, 张*")
    id_number: str = Field(description="masked: region and last four kept, 110101********0011")


class Verification(Out):
    """The public answer for a verification code: only masked personal data."""

    status: Literal["valid"]
    verification_code: str
    kind: str
    title: Text
    holder: MaskedHolder
    issuer: str
    issued_at: dt.datetime


# -- public progress -------------------------------------------------------------------------------
class PublicDepartmentStatus(Out):
    department: str
    name: Text
    role: Literal["lead", "cooperating"]
    status: str
    status_text: Text


class Progress(Out):
    """The public progress page: no name, no ID number, no answers."""

    receipt_number: str
    title: Text
    status: str
    status_text: Text
    accepted_on: dt.date = Field(description="the day the platform accepted it, China time")
    departments: list[PublicDepartmentStatus]


# -- text messages ---------------------------------------------------------------------------------
class SmsAccepted(Out):
    receipt_number: str
    sent_to: str = Field(description="the mobile number on file, masked: 138****0011")
    message_id: str
