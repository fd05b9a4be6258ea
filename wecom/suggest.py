"""Suggested replies for a WeCom agent: classify the customer's message with the call NLU, then rank
the reply library for this customer (intent, lifecycle stage, persona group, price-sensitivity tier,
what the last call concluded). Pure: no I/O besides the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.parse import ClassifyContext, IntentClassifier, Parse
from dialogue.render import render_text
from wecom.context import ChatContext
from wecom.library import ANY_INTENT, Library, Reply

# A customer who opted out still gets answers when they write to us, never a promotion.
BLOCKED_ANGLES_DO_NOT_CONTACT = frozenset({"promotion"})
RETRY_WITH_HISTORY_BELOW = 0.5  # classify "previous message + latest" when the latest alone is unclear
HISTORY_TURNS = 10


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One earlier chat message: `role` is "customer" or "agent"."""

    role: str
    text: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: str
    text: str
    score: float
    angle: str
    reasons: tuple[str, ...]
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "score": round(self.score, 4), "angle": self.angle,
                "reasons": list(self.reasons), "tags": list(self.tags)}


@dataclass(frozen=True, slots=True)
class SuggestResult:
    parse: Parse
    context: ChatContext
    suggestions: tuple[Suggestion, ...]

    @property
    def intent(self) -> str:
        return self.parse.intent

    def to_json(self) -> dict[str, Any]:
        return {"intent": self.parse.intent, "confidence": round(float(self.parse.confidence), 4),
                "suggestions": [s.to_json() for s in self.suggestions], "context": self.context.to_json()}


class Suggester:
    """Ranks the reply library for one customer and message. Thread-safe (no mutable state)."""

    def __init__(self, library: Library, classifier: IntentClassifier) -> None:
        self.library = library
        self.classifier = classifier

    def classify(self, message: str, history: Sequence[HistoryItem] = (), now: datetime | None = None) -> Parse:
        """The message's intent; an unclear short message is read together with the previous one."""
        ctx = ClassifyContext((), now)
        parse = self.classifier.classify(message, ctx)
        if parse.confidence < RETRY_WITH_HISTORY_BELOW:
            previous = next((h.text for h in reversed(history) if h.role == "customer" and h.text.strip()), "")
            if previous:
                joined = self.classifier.classify(f"{previous}，{message}", ctx)
                if joined.confidence > parse.confidence:
                    return Parse(message, joined.intent, joined.confidence, joined.ranking, parse.entities,
                                 source="context")
        return parse

    def suggest(self, message: str, context: ChatContext, history: Sequence[HistoryItem] = (),
                now: datetime | None = None, k: int = 3) -> SuggestResult:
        parse = self.classify(message, history[-HISTORY_TURNS:], now)
        return SuggestResult(parse, context, tuple(self.rank(parse.intent, context, history, k)))

    def rank(self, intent: str, context: ChatContext, history: Sequence[HistoryItem] = (),
             k: int = 3) -> list[Suggestion]:
        """Top `k` replies for `intent`, best first; ties broken by reply id (deterministic)."""
        sent = {h.text.strip() for h in history[-HISTORY_TURNS:] if h.role == "agent"}
        scored: list[Suggestion] = []
        seen_texts: set[str] = set()
        for reply in self.library.for_intent(intent):
            suggestion = self._score(reply, intent, context, sent)
            if suggestion is not None and suggestion.text not in seen_texts:
                scored.append(suggestion)
                seen_texts.add(suggestion.text)
        scored.sort(key=lambda s: (-s.score, s.id))
        return scored[:k]

    def _score(self, reply: Reply, intent: str, ctx: ChatContext, sent: set[str]) -> Suggestion | None:
        spec = self.library.spec
        w = spec.weights
        tier = ctx.price_sensitivity if ctx.price_sensitivity in spec.playbook else "medium"
        rule = spec.playbook[tier]
        # Hard constraints: what a reply declares, the customer must match.
        if reply.angle in rule.avoid:
            return None
        if ctx.do_not_contact and reply.angle in BLOCKED_ANGLES_DO_NOT_CONTACT:
            return None
        if reply.price_tiers and tier not in reply.price_tiers:
            return None
        if reply.stages and ctx.stage not in reply.stages:
            return None
        if reply.groups and ctx.persona_group not in reply.groups:
            return None
        if reply.after_outcomes and ctx.last_call.outcome not in reply.after_outcomes:
            return None
        values = ctx.variables
        if any(not values.get(name) for name in (*reply.requires, *reply.variables)):
            return None  # never show a customer an unfilled {placeholder}
        reasons = []
        if intent in reply.intents:
            score = w.intent
            reasons.append(f"intent:{intent}")
        else:
            score = w.generic_intent
            reasons.append(f"intent:{ANY_INTENT}")
        if reply.angle in rule.prefer:
            score += w.angle
            reasons.append(f"playbook:{tier}->{reply.angle}")
        else:
            score += 0.4 * w.angle
        score += w.stage if reply.stages else 0.5 * w.stage
        if reply.stages:
            reasons.append(f"stage:{ctx.stage}")
        score += w.group if reply.groups else 0.5 * w.group
        if reply.groups:
            reasons.append(f"group:{ctx.persona_group}")
        score += w.continuity if reply.after_outcomes else 0.3 * w.continuity
        if reply.after_outcomes:
            reasons.append(f"last_call:{ctx.last_call.outcome}")
        score += 0.05 * reply.weight
        text = render_text(reply.text, values)
        if text in sent:
            score -= w.repeat_penalty
            reasons.append("already_sent")
        return Suggestion(reply.id, text, max(0.0, score), reply.angle, tuple(reasons), reply.tags)
