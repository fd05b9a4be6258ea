"""Set-at-a-time versions of the gate for campaign planning (tens of thousands of customers)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import schema as t
from store.gate import DO_NOT_CONTACT, FREQUENCY_CAP, OUTSIDE_CALLING_WINDOW, CallingWindow, Caps, zone

CHUNK = 5000


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def attempted(conn: Connection, conversation_ids: set[str]) -> set[str]:
    """Which of these ids already have a contact attempt."""
    a = t.contact_attempts.c
    found: set[str] = set()
    for chunk in _chunks(sorted(conversation_ids)):
        found.update(conn.execute(sa.select(a.conversation_id).where(a.conversation_id.in_(chunk))).scalars())
    return found


def contact_blockers(conn: Connection, customer_ids: list[str], at: datetime, channel: str,
                     window: CallingWindow, caps: Caps, default_tz: tzinfo) -> dict[str, str]:
    """customer id → refusal reason, for those of `customer_ids` the gate would refuse at `at`."""
    wanted = set(customer_ids)
    out: dict[str, str] = {}
    d, c, a = t.do_not_contact.c, t.customers.c, t.contact_attempts.c
    blocked_hashes = sa.select(d.phone_hash).where(d.phone_hash.is_not(None))
    for cid in conn.execute(sa.select(c.customer_id).where(
            sa.or_(c.customer_id.in_(sa.select(d.customer_id)), c.phone_hash.in_(blocked_hashes)))).scalars():
        if cid in wanted:
            out[cid] = DO_NOT_CONTACT
    default_ok = window.allows(at.astimezone(default_tz))
    own_tz = dict(conn.execute(sa.select(c.customer_id, c.timezone).where(c.timezone.is_not(None))).tuples().all())
    for cid in wanted - out.keys():
        tz_name = own_tz.get(cid)
        ok = default_ok if tz_name is None else window.allows(at.astimezone(zone(tz_name, "customer timezone")))
        if not ok:
            out[cid] = OUTSIDE_CALLING_WINDOW
    day, week = caps.windows(at)
    counts = conn.execute(
        sa.select(a.customer_id, sa.func.count().filter(a.at > day), sa.func.count())
        .where(a.channel == channel, a.at > week, a.at <= at).group_by(a.customer_id)
    ).tuples()
    for cid, n24, n7 in counts:
        if cid in wanted and cid not in out and caps.exceeded(n24, n7):
            out[cid] = FREQUENCY_CAP
    return out
