"""Campaign files for the runner: the plan's cascade (store.campaigns) plus triggers, A/B
branches, retry rules per call result and pacing. Validated at load; errors name file:line: node.

Trunks (a SIP trunk / caller-number pool with its concurrent-call limit) are shared by every
campaign that names them in `pacing.trunk`; they are defined once in `<scripts>/trunks.yml`.

A run keeps the validated file, its crowd and its trunk in the store, so workers on other
machines need neither the YAML nor the segment file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.yamlio import line_of, load_yaml_text
from store.campaigns import CampaignFile, StepFile
from store.errors import StoreError
from store.segments import Segment, SegmentFile, Where, get_segment, parse_where

EVENT_TRIGGERS = ("deposit_paid", "balance_paid", "order_paid", "wecom_reply")
PAID_EVENTS = ("deposit_paid", "balance_paid", "order_paid")
# Call results (CONTRACT "touch line" statuses) and the `unreachable` reason tags that rules key on.
DEFAULT_TRUNK = "default"
RESULT_KEYS = ("busy", "no_answer", "failed", "powered_off", "invalid_number", "suspended", "voicemail",
               "call_screening", "unreachable")


class RetryRule(BaseModel):
    """What to do after a call result: retry after a delay (or the next day), at most `max` times,
    or send an SMS instead (`then: sms`)."""

    model_config = ConfigDict(extra="forbid")
    after_minutes: float = Field(default=30, ge=10)  # retries of one step never closer than 10 min
    next_day: bool = False
    max: int = Field(default=2, ge=0, le=10)
    then: Literal["sms"] | None = None


DEFAULT_RETRY: dict[str, RetryRule] = {
    "busy": RetryRule(after_minutes=30, max=2),
    "no_answer": RetryRule(after_minutes=30, max=2),
    "powered_off": RetryRule(next_day=True, max=1),
    "suspended": RetryRule(next_day=True, max=1),
    "invalid_number": RetryRule(max=0),
    "voicemail": RetryRule(max=0, then="sms"),
    "call_screening": RetryRule(max=0, then="sms"),
    "failed": RetryRule(after_minutes=30, max=1),
}


class Pacing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calls_per_second: float = Field(default=5, gt=0)
    sms_per_second: float = Field(default=50, gt=0)
    trunk: str = Field(default=DEFAULT_TRUNK, pattern=r"^[a-z][a-z0-9_-]*$")  # a trunk of trunks.yml
    trunk_concurrency: int | None = Field(default=None, ge=1)  # this campaign's share of the trunk (optional)


class TrunkFile(BaseModel):
    """One trunk / caller-number pool: at most `concurrency` calls in flight on it, all campaigns
    together; calls go out from `caller_ids` (a callee always sees the same one)."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(ge=1)
    caller_ids: list[str] = Field(default_factory=list)  # empty: HUASHU_CALLER_ID
    sip_trunk: str = ""  # the gateway's name for it (jambonz `to.trunk`); empty: HUASHU_TRUNK
    title: str = ""


class TrunksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trunks: dict[str, TrunkFile] = Field(default_factory=dict)

    @field_validator("trunks")
    @classmethod
    def _names(cls, v: dict[str, TrunkFile]) -> dict[str, TrunkFile]:
        bad = [k for k in v if not re.fullmatch(r"[a-z][a-z0-9_-]*", k)]
        if bad:
            raise ValueError(f"trunk names must be lowercase ids, got {bad}")
        return v


@dataclass(frozen=True, slots=True)
class Trunk:
    name: str
    concurrency: int
    caller_ids: tuple[str, ...] = ()
    sip_trunk: str = ""

    def caller_for(self, customer_id: str) -> str:
        """The pool number this callee is called from (stable: the same callee sees the same number)."""
        if not self.caller_ids:
            return ""
        h = int.from_bytes(hashlib.sha256(f"{self.name}:{customer_id}".encode()).digest()[:4], "big")
        return self.caller_ids[h % len(self.caller_ids)]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "concurrency": self.concurrency, "caller_ids": list(self.caller_ids),
                "sip_trunk": self.sip_trunk}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Trunk:
        return cls(str(doc["name"]), int(doc["concurrency"]), tuple(doc.get("caller_ids") or ()),
                   str(doc.get("sip_trunk") or ""))


# Without a trunks file (or when it does not define it), `default` is a trunk of 20 concurrent calls.
BUILTIN_DEFAULT = Trunk(DEFAULT_TRUNK, 20)
TRUNKS_FILE = "trunks.yml"


def load_trunks(scripts_dir: Path) -> dict[str, Trunk]:
    """The trunks of `<scripts>/trunks.yml` (plus the built-in `default` unless it is redefined)."""
    path = scripts_dir / TRUNKS_FILE
    out = {DEFAULT_TRUNK: BUILTIN_DEFAULT}
    if not path.is_file():
        return out
    try:
        text = path.read_text(encoding="utf-8")
        data = load_yaml_text(text) or {}
    except (OSError, yaml.YAMLError) as err:
        raise StoreError(f"{path}: {err}") from None
    try:
        parsed = TrunksFile.model_validate(data)
    except ValidationError as err:
        raise _located(path, text, err) from None
    out.update({k: Trunk(k, v.concurrency, tuple(v.caller_ids), v.sip_trunk) for k, v in parsed.trunks.items()})
    return out


class RunStepFile(StepFile):
    trigger: str | None = None  # an event starts this step for a customer (instead of the schedule)
    branch: str | None = None  # only customers hashed into this branch
    retry: dict[str, RetryRule] = Field(default_factory=dict)
    fallback_text: str = ""  # the SMS sent instead of a call that reached voicemail

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v: str | None) -> str | None:
        if v is not None and v not in EVENT_TRIGGERS and not (v.startswith("tag:") and len(v) > 4):
            raise ValueError(f"trigger {v!r} is not one of {', '.join(EVENT_TRIGGERS)} or tag:<id>")
        return v

    @field_validator("retry")
    @classmethod
    def _retry_keys(cls, v: dict[str, RetryRule]) -> dict[str, RetryRule]:
        bad = sorted(set(v) - set(RESULT_KEYS))
        if bad:
            raise ValueError(f"retry keys {bad} are not call results ({', '.join(RESULT_KEYS)})")
        return v


class RunCampaignFile(CampaignFile):
    steps: list[RunStepFile] = Field(min_length=1)  # type: ignore[assignment]
    branches: dict[str, int] = Field(default_factory=dict)  # branch id → weight (percent)
    pacing: Pacing = Field(default_factory=lambda: Pacing())

    @model_validator(mode="after")
    def _branches(self) -> RunCampaignFile:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids must be unique, got {ids}")
        for s in self.steps:
            if s.branch is not None and s.branch not in self.branches:
                raise ValueError(f"step {s.id}: branch {s.branch!r} is not in branches {sorted(self.branches)}")
            if s.requires is not None and s.requires not in ids[:ids.index(s.id)]:
                raise ValueError(f"step {s.id} requires {s.requires!r}, which is not an earlier step")
        if self.branches and sum(self.branches.values()) != 100:
            raise ValueError(f"branch weights must add up to 100, got {sum(self.branches.values())}")
        return self


@dataclass(frozen=True, slots=True)
class RunStep:
    spec: RunStepFile
    when: Where
    offset: timedelta  # after the run's start (scheduled steps)

    @property
    def id(self) -> str:
        return self.spec.id

    def retry_rule(self, key: str) -> RetryRule:
        return self.spec.retry.get(key) or DEFAULT_RETRY.get(key) or RetryRule(max=0)


@dataclass(frozen=True, slots=True)
class RunCampaign:
    file: RunCampaignFile
    crowd: Segment
    steps: tuple[RunStep, ...]
    trunk: Trunk = BUILTIN_DEFAULT

    @property
    def name(self) -> str:
        return self.file.name

    def step(self, step_id: str) -> RunStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise StoreError(f"campaign {self.name} has no step {step_id!r}")

    def branch_of(self, customer_id: str) -> str:
        """Deterministic A/B assignment: the same customer lands in the same branch on every runner."""
        if not self.file.branches:
            return ""
        bucket = int.from_bytes(hashlib.sha256(f"{self.name}:{customer_id}".encode()).digest()[:4], "big") % 100
        acc = 0
        for name, weight in sorted(self.file.branches.items()):
            acc += weight
            if bucket < acc:
                return name
        return sorted(self.file.branches)[-1]

    def to_json(self) -> dict[str, Any]:
        crowd = SegmentFile(name=self.crowd.name, title=self.crowd.title, description=self.crowd.description,
                            where=self.crowd.where, include_test=self.crowd.include_test, rfm=self.crowd.rfm)
        return {"file": self.file.model_dump(mode="json", exclude_none=True, by_alias=True),
                "crowd": crowd.model_dump(mode="json", exclude_none=True, by_alias=True),
                "trunk": self.trunk.to_json()}


def build(file: RunCampaignFile, crowd: Segment, origin: str, trunk: Trunk = BUILTIN_DEFAULT) -> RunCampaign:
    steps: list[RunStep] = []
    offset = timedelta()
    for s in file.steps:
        if s.trigger is None:
            offset += timedelta(hours=s.after_hours)
        steps.append(RunStep(s, parse_where(s.when, f"{origin}: step {s.id}: when"), offset))
    return RunCampaign(file, crowd, tuple(steps), trunk)


def from_json(doc: dict[str, Any]) -> RunCampaign:
    """A run's campaign as kept in the store."""
    file = RunCampaignFile.model_validate(doc["file"])
    seg = SegmentFile.model_validate(doc["crowd"])
    crowd = Segment(seg.name, seg.title, seg.description, seg.where, seg.include_test, seg.rfm, Path("<store>"))
    # Runs registered before trunks were first-class keep the limit they had (per campaign, 20 by default).
    trunk = Trunk.from_json(doc["trunk"]) if doc.get("trunk") else \
        Trunk(file.pacing.trunk, file.pacing.trunk_concurrency or BUILTIN_DEFAULT.concurrency)
    return build(file, crowd, f"campaign {file.name}", trunk)


def load(path: Path, scripts_dir: Path) -> RunCampaign:
    """Load and validate a campaign file; errors are `file:line: node: message`."""
    try:
        text = path.read_text(encoding="utf-8")
        data = load_yaml_text(text)
    except (OSError, yaml.YAMLError) as err:
        raise StoreError(f"{path}: {err}") from None
    try:
        file = RunCampaignFile.model_validate(data)
    except ValidationError as err:
        raise _located(path, text, err) from None
    trunks = load_trunks(scripts_dir)
    trunk = trunks.get(file.pacing.trunk)
    if trunk is None:
        line = line_of(text, ["pacing", "trunk"])
        raise StoreError(f"{path}:{line}: pacing.trunk: unknown trunk {file.pacing.trunk!r} (trunks: "
                         f"{', '.join(sorted(trunks))}; defined in {scripts_dir / TRUNKS_FILE})")
    return build(file, get_segment(scripts_dir, file.crowd), str(path), trunk)


def _located(path: Path, text: str, err: ValidationError) -> StoreError:
    """The first validation error as `file:line: node: message`."""
    e = err.errors()[0]
    loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    line = line_of(text, loc)
    node = ".".join(map(str, loc)) or "file"
    return StoreError(f"{path}:{line}: {node}: {e['msg'].removeprefix('Value error, ')}")


def due_time(started_at: datetime, step: RunStep) -> datetime:
    return started_at + step.offset
