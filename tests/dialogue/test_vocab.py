"""The contract's vocabulary: the `unreachable` outcome and its reason tags."""

from __future__ import annotations

from core.vocab import OUTCOME_SET, TAG_SET, UNREACHABLE_REASONS, grade_for
from dialogue.policy import DEFAULT_OUTCOME_PRIORITY


def test_unreachable_is_an_outcome_of_grade_e() -> None:
    assert "unreachable" in OUTCOME_SET
    assert grade_for("unreachable", {"unreachable", "powered_off"}) == "E"


def test_reason_tags_are_tags_but_not_outcomes() -> None:
    assert set(UNREACHABLE_REASONS) == {"powered_off", "invalid_number", "suspended", "busy", "no_answer",
                                        "voicemail", "call_screening"}
    assert set(UNREACHABLE_REASONS) <= TAG_SET
    assert not set(UNREACHABLE_REASONS) & OUTCOME_SET


def test_unreachable_outranks_conversation_outcomes_but_not_opt_out() -> None:
    order = list(DEFAULT_OUTCOME_PRIORITY)
    assert order.index("do_not_contact") < order.index("unreachable") < order.index("completed")
