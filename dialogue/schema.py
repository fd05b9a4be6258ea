"""Pydantic schema of talk-track and persona YAML (the edge where files become typed values).

A track is a graph of nodes. A node says persona clips, may run actions, and either waits for
the customer (`on` edges by intent), moves on by itself (`next`), goes back to where the
customer interrupted (`return: true`), or ends the call (`end`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BACK = "$back"  # edge target: return to the node the side question interrupted


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Edge(_Strict):
    """Where an intent leads, and what it records on the way."""

    goto: str
    tags: tuple[str, ...] = ()
    # slot name -> entity name whose normalised value is stored (e.g. promised_pay_time: time)
    set: dict[str, str] = Field(default_factory=dict)


def _edge(value: Any) -> Any:
    return {"goto": value} if isinstance(value, str) else value


EdgeSpec = Annotated[Edge, Field()]


class Branch(_Strict):
    """Conditional auto-advance on a slot that an action set (e.g. order lookup result), or on a
    call variable (`var`), e.g. a customer fact: bought before or not, deposit paid or not."""

    slot: str | None = None
    var: str | None = None
    cases: dict[str, str] = {}
    unset: str | None = None  # where to go when the slot/variable has no value
    default: str

    @model_validator(mode="after")
    def _one_subject(self) -> Branch:
        if (self.slot is None) == (self.var is None):
            raise ValueError("a branch names exactly one of: slot, var")
        return self

    @property
    def subject(self) -> str:
        """`slot` or `var` name, for labels and messages."""
        return self.slot or self.var or ""


class EndSpec(_Strict):
    outcome: str
    tags: tuple[str, ...] = ()


class Reprompt(_Strict):
    """Silence / not-understood handling: reprompt up to `limit` times, then go to `then`."""

    clip: str
    limit: int = 2
    then: str


class Node(_Strict):
    title: str = ""  # the node's name for ops people (reports, graphs); default: its id
    say: tuple[str, ...] = ()
    reprompt: tuple[str, ...] = ()  # what to say when coming back here (default: say)
    actions: tuple[str | dict[str, str], ...] = ()
    on: dict[str, Edge] = Field(default_factory=dict)
    expect: tuple[str, ...] = ()  # intents the NLU should favour here (default: keys of `on`)
    hints: tuple[str, ...] = ()  # ASR phrases added to the compiled ones (dialogue.hints)
    hints_drop: tuple[str, ...] = ()  # compiled ASR phrases this node should not use
    next: str | Branch | None = None
    return_: bool = Field(default=False, alias="return")
    end: EndSpec | None = None
    transfer: str | None = None  # transfer target (e.g. "human"); the call ends transferred
    listen_timeout_ms: int | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("on", mode="before")
    @classmethod
    def _edges(cls, v: Any) -> Any:
        return {k: _edge(e) for k, e in (v or {}).items()}

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, v: Any) -> Any:
        return {"outcome": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_way_out(self) -> Node:
        ways = sum([bool(self.on), self.next is not None, self.return_, self.end is not None,
                    self.transfer is not None])
        if ways == 0:
            raise ValueError("node needs one of: on, next, return, end, transfer")
        if self.end is not None and (self.on or self.next or self.return_):
            raise ValueError("an end node cannot also have on/next/return")
        if self.next is not None and self.on:
            raise ValueError("a node either waits for the customer (on) or moves on (next), not both")
        return self

    @property
    def waits(self) -> bool:
        return bool(self.on)


class TrackSettings(_Strict):
    confidence_threshold: float | None = None  # None: the NLU's default threshold
    max_bot_turns: int = 8
    max_same_intent: int = 3
    listen_timeout_ms: int = 6000


class Variable(_Strict):
    """A template variable. `from: customer.<fact>` binds it to the customer's record and
    `from: campaign.<name>` to the campaign's variables; `claim: true` marks a statement about the
    customer, which never falls back to `default` (`sample` is used only for test customers).
    Date values are ISO dates (YYYY-MM-DD) or `+Nd` (N days after the call, samples/defaults);
    a date that `expires` (the default for dates) refuses a call made after it."""

    default: str | None = None
    type: Literal["text", "amount", "date", "time", "digits"] = "text"
    description: str = ""
    from_: str | None = Field(default=None, alias="from")
    claim: bool = False
    sample: str | None = None
    expires: bool | None = None  # None: True for type date

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("default", "sample", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return v if v is None or isinstance(v, str) else str(v)

    @property
    def expiring(self) -> bool:
        return self.type == "date" and self.expires is not False


class ActionEndpoint(_Strict):
    """A merchant's rasa-sdk action server (webhook protocol) for this track's custom actions."""

    url: str
    timeout_ms: int = 1500
    fallback: str  # node to go to when the server fails or times out


class Track(_Strict):
    id: str
    title: str
    persona: str
    description: str = ""
    channel: Literal["call", "wecom", "sms"] = "call"
    start: str
    variables: dict[str, Variable] = Field(default_factory=dict)
    vocabulary: tuple[str, ...] = ()  # domain words every waiting node hints to the recogniser
    slots: tuple[str, ...] = ()
    settings: TrackSettings = Field(default_factory=TrackSettings)
    dtmf: dict[str, str] = Field(default_factory=dict)
    handlers: dict[str, Edge] = Field(default_factory=dict)
    silence: Reprompt
    fallback: Reprompt
    repeat_clip: str | None = None  # said before replaying the prompt on `repeat`
    intent_tags: dict[str, str] = Field(default_factory=dict)  # automatic extra tags per intent
    outcome_priority: tuple[str, ...] = ()
    action_endpoint: ActionEndpoint | None = None
    variants: dict[str, dict[str, str]] = Field(default_factory=dict)  # A/B: variant -> clip overrides
    nodes: dict[str, Node]

    @field_validator("handlers", mode="before")
    @classmethod
    def _handlers(cls, v: Any) -> Any:
        return {k: _edge(e) for k, e in (v or {}).items()}

    @field_validator("variables", mode="before")
    @classmethod
    def _vars(cls, v: Any) -> Any:
        return {k: ({"default": str(x)} if not isinstance(x, dict) else x) for k, x in (v or {}).items()}


class Clip(_Strict):
    text: str
    barge_in: bool = True
    file: str | None = None  # default: audio/<clip id>.wav (static clips) or spliced segments


class Persona(_Strict):
    id: str
    name: str
    brand: str
    voice: str = ""
    description: str = ""
    variables: dict[str, str] = Field(default_factory=dict)  # persona-wide variables (brand…)
    clips: dict[str, Clip] = Field(default_factory=dict)
    templates: dict[str, str] = Field(default_factory=dict)  # SMS / WeCom texts, same voice

    @field_validator("clips", mode="before")
    @classmethod
    def _clips(cls, v: Any) -> Any:
        return {k: ({"text": x} if isinstance(x, str) else x) for k, x in (v or {}).items()}
