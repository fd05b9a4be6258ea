"""Migrating the campaign tables (own Alembic history and version table, beside the store's)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x63616D70  # "camp": serialises concurrent first opens on PostgreSQL


def migrate(engine: Engine) -> None:
    """Upgrade the campaign tables to the newest migration (idempotent, safe with concurrent openers)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
