"""Campaign cascades (scripts_zh/campaigns/*.yml): a crowd and ordered, timed touch steps.

`plan` answers, at one instant, per step: is it due, who is due now and why, and who is left
out (do-not-contact, frequency cap, calling window, already done). It only reads; sending is a
provider's job (store.providers), and each send is recorded as a contact attempt whose
conversation id is the task id, so a step is never sent twice and caps see it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.yamlio import load_yaml_text
from store.codec import as_aware
from store.errors import StoreError
from store.segment_sql import Target, evaluate
from store.segments import Segment, Where, get_segment, parse_where

if TYPE_CHECKING:
    from store.sql import SqlStore


class StepFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    channel: Literal["wecom", "sms", "call"]
    after_hours: float = Field(default=0, ge=0)  # after the previous step's scheduled time
    when: dict[str, Any] = Field(default_factory=dict)  # segment predicates, on top of the crowd
    requires: str | None = None  # only customers this earlier step was sent to
    template: str = ""
    text: str = ""  # rendered with {name}, {product}
    track: str = ""  # call steps: the talk track the AI call runs
    vars: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _call_needs_track(self) -> StepFile:
        if self.channel == "call" and not self.track:
            raise ValueError(f"step {self.id}: a call step needs `track`")
        if self.channel != "call" and not (self.template or self.text):
            raise ValueError(f"step {self.id}: a {self.channel} step needs `template` or `text`")
        return self


class CampaignFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    crowd: str
    start_at: datetime | None = None  # unset: the plan's instant is the start
    vars: dict[str, str] = Field(default_factory=dict)  # campaign variables of every call step
    steps: list[StepFile] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Step:
    spec: StepFile
    when: Where
    scheduled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    title: str
    crowd: Segment
    start_at: datetime | None
    steps: tuple[Step, ...]
    path: Path
    vars: dict[str, str] = field(default_factory=dict)

    def step_vars(self, step: Step) -> dict[str, str]:
        """The campaign's variables for one step (the step's own win)."""
        return {**self.vars, **step.spec.vars}


def load_campaign(path: Path, scripts_dir: Path, store: SqlStore) -> Campaign:
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
        spec = CampaignFile.model_validate(data)
    except (OSError, yaml.YAMLError) as err:
        raise StoreError(f"{path}: {err}") from None
    except ValidationError as err:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                         for e in err.errors())
        raise StoreError(f"{path}: {msgs}") from None
    ids = [s.id for s in spec.steps]
    if len(set(ids)) != len(ids):
        raise StoreError(f"{path}: step ids must be unique, got {ids}")
    crowd = get_segment(scripts_dir, spec.crowd)
    start = as_aware(spec.start_at, store.tz) if spec.start_at else None
    steps: list[Step] = []
    offset = 0.0
    for i, s in enumerate(spec.steps):
        if s.requires is not None and s.requires not in ids[:i]:
            raise StoreError(f"{path}: step {s.id} requires {s.requires!r}, which is not an earlier step")
        offset += s.after_hours
        steps.append(Step(s, parse_where(s.when, f"{path}: step {s.id}: when"),
                          None if start is None else start + timedelta(hours=offset)))
    return Campaign(spec.name, spec.title, crowd, start, tuple(steps), path, dict(spec.vars))


def task_id(campaign: str, step: str, customer_id: str) -> str:
    """The contact attempt / call id of one step for one customer (stable: replays are no-ops)."""
    return f"{campaign}:{step}:{customer_id}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    step: Step
    scheduled_at: datetime
    due: bool
    why: str
    targets: list[Target] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    vars: dict[str, dict[str, str]] = field(default_factory=dict)  # call steps: customer id → vars

    def task(self, campaign: str, target: Target) -> dict[str, Any]:
        """A call task in the shape of POST /v1/calls, or a message task for a provider."""
        spec = self.step.spec
        tid = task_id(campaign, spec.id, target.customer_id)
        if spec.channel == "call":
            return {"call_id": tid, "customer_id": target.customer_id, "track": spec.track,
                    "vars": dict(self.vars.get(target.customer_id, spec.vars))}
        return {"task_id": tid, "customer_id": target.customer_id, "channel": spec.channel,
                "template": spec.template, "text": render(spec.text, target)}


def render(text: str, target: Target) -> str:
    values = {"name": target.name, "product": target.deposit_product}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "|".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _why(campaign: Campaign, step: Step, scheduled: datetime) -> str:
    parts = [f"in crowd {campaign.crowd.name} ({campaign.crowd.title})" if campaign.crowd.title
             else f"in crowd {campaign.crowd.name}",
             f"step due since {scheduled.strftime('%Y-%m-%d %H:%M')}"]
    conds = step.when.model_dump(exclude_none=True, by_alias=True)
    if conds:
        parts.append("and " + ", ".join(f"{k}={_fmt(v)}" for k, v in conds.items()))
    if step.spec.requires:
        parts.append(f"after step {step.spec.requires} was sent")
    return "; ".join(parts)


# A call step's variables for its customers: customer id → (vars, None) or ({}, refusal reason),
# given the step and the campaign's variables (built above the store, from the talk track).
CallVars = Callable[[Step, dict[str, str], list[str]], dict[str, tuple[dict[str, str], str | None]]]


def plan(store: SqlStore, campaign: Campaign, at: datetime, call_vars: CallVars | None = None) -> list[StepPlan]:
    """Per step, who is due at `at` and why; excluded customers counted by reason. With
    `call_vars`, call steps carry each customer's variables, and a customer whose call would be
    refused (missing_fact:…, expired:…) is left out with that reason."""
    at = as_aware(at, store.tz)
    start = campaign.start_at or at
    out: list[StepPlan] = []
    offset = 0.0
    for step in campaign.steps:
        offset += step.spec.after_hours
        scheduled = step.scheduled_at or start + timedelta(hours=offset)
        if at < scheduled:
            out.append(StepPlan(step, scheduled, False,
                                f"scheduled for {scheduled.strftime('%Y-%m-%d %H:%M')}"))
            continue
        ev = evaluate(store, campaign.crowd, at, extra=step.when)
        excluded: Counter[str] = Counter()
        if ev.excluded_dnc:
            excluded["do_not_contact"] = ev.excluded_dnc
        if ev.duplicates:
            excluded["duplicate_phone"] = ev.duplicates
        ids = [tg.customer_id for tg in ev.targets]
        done = store.attempted({task_id(campaign.name, step.spec.id, c) for c in ids})
        required = (store.attempted({task_id(campaign.name, step.spec.requires, c) for c in ids})
                    if step.spec.requires else None)
        blockers = store.contact_blockers(ids, at, step.spec.channel)
        resolved: dict[str, tuple[dict[str, str], str | None]] = {}
        if step.spec.channel == "call":
            resolved = call_vars(step, campaign.step_vars(step), ids) if call_vars is not None else \
                {c: (campaign.step_vars(step), None) for c in ids}
        targets: list[Target] = []
        for tg in ev.targets:
            if task_id(campaign.name, step.spec.id, tg.customer_id) in done:
                excluded["already_sent"] += 1
            elif required is not None and task_id(campaign.name, step.spec.requires or "",
                                                  tg.customer_id) not in required:
                excluded["previous_step_not_sent"] += 1
            elif tg.customer_id in blockers:
                excluded[blockers[tg.customer_id]] += 1
            elif tg.customer_id in resolved and resolved[tg.customer_id][1]:
                excluded[resolved[tg.customer_id][1] or ""] += 1
            else:
                targets.append(tg)
        chosen = {tg.customer_id: resolved[tg.customer_id][0] for tg in targets if tg.customer_id in resolved}
        out.append(StepPlan(step, scheduled, True, _why(campaign, step, scheduled), targets, dict(excluded),
                            chosen))
    return out
