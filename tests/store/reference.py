"""A plain-Python reading of the segment predicates, to check the SQL compiler against.

Written from the documented meaning (docs/store.md), not from the SQL: if they disagree on any
customer of the demo data, one of them is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.conversation import ConversationResult
from core.customers import CustomerRecord
from store.segments import RFM_CLASSES, Rfm, Segment, Where


@dataclass
class World:
    """What the store knows, as plain values."""

    now: datetime
    customers: list[CustomerRecord]
    results: list[ConversationResult]
    dnc_ids: set[str] = field(default_factory=set)
    created_at: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.today: date = self.now.date()
        self.tags: dict[str, list[tuple[str, datetime]]] = {}
        self.last: dict[str, ConversationResult] = {}
        for r in self.results:
            for tag in dict.fromkeys((r.outcome, *r.tags)):
                self.tags.setdefault(r.customer_id, []).append((tag, r.ended_at))
            if r.customer_id not in self.last or self.last[r.customer_id].ended_at <= r.ended_at:
                self.last[r.customer_id] = r
            if r.outcome == "do_not_contact":
                self.dnc_ids.add(r.customer_id)
        for c in self.customers:
            for tag in c.tags:
                self.tags.setdefault(c.customer_id, []).append((tag, self.created_at.get(c.customer_id, self.now)))
        by_id = {c.customer_id: c for c in self.customers}
        self.dnc_phones = {by_id[i].phone for i in self.dnc_ids if i in by_id}

    def days_since_purchase(self, c: CustomerRecord) -> int | None:
        return None if c.last_purchase_at is None else (self.today - c.last_purchase_at).days

    def scores(self, c: CustomerRecord, rfm: Rfm) -> tuple[int, int, int]:
        d = self.days_since_purchase(c)
        r = 0 if d is None else next((5 - i for i, b in enumerate(rfm.recency_days) if d <= b), 1)
        if c.purchase_count <= 0:
            return r, 0, 0
        f = next((5 - i for i, b in enumerate(rfm.frequency) if c.purchase_count >= b), 1)
        m = next((5 - i for i, b in enumerate(rfm.monetary) if c.total_spent >= b), 1)
        return r, f, m

    def active(self, c: CustomerRecord, days: int) -> bool:
        d = self.days_since_purchase(c)
        return bool((c.last_active_at and c.last_active_at >= self.now - timedelta(days=days))
                    or (d is not None and d <= days))

    def joined(self, c: CustomerRecord, days: int) -> bool:
        if c.joined_at is not None:
            return c.joined_at >= self.today - timedelta(days=days)
        return self.created_at.get(c.customer_id, self.now) >= self.now - timedelta(days=days)

    def has_tag(self, c: CustomerRecord, tags: list[str], within: int | None) -> bool:
        since = None if within is None else self.now - timedelta(days=within)
        return any(t in tags and (since is None or at >= since) for t, at in self.tags.get(c.customer_id, ()))

    def match(self, c: CustomerRecord, w: Where, rfm: Rfm) -> bool:
        last = self.last.get(c.customer_id)
        checks = []
        if w.persona_group is not None:
            checks.append(c.persona_group in w.persona_group)
        if w.price_sensitivity is not None:
            checks.append(c.price_sensitivity in w.price_sensitivity)
        if w.channel is not None:
            checks.append(c.channel in w.channel)
        if w.last_outcome is not None:
            checks.append(last is not None and last.outcome in w.last_outcome)
        if w.member is not None:
            checks.append(c.is_member == w.member)
        if w.deposit_paid is not None:
            checks.append(c.deposit_paid == w.deposit_paid)
        if w.balance_paid is not None:
            checks.append(c.balance_paid == w.balance_paid)
        if w.repurchase is not None:
            tier = "never" if c.purchase_count == 0 else "once" if c.purchase_count == 1 else "repeat"
            checks.append(tier in w.repurchase)
        if w.cart_without_purchase is not None:
            checks.append((c.cart_at is not None and c.purchase_count == 0) == w.cart_without_purchase)
        if w.active_within_days is not None:
            checks.append(self.active(c, w.active_within_days))
        if w.inactive_for_days is not None:
            checks.append(not self.active(c, w.inactive_for_days))
        if w.joined_within_days is not None:
            checks.append(self.joined(c, w.joined_within_days))
        if w.cycle_due is not None:
            d = self.days_since_purchase(c)
            checks.append(c.cycle_days is not None and d is not None and d >= c.cycle_days * w.cycle_due)
        rs, fs, ms = self.scores(c, rfm)
        if w.rfm_min is not None:
            checks.append(rs >= w.rfm_min.r and fs >= w.rfm_min.f and ms >= w.rfm_min.m)
        if w.rfm_class is not None:
            hi = rfm.high_from
            highs = (rs >= hi, fs >= hi, ms >= hi)
            checks.append(c.purchase_count >= 1 and any(RFM_CLASSES[k] == highs for k in w.rfm_class))
        if w.quadrant is not None:
            new, bought = self.joined(c, 30), c.purchase_count >= 1
            quad = "new" if new else f"{'purchased' if bought else 'unpurchased'}_" \
                                      f"{'member' if c.is_member else 'nonmember'}"
            checks.append(quad in w.quadrant)
        if w.tags_any is not None:
            checks.append(self.has_tag(c, w.tags_any, w.tag_within_days))
        for tag in w.tags_all or ():
            checks.append(self.has_tag(c, [tag], w.tag_within_days))
        if w.tags_none is not None:
            checks.append(not self.has_tag(c, w.tags_none, None))
        if w.call_back_due is not None:
            checks.append(last is not None and last.outcome == "call_back_later"
                          and last.ended_at <= self.now - timedelta(hours=w.call_back_due.after_hours))
        if w.birthday_within_days is not None:
            days = {(self.today + timedelta(days=i)) for i in range(w.birthday_within_days + 1)}
            mmdd = {(d.month, d.day) for d in days} | ({(2, 29)} if any((d.month, d.day) == (2, 28)
                                                                         for d in days) else set())
            checks.append(c.birthday is not None and (c.birthday.month, c.birthday.day) in mmdd)
        if w.any_of is not None:
            checks.append(any(self.match(c, x, rfm) for x in w.any_of))
        if w.not_ is not None:
            checks.append(not self.match(c, w.not_, rfm))
        return all(checks)

    def evaluate(self, seg: Segment) -> set[str]:
        best: dict[str, CustomerRecord] = {}
        for c in self.customers:
            if not self.match(c, seg.where, seg.rfm):
                continue
            if c.customer_id in self.dnc_ids or c.phone in self.dnc_phones:
                continue
            cur = best.get(c.phone)
            if cur is None or (-c.total_spent, c.customer_id) < (-cur.total_spent, cur.customer_id):
                best[c.phone] = c
        return {c.customer_id for c in best.values()}
