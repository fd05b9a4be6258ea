"""Campaign tables: campaign_runs, campaign_steps, touches, touch_attempts, campaign_events.

Revision ID: c0001
Revises:
Create Date: 2026-12-03

Frozen copy of campaign/tables.py at this revision (times are naive UTC DateTime columns).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "campaign_steps",
        sa.Column("campaign", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(64), primary_key=True),
        sa.Column("planned_at", sa.DateTime(), nullable=False),
        sa.Column("skipped", JSON, nullable=False),
    )
    op.create_table(
        "touches",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("branch", sa.String(16), nullable=False, server_default=""),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(80), nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("claim", sa.String(40), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.Column("answered", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("campaign", "step", "customer_id", name="uq_touches_campaign_step_customer"),
    )
    op.create_index("ix_touches_state_due", "touches", ["state", "due_at"])
    op.create_index("ix_touches_customer", "touches", ["customer_id"])
    op.create_table(
        "touch_attempts",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("touch_id", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(80), nullable=False, server_default=""),
        sa.UniqueConstraint("touch_id", "attempt", name="uq_touch_attempts_touch_attempt"),
    )
    op.create_index("ix_touch_attempts_customer_channel_at", "touch_attempts", ["customer_id", "channel", "at"])
    op.create_table(
        "campaign_events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("body", JSON, nullable=False),
    )
    op.create_index("ix_campaign_events_customer_type_at", "campaign_events", ["customer_id", "type", "at"])


def downgrade() -> None:
    for name in ("campaign_events", "touch_attempts", "touches", "campaign_steps", "campaign_runs"):
        op.drop_table(name)
