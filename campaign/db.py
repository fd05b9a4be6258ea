"""Migrating the campaign tables (own Alembic history and version table, beside the store's)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from store.db import upgrade_to_head

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x63616D70  # "camp": serialises concurrent first opens on PostgreSQL


def migrate(engine: Engine) -> None:
    """Upgrade the campaign tables to the newest migration (idempotent, safe with concurrent openers)."""
    upgrade_to_head(engine, MIGRATIONS_DIR, _LOCK_ID)
