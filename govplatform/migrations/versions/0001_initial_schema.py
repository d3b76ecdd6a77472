"""Initial schema: terminals, enrolment codes, nonces, citizen tokens, applications with their
department tasks and history, idempotency records, ratings, 12345 consultations,
appointment slots and bookings, and the per-day counters behind receipt numbers.

Written from an autogenerate draft and checked by hand; `tests/platform/test_platform_contract.py`
proves it creates exactly what `govplatform.models` expects.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), autoincrement=True, nullable=False)


def upgrade() -> None:
    # -- terminals and how they prove who they are ---------------------------------------
    op.create_table(
        "terminals",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("public_key", sa.String(512), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminals")),
    )
    op.create_table(
        "enrolment_codes",
        _id(),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_enrolment_codes_code_hash")),
    )
    op.create_table(
        "nonces",
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", "nonce", name=op.f("pk_nonces")),
    )
    op.create_index(op.f("ix_nonces_timestamp"), "nonces", ["timestamp"])

    # -- citizens ------------------------------------------------------------------------
    op.create_table(
        "citizen_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("visit_id", sa.String(64), nullable=False),
        sa.Column("citizen_key", sa.String(64), nullable=False),
        sa.Column("card_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("known", sa.Boolean(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_citizen_tokens")),
    )
    op.create_index(op.f("ix_citizen_tokens_citizen_key"), "citizen_tokens", ["citizen_key"])
    op.create_index(op.f("ix_citizen_tokens_expires_at"), "citizen_tokens", ["expires_at"])
    op.create_index(op.f("ix_citizen_tokens_terminal_id"), "citizen_tokens", ["terminal_id"])

    # -- applications, fanned out to departments -------------------------------------------
    op.create_table(
        "applications",
        _id(),
        sa.Column("receipt_number", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("item_title", sa.JSON(), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("visit_id", sa.String(64), nullable=False),
        sa.Column("citizen_id_number", sa.String(32), nullable=False),
        sa.Column("citizen_name", sa.String(100), nullable=False),
        sa.Column("citizen_key", sa.String(64), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("commitments", sa.JSON(), nullable=False),
        sa.Column("face_check", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("receipt_number", name=op.f("uq_applications_receipt_number")),
    )
    op.create_index("ix_applications_citizen_accepted", "applications", ["citizen_key", "accepted_at"])
    op.create_index(op.f("ix_applications_item_id"), "applications", ["item_id"])
    op.create_index(op.f("ix_applications_terminal_id"), "applications", ["terminal_id"])

    op.create_table(
        "department_tasks",
        _id(),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("department_name", sa.JSON(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('lead', 'cooperating')", name=op.f("ck_department_tasks_role")),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"], ondelete="CASCADE",
                                name=op.f("fk_department_tasks_application_id_applications")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department_tasks")),
        sa.UniqueConstraint("application_id", "department",
                            name=op.f("uq_department_tasks_application_id_department")),
    )
    op.create_index(op.f("ix_department_tasks_application_id"), "department_tasks", ["application_id"])

    op.create_table(
        "status_history",
        _id(),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("note", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"], ondelete="CASCADE",
                                name=op.f("fk_status_history_application_id_applications")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_history")),
    )
    op.create_index(op.f("ix_status_history_application_id"), "status_history", ["application_id"])

    op.create_table(
        "idempotency_records",
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_index(op.f("ix_idempotency_records_created_at"), "idempotency_records", ["created_at"])

    # -- 好差评 and 12345 ----------------------------------------------------------------------
    op.create_table(
        "ratings",
        _id(),
        sa.Column("rating_number", sa.String(32), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("receipt_number", sa.String(32), nullable=True),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("level BETWEEN 1 AND 5", name=op.f("ck_ratings_level")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("rating_number", name=op.f("uq_ratings_rating_number")),
    )
    op.create_index(op.f("ix_ratings_receipt_number"), "ratings", ["receipt_number"])
    op.create_index(op.f("ix_ratings_terminal_id"), "ratings", ["terminal_id"])

    op.create_table(
        "consultations",
        _id(),
        sa.Column("ticket_number", sa.String(32), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("contact_phone", sa.String(20), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('consultation', 'complaint', 'suggestion', 'help')",
                           name=op.f("ck_consultations_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
        sa.UniqueConstraint("ticket_number", name=op.f("uq_consultations_ticket_number")),
    )
    op.create_index(op.f("ix_consultations_terminal_id"), "consultations", ["terminal_id"])

    # -- appointments --------------------------------------------------------------------
    op.create_table(
        "appointment_slots",
        _id(),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("place", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name=op.f("ck_appointment_slots_capacity")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_slots")),
        sa.UniqueConstraint("item_id", "starts_at", name=op.f("uq_appointment_slots_item_id_starts_at")),
    )
    op.create_index(op.f("ix_appointment_slots_item_id"), "appointment_slots", ["item_id"])
    op.create_index(op.f("ix_appointment_slots_starts_at"), "appointment_slots", ["starts_at"])

    op.create_table(
        "appointment_bookings",
        _id(),
        sa.Column("booking_number", sa.String(32), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("visit_id", sa.String(64), nullable=False),
        sa.Column("citizen_key", sa.String(64), nullable=False),
        sa.Column("citizen_id_number", sa.String(32), nullable=False),
        sa.Column("citizen_name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["slot_id"], ["appointment_slots.id"],
                                name=op.f("fk_appointment_bookings_slot_id_appointment_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_bookings")),
        sa.UniqueConstraint("booking_number", name=op.f("uq_appointment_bookings_booking_number")),
        sa.UniqueConstraint("slot_id", "citizen_key", name=op.f("uq_appointment_bookings_slot_id_citizen_key")),
    )
    op.create_index(op.f("ix_appointment_bookings_citizen_key"), "appointment_bookings", ["citizen_key"])
    op.create_index(op.f("ix_appointment_bookings_slot_id"), "appointment_bookings", ["slot_id"])

    # -- receipt, ticket and booking numbers -------------------------------------------------
    op.create_table(
        "counters",
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("day", sa.String(8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "day", name=op.f("pk_counters")),
    )


def downgrade() -> None:
    # children before parents; dropping a table drops its indexes
    for table in ("appointment_bookings", "appointment_slots", "consultations", "ratings",
                  "idempotency_records", "status_history", "department_tasks", "applications",
                  "citizen_tokens", "nonces", "enrolment_codes", "terminals", "counters"):
        op.drop_table(table)
