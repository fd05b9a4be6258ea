"""Tables of the segmentation store (SQLAlchemy Core). Alembic migrations create exactly these.

Times are stored as naive UTC (`UTCDateTime`) so SQLite and PostgreSQL compare them the same way;
`last_purchase_day` (days since 1970-01-01) and `birthday_mmdd` exist so segment arithmetic stays
portable SQL (column minus constant) instead of dialect-specific date functions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive UTC in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store datetimes must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONType: Any = sa.JSON().with_variant(JSONB(), "postgresql")
BigId: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

store_meta = sa.Table(
    "store_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
    sa.Column("phone_masked", sa.String(24), nullable=False, server_default=""),
    sa.Column("phone_enc", sa.Text, nullable=True),
    sa.Column("name", sa.String(64), nullable=False, server_default=""),
    sa.Column("channel", sa.String(32), nullable=False, server_default=""),
    sa.Column("persona_group", sa.String(32), nullable=False, server_default=""),
    sa.Column("price_sensitivity", sa.String(8), nullable=False, server_default="medium"),
    sa.Column("timezone", sa.String(64), nullable=True),
    sa.Column("birthday", sa.Date, nullable=True),
    sa.Column("birthday_mmdd", sa.Integer, nullable=True, index=True),
    sa.Column("is_member", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("member_since", sa.Date, nullable=True),
    sa.Column("joined_at", sa.Date, nullable=True),  # acquired by the shop (OAIPL "new")
    sa.Column("cart_at", UTCDateTime, nullable=True),
    sa.Column("last_active_at", UTCDateTime, nullable=True),
    sa.Column("is_test", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_outcome", sa.String(32), nullable=True),
    sa.Column("last_grade", sa.String(1), nullable=True),
    sa.Column("last_result_at", UTCDateTime, nullable=True),
    sa.Column("last_slots", JSONType, nullable=True),
    # WeCom's id of this customer as an external contact (the sidebar's getCurExternalContact).
    sa.Column("external_userid", sa.String(64), nullable=True),
    sa.Column("gender", sa.String(1), nullable=False, server_default=""),  # F | M | "" (unknown)
    sa.UniqueConstraint("external_userid", name="uq_customers_external_userid"),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("customer_id", sa.String(64),
              sa.ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("deposit_paid", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deposit_product", sa.String(128), nullable=False, server_default=""),
    sa.Column("deposit_amount", sa.Float, nullable=True),
    sa.Column("balance_paid", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("purchase_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_purchase_at", sa.Date, nullable=True),
    sa.Column("last_purchase_day", sa.Integer, nullable=True),
    sa.Column("total_spent", sa.Float, nullable=False, server_default="0"),
    sa.Column("cycle_days", sa.Integer, nullable=True),
    sa.Column("last_product", sa.String(128), nullable=False, server_default=""),  # rev 0003
    sa.Column("balance_amount", sa.Float, nullable=True),  # rev 0003
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

tags = sa.Table(
    "tags", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("tag", sa.String(32), nullable=False),
    sa.Column("source", sa.String(8), nullable=False),  # call | chat | import
    sa.Column("source_id", sa.String(160), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("source_id", "tag", name="uq_tags_source_tag"),
    sa.Index("ix_tags_customer_tag", "customer_id", "tag"),
    sa.Index("ix_tags_tag_at", "tag", "at"),
)

conversations = sa.Table(
    "conversations", metadata,
    sa.Column("conversation_id", sa.String(128), primary_key=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("track", sa.String(64), nullable=False),
    sa.Column("persona", sa.String(64), nullable=False, server_default=""),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False, server_default=""),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("grade", sa.String(1), nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("slots", JSONType, nullable=False),
    sa.Column("node_path", JSONType, nullable=False),
    sa.Column("turns", sa.JSON, nullable=False),
    sa.Column("ended_by", sa.String(16), nullable=False, server_default=""),
    sa.Column("written_at", UTCDateTime, nullable=False),
    sa.Index("ix_conversations_track_ended", "track", "ended_at"),
    sa.Index("ix_conversations_ended", "ended_at"),
)

do_not_contact = sa.Table(
    "do_not_contact", metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

contact_attempts = sa.Table(
    "contact_attempts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(128), nullable=False, unique=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_attempts_customer_channel_at", "customer_id", "channel", "at"),
)

ALL_TABLES = (contact_attempts, do_not_contact, conversations, tags, orders, customers, store_meta)
