"""Whole simulated calls from text lines (or recognised audio): the tester's view of a call."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.conversation import CustomerEvent, EventKind, Reply, SessionState
from dialogue.engine import DialogueEngine

_DTMF = re.compile(r"^<dtmf:([0-9*#]+)>$")
TURN_SECONDS = 6  # simulated wall-clock time a turn takes (clip + answer)


def parse_line(line: str) -> CustomerEvent:
    """One stdin line → a customer event: `<silence>`, `<hangup>`, `<dtmf:N>` or speech."""
    text = line.strip()
    if text == "<silence>":
        return CustomerEvent(EventKind.SILENCE)
    if text == "<hangup>":
        return CustomerEvent(EventKind.HANGUP)
    m = _DTMF.match(text)
    if m:
        return CustomerEvent(EventKind.DTMF, digits=m.group(1))
    if text.startswith("<") and text.endswith(">"):
        raise ValueError(f"unknown special line {text!r} (use <silence>, <hangup> or <dtmf:N>)")
    return CustomerEvent(EventKind.SPEECH, text=text)


@dataclass
class SimulatedCall:
    """The transcript of one simulated call (contract's `simulate --json` shape)."""

    state: SessionState
    replies: list[Reply] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {"call_id": s.call_id, "track": s.track_id, "customer_id": s.customer_id,
                "variant": s.variant, "turns": list(s.turns), "ended_by": s.ended_by,
                "outcome": s.outcome, "grade": s.grade, "tags": list(s.tags), "slots": s.slots}


def run_call(engine: DialogueEngine, *, track: str, customer_id: str, call_id: str, at: datetime,
             events: Iterable[CustomerEvent], variables: dict[str, str] | None = None,
             on_reply: Callable[[SessionState, Reply], None] | None = None) -> SimulatedCall:
    """Start a call and feed it events until the bot ends it or the events run out (then the
    customer hangs up). Events after the bot's hangup are not consumed."""
    state, reply = engine.start(call_id, customer_id, track, at=at, variables=variables)
    call = SimulatedCall(state, [reply])
    if on_reply:
        on_reply(state, reply)
    clock = at
    iterator: Iterator[CustomerEvent] = iter(events)
    while not state.ended:
        clock += timedelta(seconds=TURN_SECONDS)
        event = next(iterator, None)
        if event is None:
            event = CustomerEvent(EventKind.HANGUP)
        state, reply = engine.step(state, event, clock)
        call.replies.append(reply)
        call.state = state
        if on_reply:
            on_reply(state, reply)
    return call
