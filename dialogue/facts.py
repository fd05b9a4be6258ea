"""Track variables bound to the customer's record and the campaign: what a call may say, or why not.

A variable is `from: customer.<fact>` (the record), `from: campaign.<name>` (the campaign's or the
call's variables) or unbound (the call's variables, else its default). A `claim: true` variable
states something about the customer and never falls back to a default: when the record lacks it
where the track would say it, the call is refused `missing_fact:<variable>`. A date variable that
expires refuses a call made after it (`expired:<variable>`). Test customers (unknown ids that
`simulate` or the server create) take the track's `sample` values for facts their record lacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from core.customers import FACTS, Customer
from core.yamlio import Problem, SourceMap
from dialogue.schema import BACK, Branch, Persona, Track, Variable

CUSTOMER = "customer"
CAMPAIGN = "campaign"
_FROM = re.compile(r"^(customer|campaign)\.([a-z_][a-z0-9_]*)$")
_RELATIVE = re.compile(r"^\+(\d{1,3})d$")
_AMOUNT = re.compile(r"^\d+(?:\.\d+)?$")
_FIELD = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


class BadValue(ValueError):
    """A variable value that cannot be used (a date that is not a date, …)."""


@dataclass(frozen=True, slots=True)
class Binding:
    source: str  # customer | campaign | "" (unbound)
    name: str  # the fact or campaign variable name ("" when unbound)


def binding(var: Variable) -> Binding:
    """Where a variable's value comes from. Raises BadValue for a malformed `from:`."""
    if var.from_ is None:
        return Binding("", "")
    m = _FROM.match(var.from_)
    if m is None:
        raise BadValue(f"from: {var.from_!r} must be customer.<fact> or campaign.<name>")
    if m.group(1) == CUSTOMER and m.group(2) not in FACTS:
        raise BadValue(f"from: {var.from_!r}: unknown customer fact (known: {', '.join(sorted(FACTS))})")
    return Binding(m.group(1), m.group(2))


def binding_problems(name: str, var: Variable) -> list[str]:
    """Definition-time problems of one variable (empty: fine)."""
    try:
        bind = binding(var)
    except BadValue as exc:
        return [f"variable {name!r}: {exc}"]
    out: list[str] = []
    if var.claim and bind.source != CUSTOMER:
        out.append(f"variable {name!r}: claim: true needs from: customer.<fact> (a claim comes from the record)")
    if var.claim and var.default is not None:
        out.append(f"variable {name!r}: a claim never falls back to a default; give a sample for test customers")
    if bind.source == CUSTOMER and var.default is None and var.sample is None:
        out.append(f"variable {name!r}: from: customer.{bind.name} needs a sample (what test customers are told)")
    if bind.source == "" and var.default is None:
        out.append(f"variable {name!r}: needs a default or from: customer.<fact> / campaign.<name>")
    if var.expires is not None and var.type != "date":
        out.append(f"variable {name!r}: expires only applies to type: date")
    for what, value in (("default", var.default), ("sample", var.sample)):
        if value is None:
            continue
        if var.type == "date" and not _is_date(value):
            out.append(f"variable {name!r}: {what} {value!r} is not a date (YYYY-MM-DD or +Nd)")
        if var.type == "amount" and not _AMOUNT.match(value):
            out.append(f"variable {name!r}: {what} {value!r} is not an amount")
    return out


def _is_date(value: str) -> bool:
    try:
        parse_date(value, date(2000, 1, 1))
    except BadValue:
        return False
    return True


def parse_date(value: str, today: date) -> date:
    """YYYY-MM-DD, or +Nd (N days after `today`, for samples and defaults)."""
    m = _RELATIVE.match(value.strip())
    if m:
        return today + timedelta(days=int(m.group(1)))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadValue(f"{value!r} is not a date (YYYY-MM-DD)") from None


# -- which variables a track cannot do without -------------------------------------------------
def _successors(track: Track, node_id: str) -> Iterable[tuple[str, str | None]]:
    """(target, variable known on that edge) for every way out of a node; `$back` is skipped
    (going back returns to a node already entered, whose facts held then and still hold)."""
    node = track.nodes[node_id]
    if node.waits:
        for edge in (*node.on.values(), *track.handlers.values()):
            yield edge.goto, None
        yield track.silence.then, None
        yield track.fallback.then, None
    if isinstance(node.next, str):
        yield node.next, None
    elif isinstance(node.next, Branch):
        known = node.next.var
        for target in (*node.next.cases.values(), node.next.default):
            yield target, known
        if node.next.unset is not None:
            yield node.next.unset, None
    if node.actions and track.action_endpoint is not None:
        yield track.action_endpoint.fallback, None


def known_at(track: Track) -> dict[str, frozenset[str]]:
    """Per reachable node, the variables a branch has already found set on every path there."""
    everything = frozenset(track.variables)
    known: dict[str, frozenset[str]] = {track.start: frozenset()}
    work = [track.start]
    while work:
        node_id = work.pop()
        for target, var in _successors(track, node_id):
            if target == BACK or target not in track.nodes:
                continue
            flow = known[node_id] | ({var} if var else set())
            new = (known[target] & flow) if target in known else flow & everything
            if known.get(target) != new:
                known[target] = new
                work.append(target)
    return known


def _node_texts(track: Track, persona: Persona, node_id: str) -> list[str]:
    node = track.nodes[node_id]
    clips = [*node.say, *node.reprompt]
    for overrides in track.variants.values():
        clips += [overrides[c] for c in clips if c in overrides]
    texts = [persona.clips[c].text for c in clips if c in persona.clips]
    for action in node.actions:
        if isinstance(action, dict):
            kind, arg = next(iter(action.items()))
            if kind in ("send_sms", "send_wecom") and arg in persona.templates:
                texts.append(persona.templates[arg])
    return texts


def needed_variables(track: Track, persona: Persona) -> tuple[str, ...]:
    """Track variables said somewhere a branch has not checked them: a call needs them all."""
    known = known_at(track)
    needed: set[str] = set()
    anywhere = [c for c in (track.silence.clip, track.fallback.clip, track.repeat_clip) if c]
    for text in (persona.clips[c].text for c in anywhere if c in persona.clips):
        needed.update(_FIELD.findall(text))
    for node_id, facts in known.items():
        for text in _node_texts(track, persona, node_id):
            needed.update(v for v in _FIELD.findall(text) if v not in facts)
    return tuple(v for v in track.variables if v in needed)  # declaration order


# -- a call's values -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Resolution:
    values: dict[str, str]  # the track's variables that have a value (dates as YYYY-MM-DD)
    refused: str | None  # missing_fact:<v> | expired:<v> | None


def resolve(track: Track, needed: Iterable[str], *, facts: Mapping[str, str] | None,
            call_vars: Mapping[str, str], test_customer: bool, today: date) -> Resolution:
    """The track's variables for one call. `facts`: the customer's record (None: no store);
    `call_vars`: the campaign's / caller's variables; `today`: the call's local date.
    A real customer's claims come from the record only (a caller cannot assert them)."""
    values: dict[str, str] = {}
    for name, var in track.variables.items():
        value = _value(name, var, facts or {}, call_vars, test_customer or facts is None)
        if value is not None:
            values[name] = _normal(name, var, value, today)
    for name in needed:
        if name not in values:
            return Resolution(values, f"missing_fact:{name}")
    for name, var in track.variables.items():
        if var.expiring and name in values and date.fromisoformat(values[name]) < today:
            return Resolution(values, f"expired:{name}")
    return Resolution(values, None)


def _value(name: str, var: Variable, facts: Mapping[str, str], call_vars: Mapping[str, str],
           test: bool) -> str | None:
    bind = binding(var)
    if bind.source == CUSTOMER:
        fact = facts.get(bind.name)
        if fact is not None:
            return fact
        if test:
            return call_vars.get(name, var.sample if var.sample is not None else var.default)
        return None if var.claim else call_vars.get(name, var.default)
    given = call_vars.get(name)
    if given is not None:
        return given
    if var.default is not None:
        return var.default
    return var.sample if test else None


def _normal(name: str, var: Variable, value: str, today: date) -> str:
    if var.type != "date":
        return value
    try:
        return parse_date(value, today).isoformat()
    except BadValue as exc:
        raise BadValue(f"variable {name!r}: {exc}") from None



def sample_values(track: Track, today: date) -> dict[str, str]:
    """What a test customer called on `today` is told (defaults, else samples)."""
    return resolve(track, (), facts=None, call_vars={}, test_customer=True, today=today).values


def task_vars(track: Track, persona: Persona, customers: Mapping[str, Customer], ids: Iterable[str],
              campaign_vars: Mapping[str, str], today: date) -> dict[str, tuple[dict[str, str], str | None]]:
    """A campaign's call tasks: per customer id, the call's variables (the customer's facts and
    the campaign's values) or the reason the call would be refused. Raises BadValue when the
    campaign gives a variable the track does not declare, or a date that is not a date."""
    unknown = sorted(set(campaign_vars) - set(track.variables) - set(persona.variables))
    if unknown:
        raise BadValue(f"track {track.id!r} declares no variable(s) {', '.join(unknown)}")
    needed = needed_variables(track, persona)
    out: dict[str, tuple[dict[str, str], str | None]] = {}
    for cid in ids:
        customer = customers.get(cid)
        res = resolve(track, needed, facts=customer.facts() if customer else {}, call_vars=campaign_vars,
                      test_customer=bool(customer and customer.is_test), today=today)
        out[cid] = ({**{k: v for k, v in campaign_vars.items() if k in persona.variables}, **res.values},
                    res.refused)
    return out


def expired_values(track: Track, values: Mapping[str, str], today: date) -> list[tuple[str, str]]:
    """(variable, value) of the track's expiring dates among `values` that are before `today`."""
    out = []
    for name, var in track.variables.items():
        value = values.get(name)
        if value is None or not var.expiring or _RELATIVE.match(value.strip()):
            continue
        try:
            if parse_date(value, today) < today:
                out.append((name, value))
        except BadValue:
            out.append((name, value))
    return out


def expired_defaults(track: Track, src: SourceMap, today: date) -> list[Problem]:
    """`huashu validate --at`: a track default date that has passed refuses every call using it."""
    defaults = {k: v.default for k, v in track.variables.items() if v.default is not None}
    return [Problem(src.file, src.var_line(name), f"variables.{name}",
                    f"default {value} has passed at {today.isoformat()} (calls are refused expired:{name})")
            for name, value in expired_values(track, defaults, today)]


def campaign_samples(track: Track, today: date) -> dict[str, str]:
    """The campaign's side of a made-up call (demo history, demo calls): every variable not about
    the customer, at its default or sample value."""
    samples = sample_values(track, today)
    return {k: v for k, v in samples.items() if binding(track.variables[k]).source != CUSTOMER}
