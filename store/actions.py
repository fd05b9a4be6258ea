"""Store actions for talk tracks and Rasa assistants (rasa-sdk `Action` classes).

`action_write_outcome`, `action_customer_profile`, `action_mark_do_not_contact` read the tracker
(slots `customer_id`, `call_id`, `track`, `outcome`, `grade`, `tags`; else `sender_id`) and use
the store they are built with (`bound_to(store)`). Built by rasa-sdk without one
(`register_package("store.actions")`), each opens the store of the HUASHU_* settings on first use,
so any Rasa assistant can use them as is.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from core.conversation import ConversationResult, TurnRecord, Utterance
from core.customers import CustomerStore
from core.vocab import GRADES, OUTCOME_SET, TAG_SET, grade_for


class _UsesStore:
    """The store an action was built with, or the settings' store opened on first use."""

    def __init__(self, store: CustomerStore | None = None) -> None:
        self._store = store
        self._lock = threading.Lock()

    @property
    def store(self) -> CustomerStore:
        with self._lock:
            if self._store is None:
                from core.settings import get_settings
                from store import open_store

                self._store = open_store(get_settings())
            return self._store


def _customer_id(tracker: Tracker) -> str:
    return str(tracker.get_slot("customer_id") or tracker.sender_id)


def _conversation_id(tracker: Tracker) -> str:
    """The call id slot (our engine), else Rasa's sender id plus the start of its current session,
    since a Rasa sender id spans many conversations."""
    explicit = tracker.get_slot("call_id") or tracker.get_slot("conversation_id")
    if explicit:
        return str(explicit)
    starts = [e.get("timestamp") for e in tracker.events if e.get("event") == "session_started"]
    if starts and isinstance(starts[-1], int | float):
        return f"{tracker.sender_id}:{int(starts[-1])}"
    return str(tracker.sender_id)


def _channel(tracker: Tracker) -> str:
    channel = tracker.get_latest_input_channel() or tracker.get_slot("channel") or "call"
    return "call" if channel == "call" else "wecom" if channel in ("wecom", "chat") else str(channel)


def _event_time(event: dict[str, Any]) -> datetime | None:
    ts = event.get("timestamp")
    return datetime.fromtimestamp(float(ts), UTC) if isinstance(ts, int | float) else None


def _turns(tracker: Tracker) -> tuple[TurnRecord, ...]:
    """Turns from a Rasa tracker's events: each user message, with the bot messages after it."""
    turns: list[TurnRecord] = []
    for event in tracker.events:
        kind = event.get("event")
        if kind == "user":
            intent = (event.get("parse_data") or {}).get("intent") or {}
            turns.append(TurnRecord(user=event.get("text"), kind="speech", intent=intent.get("name"),
                                    confidence=intent.get("confidence"), node="", bot=(), actions=()))
        elif kind == "bot" and turns:
            last = turns[-1]
            turns[-1] = TurnRecord(last.user, last.kind, last.intent, last.confidence, last.node,
                                   (*last.bot, Utterance(clip="", text=str(event.get("text") or ""))),
                                   last.actions)
    return tuple(turns)


class ActionWriteOutcome(_UsesStore, Action):
    """Write the conversation's outcome, grade and tags (exactly once per conversation id)."""

    def name(self) -> str:
        return "action_write_outcome"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[dict[str, Any]]:
        outcome = str(tracker.get_slot("outcome") or "completed")
        if outcome not in OUTCOME_SET:
            raise ValueError(f"slot outcome={outcome!r} is not a contract outcome")
        raw_tags = tracker.get_slot("tags") or []
        tags = tuple(dict.fromkeys(str(t) for t in ([outcome, *raw_tags]) if str(t) in TAG_SET))
        grade = tracker.get_slot("grade")
        grade = grade if grade in GRADES else grade_for(outcome, set(tags))
        times = [t for t in (_event_time(e) for e in tracker.events) if t is not None]
        now = datetime.now(UTC)
        result = ConversationResult(
            conversation_id=_conversation_id(tracker), customer_id=_customer_id(tracker),
            track=str(tracker.get_slot("track") or "rasa"), persona=str(tracker.get_slot("persona") or ""),
            channel=_channel(tracker), variant=str(tracker.get_slot("variant") or ""),
            started_at=min(times) if times else now, ended_at=max(times) if times else now,
            outcome=outcome, grade=grade, tags=tags,
            slots={k: v for k, v in tracker.slots.items()
                   if k not in ("tags", "outcome", "grade") and v is not None},
            node_path=tuple(str(e.get("name")) for e in tracker.events
                            if e.get("event") == "action" and e.get("name")),
            turns=_turns(tracker), ended_by="bot",
        )
        written = self.store.write_result(result)
        return [SlotSet("outcome_written", True), SlotSet("outcome_new", written), SlotSet("grade", grade)]


class ActionCustomerProfile(_UsesStore, Action):
    """Fill slots from the customer's profile (masked phone only)."""

    def name(self) -> str:
        return "action_customer_profile"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[dict[str, Any]]:
        customer = self.store.get_customer(_customer_id(tracker))
        if customer is None:
            return [SlotSet("customer_known", False)]
        return [
            SlotSet("customer_known", True), SlotSet("customer_name", customer.name or None),
            SlotSet("phone_masked", customer.phone_masked or None),
            SlotSet("persona_group", customer.persona_group or None),
            SlotSet("price_sensitivity", customer.price_sensitivity),
            SlotSet("deposit_paid", customer.deposit_paid), SlotSet("balance_paid", customer.balance_paid),
            SlotSet("product", customer.deposit_product or None),
            SlotSet("purchase_count", customer.purchase_count),
            SlotSet("customer_tags", sorted(customer.tags)),
            SlotSet("last_outcome", customer.last_outcome), SlotSet("last_grade", customer.last_grade),
            SlotSet("do_not_contact", customer.do_not_contact),
        ]


class ActionMarkDoNotContact(_UsesStore, Action):
    """Put the customer on the do-not-contact list, durably, before the bot answers."""

    def name(self) -> str:
        return "action_mark_do_not_contact"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[dict[str, Any]]:
        reason = str(tracker.get_slot("do_not_contact_reason") or "opt_out")
        source = f"{_channel(tracker)}:{_conversation_id(tracker)}"
        self.store.mark_do_not_contact(_customer_id(tracker), reason, source, datetime.now(UTC))
        return [SlotSet("do_not_contact", True)]


def bound_to(store: CustomerStore) -> list[Action]:
    """Every store action, using `store` (what huashu's wiring registers)."""
    return [ActionWriteOutcome(store), ActionCustomerProfile(store), ActionMarkDoNotContact(store)]
