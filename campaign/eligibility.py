"""Who of some customers still belongs to a step at an instant: the crowd and the step's `when`,
evaluated from the store at that moment (a customer who paid since planning drops out)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from store import schema as t
from store.segment_sql import Compiler, Target
from store.segments import Segment, Where

if TYPE_CHECKING:
    from store.sql import SqlStore

C = t.customers.c


def still_in(store: SqlStore, crowd: Segment, when: Where, customer_ids: Iterable[str], at: datetime) -> set[str]:
    ids = sorted(set(customer_ids))
    comp = Compiler(at, store.tz, crowd.rfm)
    conds = [comp.where(crowd.where), comp.where(when)]
    if not crowd.include_test:
        conds.append(C.is_test == sa.false())
    out: set[str] = set()

    def run(conn: sa.Connection) -> None:
        for i in range(0, len(ids), 2000):
            q = (sa.select(C.customer_id).select_from(t.customers.outerjoin(t.orders))
                 .where(C.customer_id.in_(ids[i:i + 2000]), *conds))
            out.update(conn.execute(q).scalars())
    store._tx(run)
    return out


def target_if_in(store: SqlStore, crowd: Segment, when: Where, customer_id: str, at: datetime) -> Target | None:
    """`still_in` for one customer, answering with what a message needs about them (one query)."""
    return targets_in(store, crowd, when, [customer_id], at).get(customer_id)


def targets_in(store: SqlStore, crowd: Segment, when: Where, customer_ids: list[str], at: datetime) -> dict[str, Target]:
    """`still_in` for a batch (≤ a few thousand ids), with what a message needs about each (one query)."""
    comp = Compiler(at, store.tz, crowd.rfm)
    o = t.orders.c
    conds = [C.customer_id.in_(customer_ids), comp.where(crowd.where), comp.where(when)]
    if not crowd.include_test:
        conds.append(C.is_test == sa.false())
    q = (sa.select(C.customer_id, C.phone_masked, C.name, C.persona_group, C.price_sensitivity,
                   sa.func.coalesce(o.deposit_paid, sa.false()), sa.func.coalesce(o.balance_paid, sa.false()),
                   sa.func.coalesce(o.deposit_product, ""), C.last_outcome)
         .select_from(t.customers.outerjoin(t.orders)).where(*conds))
    rows = store._tx(lambda conn: conn.execute(q).all())
    return {r[0]: Target(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), r[7], r[8]) for r in rows}
