"""Scanned paper materials, stored by content (PUT /v1/scans/{sha256}).

A new table only: nothing existing is altered, so no table is rebuilt on SQLite (see 0002
on why `applications` must never be). Applications keep naming their scans inside their
`materials` JSON ("scan:<sha256>"), checked against this table when they are submitted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_scans")),
    )
    op.create_index(op.f("ix_scans_terminal_id"), "scans", ["terminal_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scans_terminal_id"), table_name="scans")
    op.drop_table("scans")
