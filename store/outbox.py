"""Durable local outbox (a SQLite file under data_dir) for writes the database could not take.

Every entry is committed with `synchronous=FULL` before `put` returns, so a result or an opt-out
accepted while the database is down survives a crash; `SqlStore.flush_outbox` replays entries
in order and deletes them only after the database committed them (replays are idempotent).
Uses the standard library's sqlite3 on purpose: it must work exactly when SQLAlchemy's
database does not.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTBOX_FILE_NAME = "outbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,            -- result | dnc | attempt
    key TEXT NOT NULL UNIQUE,      -- kind:conversation_id / dnc:customer_id: duplicates are no-ops
    customer_id TEXT NOT NULL,
    blocks_contact INTEGER NOT NULL DEFAULT 0,  -- an opt-out not yet in the database
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    parked INTEGER NOT NULL DEFAULT 0  -- rejected by the database for its content: kept, not replayed
);
CREATE INDEX IF NOT EXISTS ix_outbox_blocks ON outbox (customer_id, blocks_contact);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


class Outbox:
    """Thread-safe; several processes may share the file (SQLite locks it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as err:
            raise OSError(f"cannot open the store outbox {path} (HUASHU_DATA_DIR): {err}") from err

    def put(self, kind: str, key: str, customer_id: str, payload: dict[str, Any],
            blocks_contact: bool = False) -> bool:
        """Durably queue one write; False when the same key is already queued."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO outbox (kind, key, customer_id, blocks_contact, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, f"{kind}:{key}", customer_id, int(blocks_contact),
                 json.dumps(payload, ensure_ascii=False), time.time()),
            )
            return cur.rowcount == 1

    def put_many(self, items: list[tuple[str, str, str, dict[str, Any], bool]]) -> int:
        """Queue several writes in one durable transaction; returns how many were new."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                new = 0
                for kind, key, customer_id, payload, blocks in items:
                    cur = self._conn.execute(
                        "INSERT OR IGNORE INTO outbox (kind, key, customer_id, blocks_contact, payload,"
                        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (kind, f"{kind}:{key}", customer_id, int(blocks),
                         json.dumps(payload, ensure_ascii=False), time.time()),
                    )
                    new += cur.rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return new

    def peek(self, limit: int) -> list[OutboxEntry]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, kind, payload, attempts FROM outbox WHERE parked = 0 ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [OutboxEntry(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def delete(self, ids: list[int]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def mark_failed(self, ids: list[int], error: str) -> None:
        with self._lock:
            self._conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error[:500], i) for i in ids],
            )

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM outbox WHERE parked = 0").fetchone()[0])

    def park(self, entry_id: int, error: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE outbox SET parked = 1, last_error = ? WHERE id = ?", (error[:500], entry_id))

    def parked(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM outbox WHERE parked = 1").fetchone()[0])

    def blocks_contact(self, customer_id: str) -> bool:
        """An opt-out for this customer is queued but not yet in the database."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM outbox WHERE customer_id = ? AND blocks_contact = 1 LIMIT 1", (customer_id,)
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
