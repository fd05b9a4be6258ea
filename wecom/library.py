"""The WeCom reply library: YAML under scripts_zh/replies/, schema-checked at load with file:line errors.

`library.yml` holds the playbook (which reply angles suit which price-sensitivity tier), lifecycle
thresholds, ranking weights, variable defaults and product facts; every other `*.yml` in the folder
adds replies. A reply is one message in the persona's voice for one or more customer intents.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.vocab import INTENT_SET, OUTCOME_SET, PERSONA_GROUPS, PRICE_TIERS, TAG_SET
from core.yamlio import Problem, ScriptError, compose_yaml_text, load_yaml_text

TIERS = PRICE_TIERS
STAGES = ("new", "just_joined", "active", "promo", "silent")
GROUPS = PERSONA_GROUPS
ANY_INTENT = "*"
# Values the suggester computes per customer; a reply may use them as {name} or list them in
# `requires` (then it is only offered when the value is known, e.g. a promised payment time).
CONTEXT_VARIABLES = frozenset({"customer_name", "product", "deposit", "promised_pay_time", "callback_time",
                               "last_call_at", "promo_name"})
PRODUCT_FACTS = ("benefit", "origin", "craft", "price", "promo_price", "usage")
_FORMATTER = string.Formatter()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierRule(_Strict):
    prefer: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()


class PromoPeriod(_Strict):
    name: str
    start: str  # MM-DD, every year
    end: str  # MM-DD inclusive

    @field_validator("start", "end")
    @classmethod
    def _mmdd(cls, v: str) -> str:
        try:
            month, day = (int(x) for x in v.split("-"))
            date(2024, month, day)  # a leap year accepts 02-29
        except ValueError:
            raise ValueError(f"must be MM-DD, got {v!r}") from None
        return v


class LifecycleSpec(_Strict):
    just_joined_days: int = 7
    silent_days: int = 60
    promo_periods: tuple[PromoPeriod, ...] = ()


class Weights(_Strict):
    intent: float = 0.40
    generic_intent: float = 0.12  # a reply for any intent ("*") when nothing specific fits
    angle: float = 0.25
    stage: float = 0.15
    group: float = 0.10
    continuity: float = 0.10
    repeat_penalty: float = 0.30  # the agent already sent this text in the recent history


class ProductSpec(_Strict):
    benefit: str
    origin: str
    craft: str
    price: str
    promo_price: str
    usage: str = ""


class LibrarySpec(_Strict):
    version: int = 1
    persona: str
    angles: tuple[str, ...]
    playbook: dict[str, TierRule]
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    weights: Weights = Field(default_factory=Weights)
    variables: dict[str, str] = Field(default_factory=dict)
    products: dict[str, ProductSpec] = Field(default_factory=dict)
    group_products: dict[str, str] = Field(default_factory=dict)
    intent_tags: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # chat intent -> tags
    intent_outcomes: dict[str, str] = Field(default_factory=dict)  # chat intent -> revealed outcome
    auto_outcomes: tuple[str, ...] = ()  # written from a WeCom callback at once, without the agent


class ReplySpec(_Strict):
    text: str
    intents: tuple[str, ...]
    angle: str
    price_tiers: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    after_outcomes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    weight: float = 0.0


class RepliesFile(_Strict):
    replies: dict[str, ReplySpec]


@dataclass(frozen=True, slots=True)
class Reply:
    """One library reply. Empty constraint tuples mean 'any'."""

    id: str
    text: str
    intents: frozenset[str]
    angle: str
    price_tiers: frozenset[str]
    stages: frozenset[str]
    groups: frozenset[str]
    after_outcomes: frozenset[str]
    requires: tuple[str, ...]
    tags: tuple[str, ...]
    weight: float
    variables: tuple[str, ...]  # placeholders in `text`


@dataclass(frozen=True)
class Library:
    """The loaded reply library: the playbook plus every reply, by id."""

    root: Path
    spec: LibrarySpec
    replies: dict[str, Reply]

    def for_intent(self, intent: str) -> list[Reply]:
        return [r for r in self.replies.values() if intent in r.intents or ANY_INTENT in r.intents]


def _one_line(text: str) -> str:
    """Chinese has no spaces between words: block-scalar lines are joined without a separator."""
    return "".join(line.strip() for line in text.strip().splitlines())


def placeholders(text: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in _FORMATTER.parse(text) if name)


def _key_lines(text: str, section: str) -> tuple[dict[str, int], dict[str, int]]:
    """Line of each top-level key and of each entry under `section`."""
    top: dict[str, int] = {}
    entries: dict[str, int] = {}
    root = compose_yaml_text(text)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            top[str(key.value)] = key.start_mark.line + 1
            if key.value == section and isinstance(value, yaml.MappingNode):
                for k, _ in value.value:
                    entries[str(k.value)] = k.start_mark.line + 1
    return top, entries


def _read(path: Path, section: str) -> tuple[Any, dict[str, int], dict[str, int]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = load_yaml_text(text)
        top, entries = _key_lines(text, section)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScriptError([Problem(str(path), mark.line + 1 if mark else 1, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ScriptError([Problem(str(path), 1, "", "a reply library file must be a mapping")])
    return data, top, entries


def _schema_problems(exc: ValidationError, path: Path, top: dict[str, int], entries: dict[str, int],
                     section: str) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        entry = loc[1] if len(loc) > 1 and loc[0] == section else ""
        line = entries.get(entry) or top.get(loc[0] if loc else "", 1)
        where = ".".join(loc[2:] if entry else loc)
        out.append(Problem(str(path), line, entry, f"{where}: {err['msg']}" if where else err["msg"]))
    return out


def _check_spec(spec: LibrarySpec, path: Path, top: dict[str, int]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        problems.append(Problem(str(path), top.get(key, 1), "", message))

    angles = set(spec.angles)
    for tier, rule in spec.playbook.items():
        if tier not in TIERS:
            bad("playbook", f"playbook: unknown price tier {tier!r} (use {', '.join(TIERS)})")
        for angle in (*rule.prefer, *rule.avoid):
            if angle not in angles:
                bad("playbook", f"playbook.{tier}: unknown angle {angle!r} (declared: {', '.join(spec.angles)})")
    for tier in TIERS:
        if tier not in spec.playbook:
            bad("playbook", f"playbook: price tier {tier!r} missing")
    for intent, tags in spec.intent_tags.items():
        if intent not in INTENT_SET:
            bad("intent_tags", f"intent_tags: unknown intent {intent!r}")
        for tag in tags:
            if tag not in TAG_SET:
                bad("intent_tags", f"intent_tags.{intent}: unknown tag {tag!r}")
    for intent, outcome in spec.intent_outcomes.items():
        if intent not in INTENT_SET:
            bad("intent_outcomes", f"intent_outcomes: unknown intent {intent!r}")
        if outcome not in OUTCOME_SET:
            bad("intent_outcomes", f"intent_outcomes.{intent}: unknown outcome {outcome!r}")
    for outcome in spec.auto_outcomes:
        if outcome not in OUTCOME_SET:
            bad("auto_outcomes", f"auto_outcomes: unknown outcome {outcome!r}")
    for group, product in spec.group_products.items():
        if product not in spec.products:
            bad("group_products", f"group_products.{group}: product {product!r} has no entry under products")
    return problems


def _check_reply(rid: str, r: ReplySpec, spec: LibrarySpec, known_vars: frozenset[str],
                 path: Path, line: int) -> list[Problem]:
    problems: list[Problem] = []

    def bad(message: str) -> None:
        problems.append(Problem(str(path), line, rid, message))

    for intent in r.intents:
        if intent != ANY_INTENT and intent not in INTENT_SET:
            bad(f"intents: unknown intent {intent!r}")
    if not r.intents:
        bad("intents: at least one intent (or \"*\")")
    if r.angle not in spec.angles:
        bad(f"angle: unknown angle {r.angle!r} (declared in library.yml: {', '.join(spec.angles)})")
    for name, values, allowed in (("price_tiers", r.price_tiers, TIERS), ("stages", r.stages, STAGES),
                                  ("groups", r.groups, GROUPS), ("after_outcomes", r.after_outcomes, OUTCOME_SET),
                                  ("tags", r.tags, TAG_SET), ("requires", r.requires, CONTEXT_VARIABLES)):
        for v in values:
            if v not in allowed:
                bad(f"{name}: unknown value {v!r}")
    for tier in r.price_tiers:
        if tier in spec.playbook and r.angle in spec.playbook[tier].avoid:
            bad(f"angle {r.angle!r} is avoided for price tier {tier!r} by the playbook")
    for name in placeholders(r.text):
        if name not in known_vars:
            bad(f"text: unknown variable {{{name}}} (give it a default under variables: in library.yml)")
    return problems


def _known_variables(spec: LibrarySpec, persona_vars: frozenset[str]) -> frozenset[str]:
    product_vars = {f"product_{f}" for f in PRODUCT_FACTS}
    return frozenset(spec.variables) | persona_vars | CONTEXT_VARIABLES | product_vars | {"agent_name", "brand"}


def load_library(root: Path, persona_vars: frozenset[str] = frozenset(),
                 personas: frozenset[str] | None = None) -> Library:
    """Load `root` (scripts_zh/replies). Raises ScriptError listing every problem of the first bad file."""
    main = root / "library.yml"
    if not main.is_file():
        raise ScriptError([Problem(str(main), 1, "", "reply library folder has no library.yml")])
    data, top, _ = _read(main, "")
    try:
        spec = LibrarySpec.model_validate(data)
    except ValidationError as exc:
        raise ScriptError(_schema_problems(exc, main, top, {}, "")) from None
    problems = _check_spec(spec, main, top)
    if personas is not None and spec.persona not in personas:
        problems.append(Problem(str(main), top.get("persona", 1), "", f"persona {spec.persona!r} not found"))
    if problems:
        raise ScriptError(problems)
    known = _known_variables(spec, persona_vars)
    replies: dict[str, Reply] = {}
    where: dict[str, str] = {}
    for path in sorted(p for p in root.glob("*.yml") if p.name != "library.yml"):
        data, top, lines = _read(path, "replies")
        try:
            parsed = RepliesFile.model_validate(data)
        except ValidationError as exc:
            raise ScriptError(_schema_problems(exc, path, top, lines, "replies")) from None
        for rid, r in parsed.replies.items():
            line = lines.get(rid, 1)
            if rid in where:
                problems.append(Problem(str(path), line, rid, f"reply defined twice (also in {where[rid]})"))
            problems += _check_reply(rid, r, spec, known, path, line)
            where[rid] = str(path)
            replies[rid] = Reply(
                id=rid, text=_one_line(r.text), intents=frozenset(r.intents), angle=r.angle,
                price_tiers=frozenset(r.price_tiers), stages=frozenset(r.stages), groups=frozenset(r.groups),
                after_outcomes=frozenset(r.after_outcomes), requires=r.requires, tags=r.tags, weight=r.weight,
                variables=placeholders(r.text))
        if problems:
            raise ScriptError(problems)
    problems = _coverage_problems(spec, replies, main)
    if problems:
        raise ScriptError(problems)
    return Library(root, spec, replies)


def _coverage_problems(spec: LibrarySpec, replies: dict[str, Reply], main: Path) -> list[Problem]:
    """Every intent must have an unconditional reply for every price tier, so an agent always gets one."""
    out = []
    for intent in sorted(INTENT_SET):
        for tier in TIERS:
            avoid = set(spec.playbook[tier].avoid)
            ok = any((intent in r.intents or ANY_INTENT in r.intents) and r.angle not in avoid
                     and (not r.price_tiers or tier in r.price_tiers) and not r.stages and not r.groups
                     and not r.after_outcomes and not r.requires for r in replies.values())
            if not ok:
                out.append(Problem(str(main), 1, "", f"no unconditional reply for intent {intent!r} at price tier "
                                                     f"{tier!r}: add one without stages/groups/after_outcomes/requires"))
    return out
