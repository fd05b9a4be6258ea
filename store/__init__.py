"""The segmentation store: customers, tags written back exactly once, crowd packages, compliance gate.

`open_store(settings)` is the entry point; everything that touches SQLAlchemy lives in this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings
    from store.sql import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(settings: Settings) -> SqlStore:
    """Open the store at settings.effective_database_url, migrated to the newest schema."""
    from store.sql import open_store as _open

    return _open(settings)


def __getattr__(name: str) -> object:
    if name == "SqlStore":
        from store.sql import SqlStore

        return SqlStore
    raise AttributeError(name)
