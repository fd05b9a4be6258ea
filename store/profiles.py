"""Database rows → Customer values and the profile dict served at GET /v1/customers/{id}."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from core.customers import Customer


def customer_from_row(row: Any, tags: frozenset[str], do_not_contact: bool) -> Customer:
    """A Customer from a customers ⟕ orders row (missing order summary → defaults)."""
    return Customer(
        customer_id=row.customer_id, phone_masked=row.phone_masked or "", name=row.name or "",
        persona_group=row.persona_group or "", price_sensitivity=row.price_sensitivity or "medium",
        channel=row.channel or "", deposit_paid=bool(row.deposit_paid),
        deposit_product=row.deposit_product or "", deposit_amount=row.deposit_amount,
        balance_paid=bool(row.balance_paid), purchase_count=int(row.purchase_count or 0),
        last_purchase_at=row.last_purchase_at, total_spent=float(row.total_spent or 0.0),
        cycle_days=row.cycle_days, birthday=row.birthday, tags=tags,
        last_product=getattr(row, "last_product", None) or "",
        balance_amount=getattr(row, "balance_amount", None), do_not_contact=do_not_contact,
        last_outcome=row.last_outcome, last_grade=row.last_grade,
        last_slots=dict(row.last_slots or {}), is_test=bool(row.is_test),
        joined_at=getattr(row, "joined_at", None), last_active_at=getattr(row, "last_active_at", None),
        gender=getattr(row, "gender", "") or "", external_userid=getattr(row, "external_userid", None),
    )


def profile_dict(customer: Customer, last_result_at: datetime | None, dnc_reason: str | None,
                 tz: tzinfo) -> dict[str, Any]:
    """JSON-ready profile; the phone only masked."""
    return {
        "customer_id": customer.customer_id,
        "phone": customer.phone_masked,
        "name": customer.name,
        "persona_group": customer.persona_group,
        "price_sensitivity": customer.price_sensitivity,
        "channel": customer.channel,
        "is_test": customer.is_test,
        "joined_at": None if customer.joined_at is None else customer.joined_at.isoformat(),
        "last_active_at": None if customer.last_active_at is None
        else customer.last_active_at.astimezone(tz).isoformat(),
        "tags": sorted(customer.tags),
        "last_outcome": customer.last_outcome,
        "last_grade": customer.last_grade,
        "last_contact_at": None if last_result_at is None else last_result_at.astimezone(tz).isoformat(),
        "do_not_contact": dnc_reason is not None,
        "do_not_contact_reason": dnc_reason,
        "order": {
            "deposit_paid": customer.deposit_paid, "deposit_product": customer.deposit_product,
            "deposit_amount": customer.deposit_amount, "balance_paid": customer.balance_paid,
            "purchase_count": customer.purchase_count,
            "last_purchase_at": None if customer.last_purchase_at is None
            else customer.last_purchase_at.isoformat(),
            "total_spent": customer.total_spent, "cycle_days": customer.cycle_days,
            "last_product": customer.last_product, "balance_amount": customer.balance_amount,
        },
    }
