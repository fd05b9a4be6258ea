"""Conversation tests as data: YAML stories run through the real `DialogueEngine`.

A story file (`tests/stories/<track>.yaml`) looks like::

    track: presale_deposit            # default track of every story in the file
    stories:
      - name: 开场就同意付定金
        at: 2026-11-01T10:00:00+08:00  # optional simulated call time
        vars: {deposit: "80"}          # optional call variables
        opening: {clips: [disclosure, pd_opening]}
        steps:
          - user: 好的，发给我吧
            expect: {intent: affirm, node: close_send_link, tags_include: [high_intent]}
          - silence: true
          - dtmf: "1"
          - hangup: true
        expect: {outcome: high_intent, grade: A, ended_by: bot}

When the steps run out before the bot ends the call, the customer hangs up (as in `simulate`).
Each story reports pass/fail with the first mismatch explained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.conversation import CustomerEvent, EventKind, Reply, SessionState
from core.yamlio import compose_yaml_text, load_yaml_text
from dialogue.engine import CallRefused, DialogueEngine

DEFAULT_AT = datetime(2026, 11, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TURN_SECONDS = 6  # simulated time one turn takes, as in `huashu simulate`


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TurnExpect(_Strict):
    """What one bot reply must look like. Every field is optional; only given ones are checked."""

    intent: str | None = None  # the classifier's intent (or the DTMF meaning)
    secondary: str | None = None  # a second intent the classifier heard in the same turn
    node: str | None = None  # where the conversation is after the reply
    clips: tuple[str, ...] | None = None  # exactly these clips, in order
    clips_include: tuple[str, ...] = ()
    text_contains: tuple[str, ...] = ()  # substrings of the bot's rendered words
    text_excludes: tuple[str, ...] = ()  # words the bot must not say (in speech or messages)
    actions_include: tuple[str, ...] = ()  # action types: play, listen, send_sms, transfer, hangup
    tags_include: tuple[str, ...] = ()
    tags_exclude: tuple[str, ...] = ()
    ended: bool | None = None
    slots: dict[str, Any] = Field(default_factory=dict)


class Step(_Strict):
    """One customer event: exactly one of user / silence / dtmf / hangup."""

    user: str | None = None
    silence: bool = False
    dtmf: str | None = None
    hangup: bool = False
    barged_in: bool = False
    expect: TurnExpect = Field(default_factory=TurnExpect)

    @model_validator(mode="after")
    def _one_event(self) -> Step:
        given = sum([self.user is not None, self.silence, self.dtmf is not None, self.hangup])
        if given != 1:
            raise ValueError("a step is exactly one of: user, silence: true, dtmf, hangup: true")
        return self

    def event(self) -> CustomerEvent:
        if self.user is not None:
            return CustomerEvent(EventKind.SPEECH, text=self.user, barged_in=self.barged_in)
        if self.dtmf is not None:
            return CustomerEvent(EventKind.DTMF, digits=str(self.dtmf))
        if self.silence:
            return CustomerEvent(EventKind.SILENCE)
        return CustomerEvent(EventKind.HANGUP)

    def label(self) -> str:
        if self.user is not None:
            return f"user: {self.user!r}"
        if self.dtmf is not None:
            return f"dtmf: {self.dtmf}"
        return "silence" if self.silence else "hangup"


class FinalExpect(_Strict):
    """How the conversation must end."""

    outcome: str | None = None
    grade: str | None = None
    ended_by: str | None = None
    node: str | None = None
    tags_include: tuple[str, ...] = ()
    tags_exclude: tuple[str, ...] = ()
    path_include: tuple[str, ...] = ()
    slots: dict[str, Any] = Field(default_factory=dict)
    refused: str | None = None  # the call must be refused with this reason (missing_fact:…)


class Story(_Strict):
    name: str
    track: str
    at: datetime | None = None
    vars: dict[str, str] = Field(default_factory=dict)
    # The customer's record as facts (core.customers.FACTS names); unset: a test customer, whose
    # facts are the track's samples. A fact left out is one the record lacks.
    customer: dict[str, str] | None = None
    opening: TurnExpect = Field(default_factory=TurnExpect)
    steps: tuple[Step, ...] = ()
    expect: FinalExpect = Field(default_factory=FinalExpect)
    # where it came from (filled by the loader, for messages)
    file: str = ""
    line: int = 0


class StoryFileError(Exception):
    """A story file that cannot be read; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class StoryResult:
    story: Story
    passed: bool
    failure: str = ""  # the first mismatch, explained
    transcript: tuple[str, ...] = field(default=())
    outcome: str | None = None
    grade: str | None = None

    @property
    def where(self) -> str:
        return f"{self.story.file}:{self.story.line}" if self.story.file else self.story.name


# -- loading ---------------------------------------------------------------------------------
def _story_lines(text: str) -> list[int]:
    root = compose_yaml_text(text)
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "stories" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_story_file(path: Path) -> list[Story]:
    """Parse one story file. Raises StoryFileError naming the file, line and problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoryFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = load_yaml_text(text)
        lines = _story_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise StoryFileError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stories"), list):
        raise StoryFileError(f"{path}:1: a story file is a mapping with a `stories:` list")
    default_track = data.get("track")
    stories = []
    for i, raw in enumerate(data["stories"]):
        line = lines[i] if i < len(lines) else 1
        if not isinstance(raw, dict):
            raise StoryFileError(f"{path}:{line}: each story is a mapping (name, steps, expect)")
        raw = {"track": default_track, **raw, "file": str(path), "line": line}
        try:
            stories.append(Story.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise StoryFileError(f"{path}:{line}: story {raw.get('name', i)!r}: {loc}: {first['msg']}") from None
    return stories


def collect(paths: Iterable[Path]) -> list[Story]:
    """Stories of every file given; a folder contributes its *.yaml / *.yml files by name."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml"))
        elif p.is_file():
            files.append(p)
        else:
            raise StoryFileError(f"{p}: no such file or folder")
    return [s for f in files for s in load_story_file(f)]


# -- checking --------------------------------------------------------------------------------
def _slot_matches(expected: Any, actual: Any) -> bool:
    """Strings match by prefix, so `2026-11-02T20:00` matches a full ISO time with seconds/zone."""
    if isinstance(expected, str) and isinstance(actual, str):
        return actual.startswith(expected)
    if expected is None:
        return actual is None
    return bool(expected == actual) or str(expected) == str(actual)


def _check_slots(expected: Mapping[str, Any], slots: Mapping[str, Any]) -> str:
    for name, value in expected.items():
        if not _slot_matches(value, slots.get(name)):
            return f"slot {name} expected {value!r}, got {slots.get(name)!r}"
    return ""


def _check_turn(exp: TurnExpect, state: SessionState, reply: Reply) -> str:
    clips = [u.clip for u in reply.utterances]
    record = reply.turn
    if exp.intent is not None:
        got = record.intent if record else None
        if got != exp.intent:
            conf = f" ({record.confidence:.2f})" if record and record.confidence is not None else ""
            return f"intent expected {exp.intent}, got {got}{conf}"
    if exp.secondary is not None:
        second = record.secondary if record else None
        if second is None or second[0] != exp.secondary:
            return f"secondary intent expected {exp.secondary}, got {second}"
    if exp.node is not None and state.node != exp.node:
        return f"node expected {exp.node}, got {state.node}"
    if exp.clips is not None and tuple(clips) != exp.clips:
        return f"clips expected {list(exp.clips)}, got {clips}"
    missing = [c for c in exp.clips_include if c not in clips]
    if missing:
        return f"clips {missing} not said (said {clips})"
    words = "".join(u.text for u in reply.utterances)
    for piece in exp.text_contains:
        if piece not in words:
            return f"bot words do not contain {piece!r}: {words!r}"
    sent = words + "".join(a.text for a in reply.actions if a.type in ("send_sms", "send_wecom"))
    for piece in exp.text_excludes:
        if piece in sent:
            return f"bot words contain {piece!r}: {sent!r}"
    types = [a.type for a in reply.actions]
    missing = [a for a in exp.actions_include if a not in types]
    if missing:
        return f"actions {missing} missing (got {types})"
    missing = [t for t in exp.tags_include if t not in state.tags]
    if missing:
        return f"tags {missing} missing (tags {list(state.tags)})"
    extra = [t for t in exp.tags_exclude if t in state.tags]
    if extra:
        return f"tags {extra} must not be set (tags {list(state.tags)})"
    if exp.ended is not None and state.ended != exp.ended:
        return f"expected the call {'to end' if exp.ended else 'to go on'}, ended={state.ended}"
    return _check_slots(exp.slots, state.slots)


def _check_final(exp: FinalExpect, state: SessionState) -> str:
    pairs = (("outcome", exp.outcome, state.outcome), ("grade", exp.grade, state.grade),
             ("ended_by", exp.ended_by, state.ended_by), ("final node", exp.node, state.node))
    for what, want, got in pairs:
        if want is not None and want != got:
            return f"{what} expected {want}, got {got}"
    missing = [t for t in exp.tags_include if t not in state.tags]
    if missing:
        return f"tags {missing} missing (tags {list(state.tags)})"
    extra = [t for t in exp.tags_exclude if t in state.tags]
    if extra:
        return f"tags {extra} must not be set (tags {list(state.tags)})"
    missing = [n for n in exp.path_include if n not in state.path]
    if missing:
        return f"nodes {missing} never visited (path {list(state.path)})"
    return _check_slots(exp.slots, state.slots)


def _describe(reply: Reply, state: SessionState) -> str:
    record = reply.turn
    intent = ""
    if record is not None and record.intent is not None:
        conf = f" {record.confidence:.2f}" if record.confidence is not None else ""
        intent = f"[{record.intent}{conf}] "
    clips = ", ".join(u.clip for u in reply.utterances) or "-"
    return f"{intent}→ {state.node}: {clips}"


# -- running ---------------------------------------------------------------------------------
def run_story(engine: DialogueEngine, story: Story, *, call_id: str = "story") -> StoryResult:
    """Run one story; the first mismatch (turn or final) fails it, with the transcript so far."""
    at = story.at or DEFAULT_AT
    if at.tzinfo is None:
        at = at.replace(tzinfo=DEFAULT_AT.tzinfo)
    log: list[str] = []

    def fail(message: str, state: SessionState | None = None) -> StoryResult:
        return StoryResult(story, False, message, tuple(log),
                           state.outcome if state else None, state.grade if state else None)

    try:
        state, reply = engine.start(call_id, f"story-{story.track}", story.track, at=at,
                                    variables=story.vars, facts=story.customer)
    except CallRefused as exc:
        if story.expect.refused == exc.reason:
            return StoryResult(story, True, "", (f"refused: {exc.reason}",))
        return fail(f"call refused: {exc.reason}")
    except (KeyError, ValueError) as exc:
        return fail(f"cannot start: {exc.args[0] if exc.args else exc}")
    if story.expect.refused is not None:
        return fail(f"the call was not refused (expected {story.expect.refused})", state)
    log.append(f"bot: {_describe(reply, state)}")
    problem = _check_turn(story.opening, state, reply)
    if problem:
        return fail(f"opening: {problem}", state)
    clock = at
    for number, step in enumerate(story.steps, 1):
        if state.ended:
            return fail(f"step {number} ({step.label()}): the call already ended at {state.node} "
                        f"(outcome {state.outcome})", state)
        clock += timedelta(seconds=TURN_SECONDS)
        state, reply = engine.step(state, step.event(), clock)
        log.append(f"{step.label()}  {_describe(reply, state)}")
        problem = _check_turn(step.expect, state, reply)
        if problem:
            return fail(f"step {number} ({step.label()}): {problem}; at {_describe(reply, state)}", state)
    if not state.ended:  # the steps ran out: the customer hangs up, as in `simulate`
        state, reply = engine.step(state, CustomerEvent(EventKind.HANGUP), clock + timedelta(seconds=TURN_SECONDS))
        log.append("(hangup)")
    problem = _check_final(story.expect, state)
    if problem:
        return fail(f"end: {problem}", state)
    return StoryResult(story, True, "", tuple(log), state.outcome, state.grade)


def run_stories(engine: DialogueEngine, stories: Sequence[Story]) -> list[StoryResult]:
    """Run every story (each its own call); never raises for a failing story."""
    return [run_story(engine, s, call_id=f"story-{i}") for i, s in enumerate(stories)]
