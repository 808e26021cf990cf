"""Leases (a folder sync, ...) and scheduled tick claims, so replicas coordinate in the database.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ticks",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("last_tick", sa.Float, nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ticks")
    op.drop_table("leases")
