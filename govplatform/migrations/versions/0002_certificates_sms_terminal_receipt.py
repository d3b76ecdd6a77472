"""Certificates issued (for public verification), text messages sent, and the terminal's own
receipt number on applications (for the public progress page).

`applications.terminal_receipt` is added with plain ALTER TABLE ADD COLUMN plus a unique
index, never a batch table rebuild: on SQLite a rebuild drops and recreates `applications`,
and with foreign keys on, dropping it would cascade-delete every department task and
history entry. `tests/platform/test_platform_contract.py` proves the result matches
`govplatform.models`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("applications", sa.Column("terminal_receipt", sa.String(96), nullable=True))
    op.create_index("ix_applications_terminal_receipt", "applications", ["terminal_id", "terminal_receipt"],
                    unique=True)

    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("verification_code", sa.String(16), nullable=False),
        sa.Column("receipt_number", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("title", sa.JSON(), nullable=False),
        sa.Column("holder_name_masked", sa.String(100), nullable=False),
        sa.Column("holder_id_masked", sa.String(32), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("verify_url", sa.String(300), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("document_sm3", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("receipt_number", name=op.f("uq_certificates_receipt_number")),
        sa.UniqueConstraint("verification_code", name=op.f("uq_certificates_verification_code")),
    )

    op.create_table(
        "sms_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("receipt_number", sa.String(32), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("phone_masked", sa.String(20), nullable=False),
        sa.Column("phone_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("gateway", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_sms_messages_message_id")),
    )
    op.create_index(op.f("ix_sms_messages_phone_hash"), "sms_messages", ["phone_hash"])
    op.create_index(op.f("ix_sms_messages_receipt_number"), "sms_messages", ["receipt_number"])


def downgrade() -> None:
    op.drop_table("sms_messages")
    op.drop_table("certificates")
    op.drop_index("ix_applications_terminal_receipt", table_name="applications")
    # DROP COLUMN in place (SQLite >= 3.35, PostgreSQL): no table rebuild, no cascade
    op.execute("ALTER TABLE applications DROP COLUMN terminal_receipt")
