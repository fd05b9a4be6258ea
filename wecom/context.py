"""Who the agent is chatting with: profile, lifecycle stage, last call and the template variables.

Built from the store's Customer (and its profile dict when the store has one); pure given `now`,
so the suggester's ranking can be tested and benchmarked without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from core.customers import Customer
from dialogue.render import speak_value
from wecom.library import Library, LifecycleSpec

# Slot names the talk tracks use for the time a customer promised to pay / asked to be called back.
PROMISE_SLOTS = ("promised_pay_time", "pay_time")
CALLBACK_SLOTS = ("callback_time", "callback_at")
# Outcomes that are no sign of life from the customer (they do not end a silent period).
NO_CONTACT = frozenset({"no_response", "hung_up_early", "wrong_number"})


@dataclass(frozen=True, slots=True)
class LastCall:
    """What the customer's latest finished conversation concluded (phone or chat)."""

    outcome: str | None = None
    grade: str | None = None
    at: str | None = None  # ISO 8601
    promised_pay_time: str | None = None  # as spoken: 11月24日下午3点
    callback_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "grade": self.grade, "at": self.at,
                "promised_pay_time": self.promised_pay_time, "callback_time": self.callback_time}


@dataclass(frozen=True, slots=True)
class ChatContext:
    """The customer as the ranking sees them. `variables` fill the reply templates."""

    customer_id: str
    known: bool
    stage: str
    stage_reason: str
    price_sensitivity: str = "medium"
    persona_group: str = ""
    name: str = ""
    phone_masked: str = ""
    tags: frozenset[str] = frozenset()
    do_not_contact: bool = False
    last_call: LastCall = field(default_factory=LastCall)
    product: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    order: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id, "known": self.known, "name": self.name,
            "phone": self.phone_masked, "persona_group": self.persona_group,
            "price_sensitivity": self.price_sensitivity, "stage": self.stage, "stage_reason": self.stage_reason,
            "tags": sorted(self.tags), "do_not_contact": self.do_not_contact,
            "last_call": self.last_call.to_json(), "product": self.product, "order": self.order,
            "address": self.variables.get("customer_name", ""),
        }


def promo_period(spec: LifecycleSpec, today: date) -> str | None:
    """Name of the yearly promotion running on `today`, if any (periods may wrap the year end)."""
    mmdd = (today.month, today.day)
    for p in spec.promo_periods:
        start = tuple(int(x) for x in p.start.split("-"))
        end = tuple(int(x) for x in p.end.split("-"))
        inside = start <= mmdd <= end if start <= end else (mmdd >= start or mmdd <= end)
        if inside:
            return p.name
    return None


def _as_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).date()
        except ValueError:
            return None
    return None


def lifecycle_stage(customer: Customer | None, spec: LifecycleSpec, now: datetime,
                    last_contact_at: str | None = None) -> tuple[str, str]:
    """(stage, reason). Order: just_joined > promo > silent > new > active (documented in docs/wecom.md)."""
    today = now.date()
    if customer is None:
        period = promo_period(spec, today)
        return ("promo", f"promo period {period}") if period else ("new", "not in the store")
    contact = _as_date(last_contact_at)
    joined = customer.joined_at
    recent = timedelta(days=spec.just_joined_days)
    if customer.last_outcome == "wechat_added" and contact is not None and today - contact <= recent:
        return "just_joined", "added on WeCom in the last call"
    if joined is not None and timedelta(0) <= today - joined <= recent:
        return "just_joined", f"joined {joined.isoformat()}"
    if customer.deposit_paid and not customer.balance_paid:
        return "promo", "presale deposit paid, balance open"
    period = promo_period(spec, today)
    if period:
        return "promo", f"promo period {period}"
    seen = [d for d in (_as_date(customer.last_active_at), customer.last_purchase_at,
                        contact if customer.last_outcome not in NO_CONTACT else None) if d is not None]
    if seen and today - max(seen) > timedelta(days=spec.silent_days):
        return "silent", f"no activity since {max(seen).isoformat()}"
    if customer.purchase_count == 0:
        return "new", "never purchased"
    return "active", "purchased, recently active"


COMPOUND_SURNAMES = frozenset({"欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐",
                               "夏侯", "长孙", "宇文", "司徒", "端木", "独孤", "南宫", "西门"})


def polite_address(name: str, gender: str) -> str:
    """How a reply addresses the customer: 姓 + 女士/先生 when the record gives the gender (王芳 →
    王女士); otherwise 亲 (never the full name, and never a guessed gender)."""
    name = name.strip()
    if not name or gender not in ("F", "M"):
        return "亲"
    surname = name[:2] if name[:2] in COMPOUND_SURNAMES else name[0]
    return surname + ("女士" if gender == "F" else "先生")


def _slot(slots: dict[str, object], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = slots.get(name)
        if value not in (None, ""):
            return speak_value(value)
    return None


def build_context(library: Library, persona_vars: dict[str, str], customer_id: str,
                  customer: Customer | None, profile: dict[str, Any] | None, now: datetime,
                  stage: str | None = None) -> ChatContext:
    """The chat context for one customer at `now`; `stage` overrides the computed lifecycle stage."""
    spec = library.spec
    last_contact = (profile or {}).get("last_contact_at")
    computed, reason = lifecycle_stage(customer, spec.lifecycle, now, last_contact)
    if stage:
        computed, reason = stage, "set by the agent"
    variables: dict[str, str] = {**spec.variables, **persona_vars}
    period = promo_period(spec.lifecycle, now.date())
    if period:
        variables["promo_name"] = period
    group = customer.persona_group if customer else ""
    product = ""
    if customer and customer.deposit_product:
        product = customer.deposit_product
    elif group in spec.group_products:
        product = spec.group_products[group]
    if product:
        variables["product"] = product
        facts = spec.products.get(product)
        if facts is not None:
            for key, value in facts.model_dump().items():
                if value:
                    variables[f"product_{key}"] = str(value)
    last = LastCall()
    if customer is not None:
        if customer.name:
            variables["customer_name"] = polite_address(customer.name, customer.gender)
        if customer.deposit_paid and customer.deposit_amount is not None:
            variables["deposit"] = f"{customer.deposit_amount:g}"
        slots = dict(customer.last_slots or {})
        last = LastCall(customer.last_outcome, customer.last_grade, last_contact,
                        _slot(slots, PROMISE_SLOTS), _slot(slots, CALLBACK_SLOTS))
        if last.promised_pay_time:
            variables["promised_pay_time"] = last.promised_pay_time
        if last.callback_time:
            variables["callback_time"] = last.callback_time
        if last.at:
            variables["last_call_at"] = speak_value(last.at)
    order = (profile or {}).get("order") or ({} if customer is None else {
        "deposit_paid": customer.deposit_paid, "deposit_product": customer.deposit_product,
        "deposit_amount": customer.deposit_amount, "balance_paid": customer.balance_paid,
        "purchase_count": customer.purchase_count, "total_spent": customer.total_spent})
    return ChatContext(
        customer_id=customer_id, known=customer is not None, stage=computed, stage_reason=reason,
        price_sensitivity=(customer.price_sensitivity if customer else "medium") or "medium",
        persona_group=group, name=customer.name if customer else "",
        phone_masked=customer.phone_masked if customer else "",
        tags=customer.tags if customer else frozenset(),
        do_not_contact=bool(customer and customer.do_not_contact), last_call=last, product=product,
        variables=variables, order=dict(order),
    )
