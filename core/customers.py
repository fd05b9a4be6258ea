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
    last_product: str = ""  # what the last purchase was
    balance_amount: float | None = None  # the balance of the deposit order (presale)
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

    def facts(self) -> dict[str, str]:
        """What the record supports, as text (FACTS lists the names). A fact the record lacks is
        absent, never a placeholder: a deposit's product/amount exist only once it is paid, the
        balance only while it is owed, a last product only after a purchase."""
        out: dict[str, str] = {
            "deposit_paid": _flag(self.deposit_paid), "balance_paid": _flag(self.balance_paid),
            "purchased": _flag(self.purchase_count > 0), "purchase_count": str(self.purchase_count),
        }
        if self.name:
            out["name"] = self.name
        if self.persona_group:
            out["persona_group"] = self.persona_group
        if self.deposit_paid and self.deposit_product:
            out["deposit_product"] = self.deposit_product
        if self.deposit_paid and self.deposit_amount is not None:
            out["deposit_amount"] = f"{self.deposit_amount:g}"
        if self.deposit_paid and not self.balance_paid and self.balance_amount is not None:
            out["balance_amount"] = f"{self.balance_amount:g}"
            if self.deposit_amount is not None:
                out["order_total"] = f"{self.deposit_amount + self.balance_amount:g}"
        if self.purchase_count > 0 and self.last_product:
            out["last_product"] = self.last_product
        if self.purchase_count > 0 and self.last_purchase_at is not None:
            out["last_purchase_at"] = self.last_purchase_at.isoformat()
        if self.purchase_count > 0:
            out["total_spent"] = f"{self.total_spent:g}"
        if self.cycle_days is not None:
            out["cycle_days"] = str(self.cycle_days)
        if self.birthday is not None:
            out["birthday"] = self.birthday.isoformat()
        return out

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


# Customer facts a track variable may bind to (`from: customer.<fact>`), see Customer.facts.
FACTS: dict[str, str] = {
    "name": "the customer's name",
    "persona_group": "persona group (孕妇, 白领女性, 老人, 家庭购买…)",
    "deposit_paid": "true/false",
    "deposit_product": "product of the paid presale deposit (only when deposit_paid)",
    "deposit_amount": "the paid deposit in yuan (only when deposit_paid)",
    "balance_paid": "true/false",
    "balance_amount": "the balance still owed in yuan (deposit paid, balance not yet)",
    "order_total": "deposit_amount + balance_amount (while the balance is owed)",
    "purchased": "true/false: bought at least once",
    "purchase_count": "number of purchases",
    "last_product": "product of the last purchase (only when purchased)",
    "last_purchase_at": "date of the last purchase, YYYY-MM-DD (only when purchased)",
    "total_spent": "total spent in yuan (only when purchased)",
    "cycle_days": "consumption cycle in days",
    "birthday": "birthday, YYYY-MM-DD",
}


def _flag(value: bool) -> str:
    return "true" if value else "false"


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

    def list_conversations(self, track: str | None = None, since: datetime | None = None,
                           customer_id: str | None = None, limit: int | None = None) -> list[ConversationResult]:
        """Finished conversations, oldest first (reports, the CLI)."""
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
    last_product: str = ""
    balance_amount: float | None = None
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

    def as_customer(self) -> Customer:
        """The record as the engine sees it once imported (phone dropped, no tags or history)."""
        return Customer(
            customer_id=self.customer_id, name=self.name, persona_group=self.persona_group,
            price_sensitivity=self.price_sensitivity, channel=self.channel, deposit_paid=self.deposit_paid,
            deposit_product=self.deposit_product, deposit_amount=self.deposit_amount,
            balance_paid=self.balance_paid, purchase_count=self.purchase_count,
            last_purchase_at=self.last_purchase_at, total_spent=self.total_spent, cycle_days=self.cycle_days,
            birthday=self.birthday, last_product=self.last_product, balance_amount=self.balance_amount,
            joined_at=self.joined_at, last_active_at=self.last_active_at, gender=self.gender,
            external_userid=self.external_userid)
