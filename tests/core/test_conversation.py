"""core.conversation.TurnRecord: the secondary intent in a turn's JSON (simulate --json, store)."""

from __future__ import annotations

from core.conversation import TurnRecord


def test_secondary_intent_round_trips_and_is_absent_when_not_heard() -> None:
    both = TurnRecord(user="可以那运费谁出", kind="speech", intent="ask_logistics", confidence=0.99,
                      node="answer_logistics", bot=(), actions=(), secondary=("affirm", 0.987654))
    data = both.to_json()
    assert data["secondary_intent"] == {"name": "affirm", "confidence": 0.9877}
    assert TurnRecord.from_json(data).secondary == ("affirm", 0.9877)
    one = TurnRecord(user="好的", kind="speech", intent="affirm", confidence=0.9, node="n", bot=(), actions=())
    assert "secondary_intent" not in one.to_json()
    assert TurnRecord.from_json(one.to_json()).secondary is None  # older records have no key either
