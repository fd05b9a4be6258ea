"""Order facts the talk tracks state: the last purchased product and the presale balance.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("last_product", sa.String(length=128), server_default="", nullable=False))
        batch.add_column(sa.Column("balance_amount", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("balance_amount")
        batch.drop_column("last_product")
