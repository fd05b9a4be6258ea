"""Initial schema: customers, orders, tags, conversations, do_not_contact, contact_attempts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Frozen copy of store/schema.py at this revision (times are naive UTC DateTime columns).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('contact_attempts',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('conversation_id', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id')
    )
    op.create_index('ix_attempts_customer_channel_at', 'contact_attempts',
                    ['customer_id', 'channel', 'at'], unique=False)
    op.create_table('conversations',
    sa.Column('conversation_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('track', sa.String(length=64), nullable=False),
    sa.Column('persona', sa.String(length=64), server_default='', nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('variant', sa.String(length=64), server_default='', nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('grade', sa.String(length=1), nullable=False),
    sa.Column('tags', JSON, nullable=False),
    sa.Column('slots', JSON, nullable=False),
    sa.Column('node_path', JSON, nullable=False),
    sa.Column('turns', sa.JSON(), nullable=False),
    sa.Column('ended_by', sa.String(length=16), server_default='', nullable=False),
    sa.Column('written_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('conversation_id')
    )
    op.create_index(op.f('ix_conversations_customer_id'), 'conversations', ['customer_id'], unique=False)
    op.create_index('ix_conversations_ended', 'conversations', ['ended_at'], unique=False)
    op.create_index('ix_conversations_track_ended', 'conversations', ['track', 'ended_at'], unique=False)
    op.create_table('customers',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=True),
    sa.Column('phone_masked', sa.String(length=24), server_default='', nullable=False),
    sa.Column('phone_enc', sa.Text(), nullable=True),
    sa.Column('name', sa.String(length=64), server_default='', nullable=False),
    sa.Column('channel', sa.String(length=32), server_default='', nullable=False),
    sa.Column('persona_group', sa.String(length=32), server_default='', nullable=False),
    sa.Column('price_sensitivity', sa.String(length=8), server_default='medium', nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('birthday_mmdd', sa.Integer(), nullable=True),
    sa.Column('is_member', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('member_since', sa.Date(), nullable=True),
    sa.Column('joined_at', sa.Date(), nullable=True),
    sa.Column('cart_at', sa.DateTime(), nullable=True),
    sa.Column('last_active_at', sa.DateTime(), nullable=True),
    sa.Column('is_test', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('last_outcome', sa.String(length=32), nullable=True),
    sa.Column('last_grade', sa.String(length=1), nullable=True),
    sa.Column('last_result_at', sa.DateTime(), nullable=True),
    sa.Column('last_slots', JSON, nullable=True),
    sa.PrimaryKeyConstraint('customer_id')
    )
    op.create_index(op.f('ix_customers_birthday_mmdd'), 'customers', ['birthday_mmdd'], unique=False)
    op.create_index(op.f('ix_customers_phone_hash'), 'customers', ['phone_hash'], unique=False)
    op.create_table('do_not_contact',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id')
    )
    op.create_index(op.f('ix_do_not_contact_phone_hash'), 'do_not_contact', ['phone_hash'], unique=False)
    op.create_table('store_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('tags',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('tag', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('source_id', sa.String(length=160), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'tag', name='uq_tags_source_tag')
    )
    op.create_index('ix_tags_customer_tag', 'tags', ['customer_id', 'tag'], unique=False)
    op.create_index('ix_tags_tag_at', 'tags', ['tag', 'at'], unique=False)
    op.create_table('orders',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('deposit_paid', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('deposit_product', sa.String(length=128), server_default='', nullable=False),
    sa.Column('deposit_amount', sa.Float(), nullable=True),
    sa.Column('balance_paid', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('purchase_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_purchase_at', sa.Date(), nullable=True),
    sa.Column('last_purchase_day', sa.Integer(), nullable=True),
    sa.Column('total_spent', sa.Float(), server_default='0', nullable=False),
    sa.Column('cycle_days', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.customer_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id')
    )


def downgrade() -> None:
    op.drop_table('orders')
    op.drop_index('ix_tags_tag_at', table_name='tags')
    op.drop_index('ix_tags_customer_tag', table_name='tags')
    op.drop_table('tags')
    op.drop_table('store_meta')
    op.drop_index(op.f('ix_do_not_contact_phone_hash'), table_name='do_not_contact')
    op.drop_table('do_not_contact')
    op.drop_index(op.f('ix_customers_phone_hash'), table_name='customers')
    op.drop_index(op.f('ix_customers_birthday_mmdd'), table_name='customers')
    op.drop_table('customers')
    op.drop_index('ix_conversations_track_ended', table_name='conversations')
    op.drop_index('ix_conversations_ended', table_name='conversations')
    op.drop_index(op.f('ix_conversations_customer_id'), table_name='conversations')
    op.drop_table('conversations')
    op.drop_index('ix_attempts_customer_channel_at', table_name='contact_attempts')
    op.drop_table('contact_attempts')
