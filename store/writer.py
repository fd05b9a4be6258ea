"""The store's write statements, each run inside the caller's transaction.

Exactly-once rests on the database: a conversation is inserted with ON CONFLICT DO NOTHING on its
id, tags are unique per (source id, tag), the do-not-contact entry keeps the first reason and the
last-outcome update is guarded by time, so a replay (outbox flush after an ambiguous commit, a
retried HTTP callback) writes nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.customers import CustomerRecord
from store import schema as t
from store.codec import payload_to_row, tag_source
from store.db import insert
from store.pg_batch import follow_ups_pg, insert_conversations_pg
from store.phones import PhoneKeys, protect

OPT_OUT = "do_not_contact"


def is_opt_out(payload: dict[str, Any]) -> bool:
    return payload["outcome"] == OPT_OUT or OPT_OUT in payload["tags"]


def write_results(conn: Connection, payloads: Sequence[dict[str, Any]], now: datetime) -> set[str]:
    """Write result payloads in the caller's transaction; returns the conversation ids that were new."""
    unique: dict[str, dict[str, Any]] = {}
    for p in payloads:
        unique.setdefault(p["conversation_id"], p)
    if not unique:
        return set()
    new_ids, new_rows = _write_results_rows(conn, unique, now)
    opt_outs = [
        {"customer_id": r["customer_id"], "reason": "opt_out",
         "source": f"{r['channel']}:{r['conversation_id']}"[:64], "at": r["ended_at"]}
        for r in new_rows if is_opt_out(r)
    ]
    if opt_outs:
        write_dnc(conn, opt_outs)
    return new_ids


def _write_results_rows(conn: Connection, unique: dict[str, dict[str, Any]],
                        now: datetime) -> tuple[set[str], list[dict[str, Any]]]:
    """The conversation insert is ON CONFLICT DO NOTHING and every
    follow-up write is idempotent (unique (source_id, tag) tags, first-wins do-not-contact,
    last-outcome update guarded by time), so two writers racing on one id still leave one copy of
    everything; the pre-select keeps replays cheap and decides the "new" answer."""
    if conn.dialect.name == "postgresql":
        rows = [payload_to_row(p, now) for p in unique.values()]
        new_ids = insert_conversations_pg(conn, rows)
        new_rows = [r for r in rows if r["conversation_id"] in new_ids]
        if new_rows:
            follow_ups_pg(conn, new_rows, now)
        return new_ids, new_rows
    cid = t.conversations.c.conversation_id
    existing: set[str] = set()
    ids = list(unique)
    for i in range(0, len(ids), 1000):
        existing.update(conn.execute(sa.select(cid).where(cid.in_(ids[i:i + 1000]))).scalars())
    new_rows = [payload_to_row(p, now) for k, p in unique.items() if k not in existing]
    if not new_rows:
        return set(), []
    conn.execute(insert(conn, t.conversations).on_conflict_do_nothing(index_elements=["conversation_id"]),
                 new_rows)
    ensure_customers(conn, {r["customer_id"] for r in new_rows}, now)
    tag_rows = [
        {"customer_id": r["customer_id"], "tag": tag, "source": tag_source(r["channel"]),
         "source_id": r["conversation_id"], "at": r["ended_at"]}
        for r in new_rows for tag in r["tags"]
    ]
    if tag_rows:
        conn.execute(insert(conn, t.tags).on_conflict_do_nothing(index_elements=["source_id", "tag"]),
                     tag_rows)
    latest: dict[str, dict[str, Any]] = {}  # one last-outcome update per customer and batch
    for r in new_rows:
        cur = latest.get(r["customer_id"])
        if cur is None or cur["ended_at"] <= r["ended_at"]:
            latest[r["customer_id"]] = r
    c = t.customers.c
    upd = (t.customers.update()
           .where(c.customer_id == sa.bindparam("b_cid"),
                  sa.or_(c.last_result_at.is_(None),
                         c.last_result_at <= sa.bindparam("b_at", type_=t.UTCDateTime())))
           .values(last_outcome=sa.bindparam("b_outcome"), last_grade=sa.bindparam("b_grade"),
                   last_result_at=sa.bindparam("b_at", type_=t.UTCDateTime()),
                   last_slots=sa.bindparam("b_slots", type_=t.JSONType)))
    conn.execute(upd, [{"b_cid": r["customer_id"], "b_at": r["ended_at"], "b_outcome": r["outcome"],
                        "b_grade": r["grade"], "b_slots": r["slots"]} for r in latest.values()])
    return {r["conversation_id"] for r in new_rows}, new_rows


def ensure_customers(conn: Connection, customer_ids: set[str], now: datetime) -> None:
    """Unknown customers become test customers (the engine may talk to ids not imported yet)."""
    c = t.customers.c
    ids = sorted(customer_ids)
    known: set[str] = set()
    for i in range(0, len(ids), 1000):
        known.update(conn.execute(sa.select(c.customer_id).where(c.customer_id.in_(ids[i:i + 1000]))).scalars())
    missing = [cid for cid in ids if cid not in known]
    if missing:  # ON CONFLICT: a concurrent writer may create the same customer meanwhile
        conn.execute(insert(conn, t.customers).on_conflict_do_nothing(index_elements=["customer_id"]),
                     [{"customer_id": cid, "is_test": True, "created_at": now, "updated_at": now}
                      for cid in missing])


def write_dnc(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Do-not-contact entries (the first reason is kept), with the phone hash so that the same
    number under another customer id is blocked too."""
    ids = {r["customer_id"] for r in rows}
    hashes = dict(conn.execute(
        sa.select(t.customers.c.customer_id, t.customers.c.phone_hash)
        .where(t.customers.c.customer_id.in_(ids))
    ).tuples().all())
    full = [{**r, "phone_hash": hashes.get(r["customer_id"])} for r in rows]
    conn.execute(insert(conn, t.do_not_contact).on_conflict_do_nothing(index_elements=["customer_id"]),
                 full)


def write_attempts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(
        insert(conn, t.contact_attempts).on_conflict_do_nothing(index_elements=["conversation_id"]), rows
    )


def epoch_day(d: date | None) -> int | None:
    return None if d is None else d.toordinal() - date(1970, 1, 1).toordinal()


def upsert_customers(conn: Connection, records: Sequence[CustomerRecord], keys: PhoneKeys,
                     now: datetime) -> None:
    """Insert or replace customers and their order summaries (the import is the source of truth)."""
    cust_rows: list[dict[str, Any]] = []
    order_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    for rec in records:
        phone = protect(rec.phone, keys)
        cust_rows.append({
            "customer_id": rec.customer_id, "phone_hash": phone.hash, "phone_masked": phone.masked,
            "phone_enc": phone.encrypted, "name": rec.name, "channel": rec.channel,
            "persona_group": rec.persona_group, "price_sensitivity": rec.price_sensitivity,
            "timezone": rec.timezone, "birthday": rec.birthday,
            "birthday_mmdd": None if rec.birthday is None else rec.birthday.month * 100 + rec.birthday.day,
            "is_member": rec.is_member, "member_since": rec.member_since, "joined_at": rec.joined_at,
            "cart_at": rec.cart_at,
            "last_active_at": rec.last_active_at, "is_test": False, "created_at": now, "updated_at": now,
            "external_userid": rec.external_userid or None, "gender": rec.gender,
        })
        order_rows.append({
            "customer_id": rec.customer_id, "deposit_paid": rec.deposit_paid,
            "deposit_product": rec.deposit_product, "deposit_amount": rec.deposit_amount,
            "balance_paid": rec.balance_paid, "purchase_count": rec.purchase_count,
            "last_purchase_at": rec.last_purchase_at, "last_purchase_day": epoch_day(rec.last_purchase_at),
            "total_spent": rec.total_spent, "cycle_days": rec.cycle_days,
            "last_product": rec.last_product, "balance_amount": rec.balance_amount, "updated_at": now,
        })
        tag_rows.extend({"customer_id": rec.customer_id, "tag": tag, "source": "import",
                         "source_id": f"import:{rec.customer_id}", "at": now} for tag in rec.tags)
    if not cust_rows:
        return
    ins = insert(conn, t.customers)
    keep = {"customer_id", "created_at"}  # created_at: first time we saw the customer
    conn.execute(ins.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={k: ins.excluded[k] for k in cust_rows[0] if k not in keep}), cust_rows)
    ins_o = insert(conn, t.orders)
    conn.execute(ins_o.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={k: ins_o.excluded[k] for k in order_rows[0] if k != "customer_id"}), order_rows)
    if tag_rows:
        conn.execute(insert(conn, t.tags).on_conflict_do_nothing(index_elements=["source_id", "tag"]),
                     tag_rows)
