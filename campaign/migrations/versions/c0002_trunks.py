"""Trunks: which trunk a call went over (touches, touch_attempts) and when each attempt ended.

Revision ID: c0002
Revises: c0001
Create Date: 2026-12-03

In-flight calls are counted per trunk across campaigns from `touches.trunk`; `touch_attempts`
keeps the trunk and the end of every attempt so the concurrency invariant can be checked later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("touches", sa.Column("trunk", sa.String(64), nullable=True))
    op.create_index("ix_touches_trunk_state", "touches", ["trunk", "state"])
    op.add_column("touch_attempts", sa.Column("trunk", sa.String(64), nullable=True))
    op.add_column("touch_attempts", sa.Column("ended_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("touch_attempts", "ended_at")
    op.drop_column("touch_attempts", "trunk")
    op.drop_index("ix_touches_trunk_state", "touches")
    op.drop_column("touches", "trunk")
