"""PostgreSQL fast path for a batch of results: conversations by COPY into a temp table and one
INSERT … SELECT; customers, tags and last outcome by one statement each with array parameters.

Per-row executemany and SQLAlchemy's many-values INSERT spend more time in psycopg's Python
(per-row dumping, client-side parsing of a huge statement) and in per-statement server overhead
than PostgreSQL spends writing the rows. (Large JSON values are slow as array parameters, hence
COPY for the conversations.) Semantics are those of store.writer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.codec import tag_source

ENSURE_CUSTOMERS = sa.text(
    "INSERT INTO customers (customer_id, is_test, created_at, updated_at) "
    "SELECT x, true, :now, :now FROM unnest(CAST(:ids AS text[])) AS x ON CONFLICT (customer_id) DO NOTHING")
INSERT_TAGS = sa.text(
    "INSERT INTO tags (customer_id, tag, source, source_id, at) SELECT * FROM unnest("
    "CAST(:cid AS text[]), CAST(:tag AS text[]), CAST(:source AS text[]), CAST(:sid AS text[]), "
    "CAST(:at AS timestamp[])) ON CONFLICT (source_id, tag) DO NOTHING")
UPDATE_LAST = sa.text(
    "UPDATE customers AS c SET last_outcome = v.o, last_grade = v.g, last_result_at = v.at, last_slots = v.s "
    "FROM unnest(CAST(:cid AS text[]), CAST(:o AS text[]), CAST(:g AS text[]), CAST(:at AS timestamp[]), "
    "CAST(:s AS jsonb[])) AS v(cid, o, g, at, s) "
    "WHERE c.customer_id = v.cid AND (c.last_result_at IS NULL OR c.last_result_at <= v.at)")


CONV_COLS = ("conversation_id", "customer_id", "track", "persona", "channel", "variant", "started_at",
             "ended_at", "outcome", "grade", "tags", "slots", "node_path", "turns", "ended_by", "written_at")
_JSON_COLS = frozenset({"tags", "slots", "node_path", "turns"})
_STAGE = "huashu_conversation_batch"


def insert_conversations_pg(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """COPY the batch into a per-connection temp table, then one INSERT … SELECT … ON CONFLICT DO
    NOTHING RETURNING: the ids that were really new, whatever other writers did meanwhile."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        # Every batch: a rolled-back transaction also rolls back the temp table's creation.
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
                    "(LIKE conversations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {_STAGE} ({', '.join(CONV_COLS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c], ensure_ascii=False) if c in _JSON_COLS
                                else _utc(r[c]) if isinstance(r[c], datetime) else r[c] for c in CONV_COLS])
        cols = ", ".join(CONV_COLS)
        cur.execute(f"INSERT INTO conversations ({cols}) SELECT {cols} FROM {_STAGE} "
                    "ON CONFLICT (conversation_id) DO NOTHING RETURNING conversation_id")
        new_ids = {row[0] for row in cur.fetchall()}
        cur.execute(f"DELETE FROM {_STAGE}")  # also within this transaction, for the next batch
    return new_ids


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def follow_ups_pg(conn: Connection, new_rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Customers, tags and last outcome for newly inserted conversations: three statements."""
    conn.execute(ENSURE_CUSTOMERS, {"ids": sorted({r["customer_id"] for r in new_rows}), "now": _utc(now)})
    tags: dict[str, list[Any]] = {"cid": [], "tag": [], "source": [], "sid": [], "at": []}
    for r in new_rows:
        for tag in r["tags"]:
            tags["cid"].append(r["customer_id"])
            tags["tag"].append(tag)
            tags["source"].append(tag_source(r["channel"]))
            tags["sid"].append(r["conversation_id"])
            tags["at"].append(_utc(r["ended_at"]))
    if tags["tag"]:
        conn.execute(INSERT_TAGS, tags)
    latest: dict[str, dict[str, Any]] = {}
    for r in new_rows:
        cur = latest.get(r["customer_id"])
        if cur is None or cur["ended_at"] <= r["ended_at"]:
            latest[r["customer_id"]] = r
    conn.execute(UPDATE_LAST, {
        "cid": list(latest), "o": [r["outcome"] for r in latest.values()],
        "g": [r["grade"] for r in latest.values()], "at": [_utc(r["ended_at"]) for r in latest.values()],
        "s": [json.dumps(r["slots"], ensure_ascii=False) for r in latest.values()]})
