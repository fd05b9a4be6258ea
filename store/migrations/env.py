"""Alembic environment: always driven programmatically by store.db.migrate with a live connection."""

from __future__ import annotations

from alembic import context

from store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI without our wrapper: refuse rather than guess a URL
    raise RuntimeError("run migrations through store.open_store (huashu), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
