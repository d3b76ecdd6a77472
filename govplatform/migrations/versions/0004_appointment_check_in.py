"""Appointment check-in: a booking's queue number and when it was given.

Plain ADD COLUMN (nullable), never a table rebuild (see 0002).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("appointment_bookings", sa.Column("ticket_number", sa.String(8), nullable=True))
    op.add_column("appointment_bookings", sa.Column("checked_in_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointment_bookings") as batch:
        batch.drop_column("checked_in_at")
        batch.drop_column("ticket_number")
