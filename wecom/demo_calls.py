"""Simulated calls for demo reports: scripted customer lines through the real engine, results
written to the store like real calls (`huashu report --demo-calls N`).

Deterministic for a given (track, n, seed, start time): conversation ids are
`demo-sim-<track>-<seed>-<i>`, so running it again writes nothing twice (exactly-once store).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.conversation import CustomerEvent, EventKind
from core.yamlio import load_yaml_text
from dialogue.engine import CallRefused, DialogueEngine
from dialogue.facts import campaign_samples
from dialogue.simulate import TURN_SECONDS, parse_line

LINES_FILE = Path("replies") / "demo" / "customer_lines.yml"


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str
    weight: float = 1.0


class _Script(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_turns: int = Field(default=6, ge=1, le=30)
    barge_in: float = Field(default=0.15, ge=0, le=1)
    lines: tuple[_Line, ...]


@dataclass(frozen=True)
class CustomerScript:
    """Weighted customer lines (file: scripts_zh/replies/demo/customer_lines.yml)."""

    lines: tuple[str, ...]
    weights: tuple[float, ...]
    max_turns: int
    barge_in: float


def load_script(scripts_dir: Path) -> CustomerScript:
    path = scripts_dir / LINES_FILE
    try:
        spec = _Script.model_validate(load_yaml_text(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"{path}: demo customer lines not found") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    for line in spec.lines:
        parse_line(line.text)  # raises on an unknown <special> line
    return CustomerScript(tuple(x.text for x in spec.lines), tuple(x.weight for x in spec.lines),
                          spec.max_turns, spec.barge_in)


def _events(rng: random.Random, script: CustomerScript) -> list[CustomerEvent]:
    events: list[CustomerEvent] = []
    for _ in range(rng.randint(1, script.max_turns)):
        event = parse_line(rng.choices(script.lines, weights=script.weights)[0])
        if event.kind is EventKind.SPEECH and rng.random() < script.barge_in:
            event = CustomerEvent(EventKind.SPEECH, text=event.text, barged_in=True)
        events.append(event)
        if event.kind is EventKind.HANGUP:
            break
    return events


def simulate_calls(engine: DialogueEngine, track: str, n: int, *, script: CustomerScript, start: datetime,
                   seed: int = 7, customer_ids: Callable[[int], str] | None = None,
                   progress: Callable[[int], None] | None = None) -> int:
    """Run `n` scripted calls of `track` starting around `start`; returns how many ended (all do).

    Customers: `customer_ids(i)` (default `demo000000`… as made by `huashu customers demo`; unknown
    ids become test customers). The compliance gate is skipped: these calls are simulations. The
    campaign's values are the track's defaults and samples; a customer whose record cannot back
    the track (missing_fact:…) is passed over for the next one, as a campaign would leave them out."""
    rng = random.Random(f"{track}:{seed}")
    ids = customer_ids or (lambda i: f"demo{i:06d}")
    ended = 0
    i = -1
    while ended < n and i < 20 * n:
        i += 1
        at = start - timedelta(days=rng.randrange(0, 7), minutes=rng.randrange(0, 8 * 60))
        campaign = campaign_samples(engine.bundle.track(track), at.date())
        try:
            state, _ = engine.start(f"demo-sim-{track}-{seed}-{i}", ids(i), track, at=at, check_gate=False,
                                    variables=campaign)
        except CallRefused:
            continue
        clock = at
        events = iter(_events(rng, script))
        while not state.ended:
            clock += timedelta(seconds=TURN_SECONDS + rng.randrange(0, 9))
            event = next(events, CustomerEvent(EventKind.HANGUP))
            state, _ = engine.step(state, event, clock)
        ended += 1
        if progress:
            progress(1)
    return ended
