"""ConversationResult ↔ plain JSON payload (what the outbox keeps and the conversation row holds)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from core.conversation import BotAction, ConversationResult, TurnRecord, Utterance
from core.vocab import GRADES, OUTCOME_SET


def as_aware(at: datetime, tz: tzinfo) -> datetime:
    """Naive datetimes are wall-clock time in the configured timezone (HUASHU_TIMEZONE)."""
    return at.replace(tzinfo=tz) if at.tzinfo is None else at


def turn_to_json(turn: TurnRecord) -> dict[str, Any]:
    out = turn.to_json()
    out["barged_in"] = turn.barged_in
    return out


def turn_from_json(data: dict[str, Any]) -> TurnRecord:
    bot = tuple(Utterance(clip=u.get("clip", ""), text=u.get("text", "")) for u in data.get("bot", []))
    actions = tuple(_action_from_json(a) for a in data.get("actions", []))
    return TurnRecord(
        user=data.get("user"), kind=data.get("kind", ""), intent=data.get("intent"),
        confidence=data.get("confidence"), node=data.get("node", ""), bot=bot, actions=actions,
        barged_in=bool(data.get("barged_in", False)), at=data.get("at"),
    )


def _action_from_json(data: dict[str, Any]) -> BotAction:
    fields = {k: v for k, v in data.items()
              if k in ("type", "clip", "url", "text", "barge_in", "timeout_ms", "template", "to")}
    return BotAction(**fields)


def result_to_payload(result: ConversationResult, tz: tzinfo) -> dict[str, Any]:
    """Validated, JSON-safe form of a result. Raises ValueError on an unknown outcome or grade."""
    if result.outcome not in OUTCOME_SET:
        raise ValueError(f"conversation {result.conversation_id}: unknown outcome {result.outcome!r}")
    if result.grade not in GRADES:
        raise ValueError(f"conversation {result.conversation_id}: unknown grade {result.grade!r}")
    if not result.conversation_id or not result.customer_id:
        raise ValueError("a conversation result needs conversation_id and customer_id")
    tags = list(dict.fromkeys((result.outcome, *result.tags)))  # a superset of the outcome, ordered
    return {
        "conversation_id": result.conversation_id, "customer_id": result.customer_id,
        "track": result.track, "persona": result.persona, "channel": result.channel,
        "variant": result.variant,
        "started_at": as_aware(result.started_at, tz).astimezone(UTC).isoformat(),
        "ended_at": as_aware(result.ended_at, tz).astimezone(UTC).isoformat(),
        "outcome": result.outcome, "grade": result.grade, "tags": tags,
        "slots": _json_safe(result.slots), "node_path": list(result.node_path),
        "turns": [turn_to_json(t) for t in result.turns], "ended_by": result.ended_by,
    }


def payload_to_row(payload: dict[str, Any], written_at: datetime) -> dict[str, Any]:
    row = dict(payload)
    row["started_at"] = datetime.fromisoformat(payload["started_at"])
    row["ended_at"] = datetime.fromisoformat(payload["ended_at"])
    row["written_at"] = written_at
    return row


def row_to_result(row: Any, tz: tzinfo) -> ConversationResult:
    """A stored conversation row back as a ConversationResult (times in the configured timezone)."""
    return ConversationResult(
        conversation_id=row.conversation_id, customer_id=row.customer_id, track=row.track,
        persona=row.persona, channel=row.channel, variant=row.variant,
        started_at=row.started_at.astimezone(tz), ended_at=row.ended_at.astimezone(tz),
        outcome=row.outcome, grade=row.grade, tags=tuple(row.tags), slots=dict(row.slots or {}),
        node_path=tuple(row.node_path), turns=tuple(turn_from_json(t) for t in row.turns),
        ended_by=row.ended_by,
    )


def tag_source(channel: str) -> str:
    """Tag source of a conversation channel: call, or chat for WeCom/SMS conversations."""
    return "call" if channel == "call" else "chat"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
