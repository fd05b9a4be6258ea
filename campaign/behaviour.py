"""Simulated customers: deterministic (seeded hash) pickup, talk outcome, payment and reply.

Shared by the in-process simulated gateway of `campaign simulate` and `huashu gateway-sim --serve`.
The shares are round guesses for a presale push, not measurements of real customers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta


def unit(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) fixed by the seed and the parts."""
    h = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


# (kind, share): how a customer's line behaves on every call.
PROFILES = (("invalid_number", 0.03), ("powered_off_once", 0.04), ("voicemail", 0.04), ("busy_prone", 0.12),
            ("no_answer_prone", 0.10), ("answers", 0.67))
# What an answered call ends with (outcome, grade, tags, chance to pay within a day).
TALKS = (("promised_to_pay", "A", ("promised_to_pay",), 0.30, 0.5),
         ("high_intent", "B", ("high_intent", "price_sensitive"), 0.15, 0.3),
         ("not_interested", "D", (), 0.25, 0.02),
         ("call_back_later", "C", (), 0.12, 0.05),
         ("completed", "C", (), 0.15, 0.05),
         ("do_not_contact", "F", (), 0.03, 0.0))
PAY_AFTER_MESSAGE = {"wecom": 0.10, "sms": 0.07}
REPLY_AFTER_WECOM = 0.08


@dataclass(frozen=True, slots=True)
class CallOutcome:
    result: str  # answered | busy | no_answer | unreachable
    reason: str = ""
    outcome: str = ""
    grade: str = ""
    tags: tuple[str, ...] = ()
    pay_chance: float = 0.0
    seconds: int = 40


def profile(seed: int, customer_id: str) -> str:
    u = unit(seed, customer_id, "profile")
    acc = 0.0
    for kind, share in PROFILES:
        acc += share
        if u < acc:
            return kind
    return "answers"


def call(seed: int, customer_id: str, attempt: int) -> CallOutcome:
    kind = profile(seed, customer_id)
    u = unit(seed, customer_id, "call", attempt)
    if kind == "invalid_number":
        return CallOutcome("unreachable", "invalid_number", seconds=8)
    if kind == "powered_off_once" and attempt == 1:
        return CallOutcome("unreachable", "powered_off", seconds=8)
    if kind == "voicemail":
        return CallOutcome("unreachable", "voicemail", seconds=20)
    if kind == "busy_prone" and u < 0.7:
        return CallOutcome("busy", seconds=5)
    if kind == "no_answer_prone" and u < 0.7:
        return CallOutcome("no_answer", seconds=45)
    return talk(seed, customer_id)


def talk(seed: int, customer_id: str) -> CallOutcome:
    u = unit(seed, customer_id, "talk")
    acc = 0.0
    for outcome, grade, tags, share, pay in TALKS:
        acc += share
        if u < acc:
            return CallOutcome("answered", outcome=outcome, grade=grade, tags=tags, pay_chance=pay,
                               seconds=60 + int(120 * unit(seed, customer_id, "len")))
    return CallOutcome("answered", outcome="completed", grade="C", seconds=60)


def pays_after(seed: int, customer_id: str, what: str, chance: float, at: datetime) -> datetime | None:
    """When the customer pays after `what` (a step), or None."""
    if unit(seed, customer_id, "pay", what) >= chance:
        return None
    return at + timedelta(hours=0.5 + 20 * unit(seed, customer_id, "pay_at", what))
