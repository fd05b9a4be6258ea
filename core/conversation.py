"""Typed hand-offs of the dialogue stage: customer events in, bot replies out, session state.

State is a frozen, JSON-serialisable value: the policy returns a new one per turn, and the
server can keep it in Redis between callbacks (`to_dict` / `from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from core.parse import Parse


class EventKind(StrEnum):
    SPEECH = "speech"
    DTMF = "dtmf"
    SILENCE = "silence"
    PLAYBACK_DONE = "playback_done"
    HANGUP = "hangup"
    UNREACHABLE = "unreachable"  # the line, not the customer: announcement, voicemail, screening…


@dataclass(frozen=True, slots=True)
class CustomerEvent:
    """One thing the customer (or the line) did. `text` for speech, `digits` for DTMF."""

    kind: EventKind
    text: str | None = None
    confidence: float | None = None  # ASR confidence, when the gateway or our ASR gives one
    digits: str | None = None
    barged_in: bool = False  # the customer spoke over an interruptible clip
    reason: str | None = None  # UNREACHABLE: one of core.vocab.UNREACHABLE_REASONS


@dataclass(frozen=True, slots=True)
class Turn:
    """A recognised customer turn: what the policy decides on (no text understanding inside)."""

    kind: EventKind
    intent: str | None = None  # None for silence / hangup / playback_done
    confidence: float = 1.0
    parse: Parse | None = None
    digits: str | None = None
    barged_in: bool = False
    reason: str | None = None  # UNREACHABLE: why the call never reached the customer


@dataclass(frozen=True, slots=True)
class Utterance:
    """One persona clip the bot plays, with its rendered text (the same words go to SMS/WeCom)."""

    clip: str
    text: str
    barge_in: bool = True
    url: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"clip": self.clip, "text": self.text}


@dataclass(frozen=True, slots=True)
class BotAction:
    """A gateway action (contract shapes). Only the fields of its `type` are serialised."""

    type: str  # play | listen | send_sms | send_wecom | transfer | hangup
    clip: str = ""
    url: str = ""
    text: str = ""
    barge_in: bool = True
    timeout_ms: int = 0
    template: str = ""
    to: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.type == "play":
            return {"type": "play", "clip": self.clip, "url": self.url, "text": self.text,
                    "barge_in": self.barge_in}
        if self.type == "listen":
            return {"type": "listen", "timeout_ms": self.timeout_ms}
        if self.type in ("send_sms", "send_wecom"):
            return {"type": self.type, "template": self.template, "text": self.text}
        if self.type == "transfer":
            return {"type": "transfer", "to": self.to}
        return {"type": self.type}


def _secondary(data: Any) -> tuple[str, float] | None:
    """TurnRecord.secondary from its JSON form (absent in older records)."""
    if not isinstance(data, dict) or "name" not in data:
        return None
    return str(data["name"]), float(data.get("confidence", 0.0))


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """What happened in one turn, kept in state for the transcript, store and reports."""

    user: str | None
    kind: str
    intent: str | None
    confidence: float | None
    node: str
    bot: tuple[Utterance, ...]
    actions: tuple[BotAction, ...]
    barged_in: bool = False
    at: str | None = None  # ISO 8601 time of the turn (reports: dwell per node); None in old records
    secondary: tuple[str, float] | None = None  # a second intent the classifier heard (Parse.secondary)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user": self.user, "kind": self.kind, "intent": self.intent,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "node": self.node, "bot": [u.to_json() for u in self.bot],
            "actions": [a.to_json() for a in self.actions], "barged_in": self.barged_in,
        }
        if self.at is not None:
            out["at"] = self.at
        if self.secondary is not None:  # present only when heard, as in Parse.to_rasa
            out["secondary_intent"] = {"name": self.secondary[0], "confidence": round(self.secondary[1], 4)}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TurnRecord:
        return cls(
            user=data.get("user"), kind=data.get("kind", "speech"), intent=data.get("intent"),
            confidence=data.get("confidence"), node=data["node"],
            bot=tuple(Utterance(clip=u["clip"], text=u["text"]) for u in data.get("bot", ())),
            actions=tuple(BotAction(**a) for a in data.get("actions", ())),
            barged_in=bool(data.get("barged_in", False)), at=data.get("at"),
            secondary=_secondary(data.get("secondary_intent")),
        )


@dataclass(frozen=True, slots=True)
class SessionState:
    """Everything the policy needs between turns. Immutable; serialisable to plain JSON."""

    call_id: str
    track_id: str
    customer_id: str
    node: str
    started_at: str  # ISO 8601 of the (simulated) call start
    variables: dict[str, str] = field(default_factory=dict)
    slots: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    path: tuple[str, ...] = ()
    bot_turns: int = 0
    user_turns: int = 0  # customer turns with speech or DTMF
    silence_count: int = 0
    fallback_count: int = 0
    last_intent: str | None = None
    same_intent_count: int = 0
    ended: bool = False
    ended_by: str | None = None  # "bot" | "customer"
    outcome: str | None = None
    grade: str | None = None
    variant: str = ""
    channel: str = "call"
    return_node: str | None = None  # where a side answer (ask_robot, ask_identity…) goes back to
    pending_node: str | None = None  # node whose custom actions are running (resume after them)
    turns: tuple[dict[str, Any], ...] = ()  # TurnRecord.to_json() of every turn so far

    def with_(self, **changes: Any) -> SessionState:
        return replace(self, **changes)

    def add_tags(self, *tags: str) -> SessionState:
        new = tuple(t for t in tags if t not in self.tags)
        return replace(self, tags=self.tags + new) if new else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        data = dict(data)
        data["tags"] = tuple(data.get("tags", ()))
        data["path"] = tuple(data.get("path", ()))
        data["turns"] = tuple(data.get("turns", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Reply:
    """The engine's answer to one event: what to play and do, and whether the call is over."""

    utterances: tuple[Utterance, ...]
    actions: tuple[BotAction, ...]
    ended: bool
    node: str
    turn: TurnRecord | None = None


@dataclass(frozen=True, slots=True)
class ConversationResult:
    """A finished conversation, as written back to the segmentation store (exactly once)."""

    conversation_id: str
    customer_id: str
    track: str
    persona: str
    channel: str
    variant: str
    started_at: datetime
    ended_at: datetime
    outcome: str
    grade: str
    tags: tuple[str, ...]
    slots: dict[str, Any]
    node_path: tuple[str, ...]
    turns: tuple[TurnRecord, ...]
    ended_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id, "customer_id": self.customer_id,
            "track": self.track, "persona": self.persona, "channel": self.channel,
            "variant": self.variant, "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(), "outcome": self.outcome, "grade": self.grade,
            "tags": list(self.tags), "slots": self.slots, "node_path": list(self.node_path),
            "turns": [t.to_json() for t in self.turns], "ended_by": self.ended_by,
        }
