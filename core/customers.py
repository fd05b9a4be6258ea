"""The segmentation store as the engine, CLI and server see it: a small protocol and its values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from core.conversation import ConversationResult


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as the talk tracks need it. The phone is only ever held masked here."""

    customer_id: str
    phone_masked: str = ""
    name: str = ""
    persona_group: str = ""  # 孕妇 | 白领女性 | 老人 | 家庭购买 | …
    price_sensitivity: str = "medium"  # low | medium | high
    channel: str = ""
    deposit_paid: bool = False
    deposit_product: str = ""
    deposit_amount: float | None = None
    balance_paid: bool = False
    purchase_count: int = 0
    last_purchase_at: date | None = None
    total_spent: float = 0.0
    cycle_days: int | None = None
    birthday: date | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    do_not_contact: bool = False
    last_outcome: str | None = None
    last_grade: str | None = None
    last_slots: dict[str, object] = field(default_factory=dict)
    is_test: bool = False
    joined_at: date | None = None  # acquired by the shop (wecom lifecycle: just joined)
    last_active_at: datetime | None = None  # last seen active (wecom lifecycle: silent)
    gender: str = ""  # F | M | "" (unknown)
    external_userid: str | None = None  # WeCom external contact id

    def track_variables(self) -> dict[str, str]:
        """Template variables a track may use from the profile (only the ones that are known)."""
        out: dict[str, str] = {}
        if self.name:
            out["customer_name"] = self.name
        if self.deposit_product:
            out["product"] = self.deposit_product
        if self.deposit_amount is not None:
            out["deposit"] = f"{self.deposit_amount:g}"
        return out


class CustomerStore(Protocol):
    """What the engine and its callers need from the store. Implementations: store.sql."""

    def get_customer(self, customer_id: str) -> Customer | None: ...

    def ensure_customer(self, customer_id: str) -> Customer:
        """The customer, created as a test customer when unknown (simulate's contract)."""
        ...

    def check_contact(self, customer_id: str, at: datetime, channel: str = "call",
                      conversation_id: str | None = None) -> str | None:
        """None when a contact may start now, else the contract's refusal reason code.
        `conversation_id`: the contact being (re)started; its own recorded attempt does not count
        towards the caps (a gateway retrying a start is the same call, not a second one)."""
        ...

    def open_contact(self, customer_id: str, at: datetime, channel: str = "call",
                     conversation_id: str | None = None) -> tuple[Customer, str | None]:
        """`ensure_customer` + `check_contact` for a contact about to start, in one read."""
        ...

    def record_attempt(
        self, customer_id: str, conversation_id: str, at: datetime, channel: str = "call"
    ) -> None:
        ...

    def customer_profile(self, customer_id: str) -> dict[str, Any] | None:
        """What `GET /v1/customers/{id}` returns (masked phone only); None for an unknown id."""
        ...

    def mark_do_not_contact(self, customer_id: str, reason: str, source: str, at: datetime) -> None:
        """Durable before it returns: an opt-out is honoured at once and forever."""
        ...

    def write_result(self, result: ConversationResult) -> bool:
        """Outcome, grade and tags in one transaction; idempotent on conversation_id.
        True when newly written; never loses a result (outbox when the DB is down)."""
        ...

    def close(self) -> None:
        """Release connections (the process that opened the store closes it)."""
        ...


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One customer as imported (CSV, demo generator, merchant sync) with its order summary.

    `phone` is the raw number: it lives only in memory until `SqlStore.upsert_customers` hashes,
    masks and encrypts it. Times are timezone-aware.
    """

    customer_id: str
    phone: str
    name: str = ""
    persona_group: str = ""
    price_sensitivity: str = "medium"
    channel: str = ""
    deposit_paid: bool = False
    deposit_product: str = ""
    deposit_amount: float | None = None
    balance_paid: bool = False
    purchase_count: int = 0
    last_purchase_at: date | None = None
    total_spent: float = 0.0
    cycle_days: int | None = None
    birthday: date | None = None
    is_member: bool = False
    member_since: date | None = None
    joined_at: date | None = None
    cart_at: datetime | None = None
    last_active_at: datetime | None = None
    timezone: str | None = None
    tags: tuple[str, ...] = ()
    external_userid: str | None = None  # WeCom external contact id (sidebar → customer)
    gender: str = ""  # F | M | "" (unknown): the sidebar's polite address 姓 + 女士/先生

    def __repr__(self) -> str:  # never print the raw phone
        return f"CustomerRecord(customer_id={self.customer_id!r}, …)"
