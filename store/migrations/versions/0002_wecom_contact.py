"""customers.external_userid (WeCom external contact → customer) and customers.gender.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("external_userid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("gender", sa.String(length=1), nullable=False, server_default=""))
        batch.create_unique_constraint("uq_customers_external_userid", ["external_userid"])


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint("uq_customers_external_userid", type_="unique")
        batch.drop_column("gender")
        batch.drop_column("external_userid")
