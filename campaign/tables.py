"""Campaign tables (SQLAlchemy Core), migrated by campaign/migrations with their own version table.

A touch is one step of one campaign for one customer (UNIQUE): the unit of exactly-once. Its
`state` is the dispatch lifecycle (pending → claimed → sending → waiting → done); `status` is
the contract's touch-line status once there is one (sent, answered, busy, …, skipped).
"""

from __future__ import annotations

import sqlalchemy as sa

from store.schema import BigId, JSONType, UTCDateTime

metadata = sa.MetaData()

campaign_runs = sa.Table(
    "campaign_runs", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | paused | stopped
    sa.Column("spec", JSONType, nullable=False),  # the campaign file as loaded (workers need no file)
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("started_at", UTCDateTime, nullable=False),  # step offsets count from here
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

campaign_steps = sa.Table(
    "campaign_steps", metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(64), primary_key=True),
    sa.Column("planned_at", UTCDateTime, nullable=False),
    sa.Column("skipped", JSONType, nullable=False),  # reason → count, left out when planned
)

touches = sa.Table(
    "touches", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("campaign", sa.String(64), nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("branch", sa.String(16), nullable=False, server_default=""),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("reason", sa.String(80), nullable=False, server_default=""),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("claim", sa.String(40), nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("at", UTCDateTime, nullable=True),  # the last attempt (or the skip)
    sa.Column("answered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("trunk", sa.String(64), nullable=True),  # calls: the trunk it went over (in flight counted per trunk)
    sa.UniqueConstraint("campaign", "step", "customer_id", name="uq_touches_campaign_step_customer"),
    sa.Index("ix_touches_state_due", "state", "due_at"),
    sa.Index("ix_touches_customer", "customer_id"),
    sa.Index("ix_touches_trunk_state", "trunk", "state"),
)

# One row per provider attempt of a touch: carrier rules count these, invariants are checked on them.
touch_attempts = sa.Table(
    "touch_attempts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("touch_id", sa.BigInteger, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("result", sa.String(16), nullable=True),
    sa.Column("reason", sa.String(80), nullable=False, server_default=""),
    sa.Column("trunk", sa.String(64), nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),  # the result came back (calls: no longer in flight)
    sa.UniqueConstraint("touch_id", "attempt", name="uq_touch_attempts_touch_attempt"),
    sa.Index("ix_touch_attempts_customer_channel_at", "customer_id", "channel", "at"),
)

# Shop and call-result events, idempotent by event_id.
campaign_events = sa.Table(
    "campaign_events", metadata,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("body", JSONType, nullable=False),
    sa.Index("ix_campaign_events_customer_type_at", "customer_id", "type", "at"),
)

VERSION_TABLE = "campaign_alembic_version"
