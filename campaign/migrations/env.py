"""Alembic environment of the campaign tables (own version table beside the store's)."""

from __future__ import annotations

from alembic import context

from campaign.tables import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI without our wrapper: refuse rather than guess a URL
    raise RuntimeError("run campaign migrations through campaign.db.migrate (huashu), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
