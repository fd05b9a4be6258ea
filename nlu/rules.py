"""High-precision rules (scripts_zh/nlu/rules.yml) that decide compliance-critical intents
(opt_out, complaint, wrong_person, ask_robot) before the model looks at the utterance.

`rule_<intent>[__<tag>]` regex entries are tried in file order, the first match wins;
`guard_<intent>` entries veto every rule of that intent (the model decides instead).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.vocab import INTENT_SET
from nlu.data import NluData, NluDataError, load_file
from nlu.text import normalize

# The rules layer is reserved for these: a rule for anything else would bypass the model on
# intents where a miss is cheap and a false positive is not.
RULE_INTENTS = frozenset({"opt_out", "ask_robot", "wrong_person", "complaint"})


@dataclass(frozen=True, slots=True)
class Rule:
    intent: str
    name: str
    pattern: re.Pattern[str]
    origin: str


@dataclass(frozen=True, slots=True)
class RuleHit:
    intent: str
    name: str
    pattern: str
    matched: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    guards: dict[str, tuple[re.Pattern[str], ...]]

    def match(self, text: str) -> RuleHit | None:
        """The first rule matching the normalised text whose intent is not guarded."""
        norm = normalize(text)
        if not norm:
            return None
        vetoed: dict[str, bool] = {}
        for rule in self.rules:
            if rule.intent not in vetoed:
                vetoed[rule.intent] = any(g.search(norm) for g in self.guards.get(rule.intent, ()))
            if vetoed[rule.intent]:
                continue
            m = rule.pattern.search(norm)
            if m:
                return RuleHit(rule.intent, rule.name, rule.pattern.pattern, m.group())
        return None

    def match_all(self, text: str) -> list[RuleHit]:
        """The first hit of every intent whose untagged rules match (file order), guards applied.
        Tagged rules (`rule_opt_out__report`: any 投诉) are catch-alls for when nothing more
        specific matched, so they never add a second intent (我要投诉质量 is not an opt-out)."""
        norm = normalize(text)
        hits: dict[str, RuleHit] = {}
        if not norm:
            return []
        for rule in self.rules:
            if "__" in rule.name or rule.intent in hits:
                continue
            if any(g.search(norm) for g in self.guards.get(rule.intent, ())):
                continue
            m = rule.pattern.search(norm)
            if m:
                hits[rule.intent] = RuleHit(rule.intent, rule.name, rule.pattern.pattern, m.group())
        return list(hits.values())


def _intent_of(name: str, prefix: str, origin: str) -> str:
    intent = name[len(prefix):].split("__", 1)[0]
    if intent not in INTENT_SET:
        raise NluDataError(f"{origin}: regex {name}: unknown intent {intent!r}")
    if intent not in RULE_INTENTS:
        raise NluDataError(f"{origin}: regex {name}: rules may only decide {sorted(RULE_INTENTS)}")
    return intent


def rules_from_data(data: NluData) -> RuleSet:
    rules: list[Rule] = []
    guards: dict[str, list[re.Pattern[str]]] = {}
    for entry in data.regexes:
        if entry.name.startswith("rule_"):
            intent = _intent_of(entry.name, "rule_", entry.origin)
            for pat in entry.items:
                rules.append(Rule(intent, entry.name, re.compile(pat), entry.origin))
        elif entry.name.startswith("guard_"):
            intent = _intent_of(entry.name, "guard_", entry.origin)
            guards.setdefault(intent, []).extend(re.compile(p) for p in entry.items)
    return RuleSet(tuple(rules), {k: tuple(v) for k, v in guards.items()})


def load_rules(path: str | Path) -> RuleSet:
    """Rules from a rules.yml; a missing file gives an empty rule set."""
    path = Path(path)
    if not path.exists():
        return RuleSet((), {})
    return rules_from_data(load_file(path))
