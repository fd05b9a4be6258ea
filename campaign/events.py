"""Shop events (`POST /v1/events`, `customers import`) and call results, idempotent by event_id.

A paid event updates the customer's order summary and tags at once (so the next step's `when`
sees it) and starts every step triggered by it; a call result moves its touch on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign import tables as ct
from campaign.spec import PAID_EVENTS
from store import schema as t
from store.db import insert

if TYPE_CHECKING:
    from campaign.runner import Runner

SHOP_EVENTS = (*PAID_EVENTS, "wecom_reply", "tag")
CALL_RESULT = "call_result"
CALL_RESULTS = ("answered", "busy", "no_answer", "failed", "unreachable")


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    type: str
    customer_id: str
    at: datetime
    body: dict[str, Any]


def record(runner: Runner, event: Event) -> dict[str, Any]:
    """Apply an event once. The same event_id again: `{"duplicate": true}`, no second effect."""
    def run(conn: Connection) -> bool:
        ins = (insert(conn, ct.campaign_events).on_conflict_do_nothing(index_elements=["event_id"])
               .returning(ct.campaign_events.c.event_id))  # RETURNING: rowcount is -1 on psycopg here
        new = conn.execute(ins, {"event_id": event.event_id, "type": event.type, "customer_id": event.customer_id,
                                 "at": event.at, "body": event.body}).first() is not None
        if new and event.type in PAID_EVENTS and not event.body.get("applied"):
            _apply_payment(conn, event)
        if new and event.type == "tag":
            _tag(conn, event, str(event.body.get("tag", "")))
        return new
    if not runner.store._tx(run, write=True):
        return {"event_id": event.event_id, "duplicate": True}
    out: dict[str, Any] = {"event_id": event.event_id, "duplicate": False}
    if event.type == CALL_RESULT:
        out["touch"] = runner.on_call_result(str(event.body.get("call_id", "")), str(event.body.get("result", "")),
                                             str(event.body.get("reason", "")), event.at,
                                             conversation_id=str(event.body.get("conversation_id", "")))
        return out
    trigger = f"tag:{event.body.get('tag')}" if event.type == "tag" else event.type
    out["started"] = runner.on_event(trigger, event.customer_id, event.at)
    return out


def paid_state(store: Any, customer_ids: Sequence[str]) -> dict[str, tuple[bool, bool, int]]:
    """customer id → (deposit_paid, balance_paid, purchase_count) now (before an import)."""
    o = t.orders.c
    ids = sorted(set(customer_ids))
    out: dict[str, tuple[bool, bool, int]] = {}

    def run(conn: Connection) -> None:
        for i in range(0, len(ids), 2000):
            for cid, dep, bal, n in conn.execute(sa.select(o.customer_id, o.deposit_paid, o.balance_paid,
                                                           o.purchase_count).where(o.customer_id.in_(ids[i:i + 2000]))):
                out[cid] = (bool(dep), bool(bal), int(n or 0))
    store._tx(run)
    return out


def import_events(runner: Runner, before: dict[str, tuple[bool, bool, int]], records: Sequence[Any],
                  at: datetime) -> int:
    """`customers import` as shop events: a customer whose import newly shows a deposit, a balance or
    another order gets that event (the import already updated the order summary). Returns how many."""
    n = 0
    for rec in records:
        dep, bal, count = before.get(rec.customer_id, (False, False, 0))
        changes = [("deposit_paid", "deposit_paid", rec.deposit_paid and not dep),
                   ("balance_paid", "balance_paid", rec.balance_paid and not bal),
                   (f"order_paid:{rec.purchase_count}", "order_paid", rec.purchase_count > count)]
        for key, kind, happened in changes:
            if happened:
                out = record(runner, Event(f"import:{rec.customer_id}:{key}", kind, rec.customer_id, at,
                                           {"applied": True, "source": "import"}))
                n += 0 if out.get("duplicate") else 1
    return n


def _apply_payment(conn: Connection, event: Event) -> None:
    c, o = t.customers.c, t.orders.c
    if conn.execute(sa.select(c.customer_id).where(c.customer_id == event.customer_id)).first() is None:
        return  # an unknown customer: the event is kept, nothing to update
    values: dict[str, Any] = {"updated_at": event.at}
    if event.type == "deposit_paid":
        values["deposit_paid"] = True
    elif event.type == "balance_paid":
        values.update(deposit_paid=True, balance_paid=True)
    ins = insert(conn, t.orders).on_conflict_do_nothing(index_elements=["customer_id"])
    conn.execute(ins, {"customer_id": event.customer_id, "updated_at": event.at})
    if event.type == "order_paid":
        values["purchase_count"] = o.purchase_count + 1
        amount = event.body.get("amount")
        if isinstance(amount, int | float):
            values["total_spent"] = o.total_spent + float(amount)
    conn.execute(t.orders.update().where(o.customer_id == event.customer_id).values(**values))
    _tag(conn, event, event.type)


def _tag(conn: Connection, event: Event, tag: str) -> None:
    if not tag:
        return
    ins = insert(conn, t.tags).on_conflict_do_nothing(index_elements=["source_id", "tag"])
    conn.execute(ins, {"customer_id": event.customer_id, "tag": tag[:32], "source": "event",
                       "source_id": f"event:{event.event_id}"[:160], "at": event.at})
