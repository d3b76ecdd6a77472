"""The platform's tables (SQLAlchemy 2 typed ORM). Migrations in `migrations/` create them.

Times are stored as naive UTC (`DateTime` without time zone) so SQLite and PostgreSQL
behave the same; the API layer adds the zone. Personal data lives only where the work
needs it (an application names its applicant); citizen tokens keep the card read
encrypted under a key derived from the token itself, so the database alone reveals nothing.
All data in a fresh database is synthetic.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names: Alembic migrations (and PostgreSQL) need them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RATING_LEVELS = (1, 2, 3, 4, 5)  # 非常不满意 .. 非常满意 (好差评 five levels)
CONSULTATION_KINDS = ("consultation", "complaint", "suggestion", "help")
DEPARTMENT_ROLES = ("lead", "cooperating")


def utcnow() -> dt.datetime:
    """Naive UTC now: what every DateTime column holds."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Terminal(Base):
    """An enrolled kiosk and the public key its requests are verified with."""

    __tablename__ = "terminals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(String(512))
    location: Mapped[str] = mapped_column(String(200))
    enrolled_at: Mapped[dt.datetime] = mapped_column(DateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(), nullable=True)


class EnrolmentCode(Base):
    """A one-time code a technician types at enrolment; only its keyed hash is stored."""

    __tablename__ = "enrolment_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    terminal_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime())
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(), nullable=True)


class Nonce(Base):
    """A nonce seen in a verified request; kept while its timestamp is inside the skew window."""

    __tablename__ = "nonces"

    terminal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, index=True)  # the request's signed Unix time
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime())


class CitizenToken(Base):
    """A short-lived citizen token, scoped to one terminal and one visit; stored as a keyed hash."""

    __tablename__ = "citizen_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    visit_id: Mapped[str] = mapped_column(String(64))
    citizen_key: Mapped[str] = mapped_column(String(64), index=True)  # keyed hash of the ID number
    card_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # SM4-GCM, key derived from the token
    known: Mapped[bool] = mapped_column(Boolean)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(), index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Application(Base):
    """One accepted submission; its receipt number is what the citizen takes home."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt_number: Mapped[str] = mapped_column(String(32), unique=True)
    item_id: Mapped[str] = mapped_column(String(64), index=True)
    item_title: Mapped[dict[str, Any]] = mapped_column(JSON)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    visit_id: Mapped[str] = mapped_column(String(64))
    citizen_id_number: Mapped[str] = mapped_column(String(32))
    citizen_name: Mapped[str] = mapped_column(String(100))
    citizen_key: Mapped[str] = mapped_column(String(64))  # indexed with accepted_at, below
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    materials: Mapped[list[Any]] = mapped_column(JSON)
    commitments: Mapped[list[Any]] = mapped_column(JSON)
    face_check: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime())
    accepted_at: Mapped[dt.datetime] = mapped_column(DateTime())
    # The number the terminal printed while the submission waited in its outbox
    # ("L20261127-T-0001-000042"); unique per terminal by the index at the end of this module.
    terminal_receipt: Mapped[str | None] = mapped_column(String(96), nullable=True)

    tasks: Mapped[list[DepartmentTask]] = relationship(
        back_populates="application", order_by="DepartmentTask.id", cascade="all, delete-orphan")
    history: Mapped[list[StatusHistory]] = relationship(
        back_populates="application", order_by="StatusHistory.id", cascade="all, delete-orphan")

    def __repr__(self) -> str:  # no personal data
        return f"Application(receipt={self.receipt_number!r}, item={self.item_id!r}, status={self.status!r})"


class DepartmentTask(Base):
    """The part of an application one department handles (fan-out of a "一件事")."""

    __tablename__ = "department_tasks"
    __table_args__ = (
        UniqueConstraint("application_id", "department"),
        CheckConstraint("role IN ('lead', 'cooperating')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(64))
    department_name: Mapped[dict[str, Any]] = mapped_column(JSON)
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime())

    application: Mapped[Application] = relationship(back_populates="tasks")


class StatusHistory(Base):
    """Every status change of an application or of one of its department tasks."""

    __tablename__ = "status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    department: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(DateTime())

    application: Mapped[Application] = relationship(back_populates="history")


class IdempotencyRecord(Base):
    """The first answer to (terminal, key): repeats get it again, other bodies get 409."""

    __tablename__ = "idempotency_records"

    terminal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    body_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(), index=True)


class Rating(Base):
    """A "好差评" rating: five levels, optionally about one application."""

    __tablename__ = "ratings"
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 5", name="level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_number: Mapped[str] = mapped_column(String(32), unique=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    level: Mapped[int] = mapped_column(SmallInteger)
    receipt_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    item_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())


class Consultation(Base):
    """A 12345 ticket: consultation, complaint, suggestion or a call for help."""

    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint("kind IN ('consultation', 'complaint', 'suggestion', 'help')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_number: Mapped[str] = mapped_column(String(32), unique=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    item_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())


class AppointmentSlot(Base):
    """A bookable time at a service hall for an appointment item."""

    __tablename__ = "appointment_slots"
    __table_args__ = (
        UniqueConstraint("item_id", "starts_at"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="capacity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(64), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(), index=True)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime())
    place: Mapped[dict[str, Any]] = mapped_column(JSON)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class AppointmentBooking(Base):
    """One citizen's booking of one slot."""

    __tablename__ = "appointment_bookings"
    __table_args__ = (UniqueConstraint("slot_id", "citizen_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    booking_number: Mapped[str] = mapped_column(String(32), unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("appointment_slots.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(64))
    terminal_id: Mapped[str] = mapped_column(String(64))
    visit_id: Mapped[str] = mapped_column(String(64))
    citizen_key: Mapped[str] = mapped_column(String(64), index=True)
    citizen_id_number: Mapped[str] = mapped_column(String(32))
    citizen_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())
    ticket_number: Mapped[str | None] = mapped_column(String(8), nullable=True)  # once checked in
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(DateTime(), nullable=True)

    slot: Mapped[AppointmentSlot] = relationship()


class IssuedCertificate(Base):
    """A certificate handed out for an application: what the public verification page shows.

    Only masked personal data is kept (the document itself is rebuilt from the person's file
    when asked again); `document_sm3` is the SM3 digest of the document's canonical JSON, so
    what was issued can be proven later without storing it.
    """

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    verification_code: Mapped[str] = mapped_column(String(16), unique=True)
    receipt_number: Mapped[str] = mapped_column(String(32), unique=True)  # one certificate per application
    item_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[dict[str, Any]] = mapped_column(JSON)
    holder_name_masked: Mapped[str] = mapped_column(String(100))
    holder_id_masked: Mapped[str] = mapped_column(String(32))
    issuer: Mapped[str] = mapped_column(String(200))
    verify_url: Mapped[str] = mapped_column(String(300))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime())
    document_sm3: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"IssuedCertificate(receipt={self.receipt_number!r}, item={self.item_id!r})"


class SmsMessage(Base):
    """A text message the platform sent (or, on the reference platform, only stored).

    The mobile number is personal data: it is kept masked for people to read and as a keyed
    hash to find every message sent to one number (a complaint), never in clear. The text
    carries the receipt number and the progress link, never a name or an ID number.
    """

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(32), unique=True)
    receipt_number: Mapped[str] = mapped_column(String(32), index=True)
    terminal_id: Mapped[str] = mapped_column(String(64))
    phone_masked: Mapped[str] = mapped_column(String(20))
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    gateway: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())

    def __repr__(self) -> str:
        return f"SmsMessage(id={self.message_id!r}, receipt={self.receipt_number!r}, status={self.status!r})"


class Scan(Base):
    """A scanned paper material, stored once by content: its SHA-256 is the key, so an upload
    repeated after a lost answer (or by another terminal) stores nothing twice, and an
    application names it as "scan:<sha256>". The content is the citizen's document.
    """

    __tablename__ = "scans"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)  # the first uploader
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime())
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:  # never the content
        return f"Scan(sha256={self.sha256[:12]}..., media_type={self.media_type!r}, size={self.size})"


class Counter(Base):
    """Per-day sequence numbers for receipts, tickets and bookings ("SQ" + date + sequence)."""

    __tablename__ = "counters"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


Index("ix_applications_citizen_accepted", Application.citizen_key, Application.accepted_at)
# A unique index, not a constraint: SQLite adds an index in place, while a constraint would
# mean rebuilding the applications table (and, with foreign keys on, cascading deletes).
Index("ix_applications_terminal_receipt", Application.terminal_id, Application.terminal_receipt, unique=True)
