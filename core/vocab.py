"""The public vocabulary of ../shared/CONTRACT.md: intents, outcomes, tags, grades.

Everything that names an intent or a tag (talk tracks, NLU data, the store) is checked against
these sets at load time, so a typo fails fast instead of silently never matching.
"""

from __future__ import annotations

INTENTS: tuple[str, ...] = (
    "greet", "affirm", "deny", "opt_out", "busy", "ask_identity", "ask_robot", "ask_price",
    "ask_detail", "ask_how_to_add", "already_added", "not_received", "already_paid", "will_pay",
    "payment_problem", "ask_deposit_rules", "ask_product", "ask_logistics", "complaint",
    "wrong_person", "repeat", "thanks_bye", "out_of_scope",
)
INTENT_SET = frozenset(INTENTS)

OUTCOMES: tuple[str, ...] = (
    "high_intent", "wechat_added", "deposit_paid", "balance_paid", "promised_to_pay",
    "payment_issue", "not_interested", "do_not_contact", "call_back_later", "wrong_number",
    "complaint", "no_response", "hung_up_early", "transferred", "completed", "unreachable",
)
OUTCOME_SET = frozenset(OUTCOMES)

# Why a call never reached the customer; exactly one goes with the `unreachable` outcome.
UNREACHABLE_REASONS: tuple[str, ...] = (
    "powered_off", "invalid_number", "suspended", "busy", "no_answer", "voicemail", "call_screening",
)
UNREACHABLE_REASON_SET = frozenset(UNREACHABLE_REASONS)

EXTRA_TAGS: tuple[str, ...] = (
    "price_sensitive", "asked_robot", "asked_product", "sms_resent", "interrupted", *UNREACHABLE_REASONS,
)
TAG_SET = frozenset(OUTCOMES) | frozenset(EXTRA_TAGS)

GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")

# Customer segments the shipped personas, playbooks and demo data speak to (contract: persona_group
# may hold others; these are the ones our data is written for), and price-sensitivity tiers.
PERSONA_GROUPS: tuple[str, ...] = ("孕妇", "白领女性", "老人", "家庭购买")
PRICE_TIERS: tuple[str, ...] = ("low", "medium", "high")

# Grade per outcome (contract: A committed, B interested, C neutral, D refused, E unreachable,
# F blocked). `completed` and `transferred` depend on what else happened; see grade_for().
OUTCOME_GRADE: dict[str, str] = {
    "high_intent": "A", "wechat_added": "A", "deposit_paid": "A", "balance_paid": "A",
    "promised_to_pay": "A", "payment_issue": "B", "not_interested": "D", "do_not_contact": "F",
    "call_back_later": "C", "wrong_number": "E", "complaint": "F", "no_response": "E",
    "hung_up_early": "E", "transferred": "C", "completed": "C", "unreachable": "E",
}

# Tags that show interest without commitment lift a neutral outcome to B.
INTEREST_TAGS = frozenset({"price_sensitive", "asked_product", "high_intent"})


def grade_for(outcome: str, tags: frozenset[str] | set[str]) -> str:
    """Grade of a finished conversation from its outcome and tags (contract grade scale)."""
    if "do_not_contact" in tags or "complaint" in tags:
        return "F"
    grade = OUTCOME_GRADE[outcome]
    if grade == "C" and tags & INTEREST_TAGS:
        return "B"
    return grade

# Default DTMF meaning (contract); a track may override. "transfer" is a pseudo-intent that
# routes to a human.
DEFAULT_DTMF: dict[str, str] = {"1": "affirm", "2": "deny", "0": "transfer", "9": "repeat"}
