"""Typed hand-off from the NLU stage to the policy, and the classifier protocol.

`Parse` mirrors Rasa's parse shape so the same object feeds the engine, the CLI's `--json`
output and `POST /model/parse`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Entity:
    """One extracted entity; `value` is normalised for the engine (ISO time, int yuan, digits)."""

    entity: str
    value: str | int | float
    start: int
    end: int
    extractor: str
    text: str = ""

    def to_rasa(self) -> dict[str, Any]:
        return {"entity": self.entity, "value": self.value, "start": self.start, "end": self.end,
                "extractor": self.extractor}


@dataclass(frozen=True, slots=True)
class Parse:
    """NLU result for one utterance."""

    text: str
    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...] = ()
    entities: tuple[Entity, ...] = ()
    source: str = "model"  # "model" | "rule" | "context" | "dtmf" — which layer decided
    # A second intent said in the same breath (可以，那运费谁出？ → affirm + ask_logistics), when
    # one clause of the utterance carries it confidently; None otherwise.
    secondary: tuple[str, float] | None = None

    def to_rasa(self) -> dict[str, Any]:
        """Rasa's parse shape; `secondary_intent` is our addition, present only when found."""
        ranking = self.ranking or ((self.intent, self.confidence),)
        out: dict[str, Any] = {
            "text": self.text,
            "intent": {"name": self.intent, "confidence": round(float(self.confidence), 6)},
            "intent_ranking": [{"name": n, "confidence": round(float(c), 6)} for n, c in ranking],
            "entities": [e.to_rasa() for e in self.entities],
        }
        if self.secondary is not None:
            out["secondary_intent"] = {"name": self.secondary[0],
                                       "confidence": round(float(self.secondary[1]), 6)}
        return out

    def entity(self, name: str) -> Entity | None:
        return next((e for e in self.entities if e.entity == name), None)


@dataclass(frozen=True, slots=True)
class ClassifyContext:
    """What the talk track knows at this point: the current node's expected intents (a prior)
    and the call's clock (to resolve relative times such as 明天下午三点)."""

    expected_intents: Sequence[str] = field(default_factory=tuple)
    now: datetime | None = None


@runtime_checkable
class IntentClassifier(Protocol):
    """Labels one utterance with one of the 23 contract intents."""

    def classify(self, text: str, context: ClassifyContext | None = None) -> Parse: ...
