"""Builders for test values (real dataclasses, no mocks)."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.conversation import BotAction, ConversationResult, TurnRecord, Utterance
from core.customers import CustomerRecord
from core.vocab import grade_for

from .conftest import NOW


def result(conversation_id: str, customer_id: str, outcome: str = "high_intent",
           tags: tuple[str, ...] = (), ended_at: datetime = NOW, track: str = "presale_deposit",
           channel: str = "call") -> ConversationResult:
    """A finished two-turn conversation."""
    turns = (
        TurnRecord(user=None, kind="start", intent=None, confidence=None, node="opening",
                   bot=(Utterance("greet", "您好，这里是小美"),), actions=(BotAction("listen", timeout_ms=5000),)),
        TurnRecord(user="多少钱", kind="speech", intent="ask_price", confidence=0.91, node="price",
                   bot=(Utterance("price", "定金50元抵100元"),), actions=(BotAction("hangup"),), barged_in=True),
    )
    all_tags = tuple(dict.fromkeys((outcome, *tags)))
    return ConversationResult(
        conversation_id=conversation_id, customer_id=customer_id, track=track, persona="xiaomei",
        channel=channel, variant="a", started_at=ended_at - timedelta(minutes=2), ended_at=ended_at,
        outcome=outcome, grade=grade_for(outcome, set(all_tags)), tags=tuple(tags),
        slots={"promised_pay_time": "2026-06-02T20:00:00+08:00"}, node_path=("opening", "price"),
        turns=turns, ended_by="bot",
    )


def customer(customer_id: str, phone: str, **fields: object) -> CustomerRecord:
    return CustomerRecord(customer_id=customer_id, phone=phone, **fields)  # type: ignore[arg-type]
