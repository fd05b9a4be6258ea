"""High-precision rules (scripts_zh/nlu/rules.yml) that decide compliance-critical intents
(opt_out, complaint, wrong_person, ask_robot) before the model looks at the utterance.

`rule_<intent>[__<tag>]` regex entries are tried in file order, the first match wins;
`guard_<intent>` entries veto every rule of that intent (the model decides instead).

Opt-out rules also match by sound: telephone ASR writes homophones (拉黑 → 拉嘿, 号码 → 号马,
联系 → 连系). When no rule matches, every span of the text that sounds exactly like (same
toneless pinyin) a word of two or more characters in an opt-out rule is rewritten to that word,
and the opt-out rules are tried once more. Single characters are never rewritten: one syllable
alone has too many innocent homophones (烦 → 返, 莫 → 末).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.vocab import INTENT_SET
from nlu.data import NluData, NluDataError, load_file, problem_at
from nlu.sound import syllable
from nlu.text import normalize

# The rules layer is reserved for these: a rule for anything else would bypass the model on
# intents where a miss is cheap and a false positive is not.
RULE_INTENTS = frozenset({"opt_out", "ask_robot", "wrong_person", "complaint"})
SOUND_INTENTS = frozenset({"opt_out"})  # recall matters most; see the module doc
_HAN = re.compile(r"[\u4e00-\u9fff]")
_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_SOUND_BASE = 0xF0000  # private-use plane: sound tokens never collide with real text
_syllables: dict[str, int] = {}


@lru_cache(maxsize=65536)
def _sound_char(char: str) -> str:
    return chr(_SOUND_BASE + _syllables.setdefault(syllable(char), len(_syllables)))


def sound_text(norm: str) -> str:
    """Every Chinese character of the normalised text replaced by its pinyin token."""
    return _HAN.sub(lambda m: _sound_char(m.group()), norm)


def rule_words(patterns: list[str]) -> tuple[str, ...]:
    """The literal words (2+ Chinese characters, outside character classes) of the patterns."""
    words: set[str] = set()
    for pattern in patterns:
        plain = re.sub(r"\[[^\]]*\]|\\.", "|", pattern)
        words.update(m.group() for m in _RUN.finditer(plain))
    return tuple(sorted(words, key=lambda w: (-len(w), w)))


@lru_cache(maxsize=16)
def _sound_index(words: tuple[str, ...]) -> tuple[dict[str, str], tuple[int, ...]]:
    """(sound of a word → the word, word lengths longest first): built once per rule set, not
    once per utterance."""
    by_sound: dict[str, str] = {}
    for w in words:
        by_sound.setdefault(sound_text(w), w)
    return by_sound, tuple(sorted({len(w) for w in words}, reverse=True))


def sound_rewrite(norm: str, words: tuple[str, ...]) -> str:
    """`norm` with every span that sounds exactly like one of `words` replaced by that word."""
    if not words:
        return norm
    by_sound, lengths = _sound_index(words)
    heard, out, i = sound_text(norm), [], 0
    while i < len(norm):
        for n in lengths:
            word = by_sound.get(heard[i:i + n]) if _HAN.match(norm[i]) else None
            if word is not None:
                out.append(word)
                i += n
                break
        else:
            out.append(norm[i])
            i += 1
    return "".join(out)


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
    sound_words: tuple[str, ...] = field(default=())  # words of SOUND_INTENTS rules

    def match(self, text: str) -> RuleHit | None:
        """The first rule matching the normalised text whose intent is not guarded; else the
        first opt-out rule matching its sound rewrite (see the module doc)."""
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
        heard = sound_rewrite(norm, self.sound_words) if _HAN.search(norm) else norm
        if heard == norm:
            return None
        for rule in self.rules:
            if rule.intent not in SOUND_INTENTS or "__" in rule.name or vetoed.get(rule.intent):
                continue
            if any(g.search(heard) for g in self.guards.get(rule.intent, ())):
                continue
            m = rule.pattern.search(heard)
            if m:
                return RuleHit(rule.intent, rule.name + "~sound", rule.pattern.pattern, m.group())
        return None

    def match_all(self, text: str) -> list[RuleHit]:
        """The first hit of every intent whose untagged rules match (file order), guards applied.
        Tagged rules (`rule_opt_out__report`: any 投诉) are catch-alls for when nothing more
        specific matched, so they never add a second intent (我要投诉质量 is not an opt-out)."""
        norm = normalize(text)
        hits: dict[str, RuleHit] = {}
        if not norm:
            return []
        vetoed: dict[str, bool] = {}
        for rule in self.rules:
            if "__" in rule.name or rule.intent in hits:
                continue
            if rule.intent not in vetoed:
                vetoed[rule.intent] = any(g.search(norm) for g in self.guards.get(rule.intent, ()))
            if vetoed[rule.intent]:
                continue
            m = rule.pattern.search(norm)
            if m:
                hits[rule.intent] = RuleHit(rule.intent, rule.name, rule.pattern.pattern, m.group())
        return list(hits.values())


    def spans(self, text: str) -> dict[str, tuple[int, int]]:
        """Per intent, the stretch of the normalised text that its untagged rules match (from the
        earliest start to the latest end), guards applied: where that intent was said."""
        norm = normalize(text)
        out: dict[str, tuple[int, int]] = {}
        vetoed: dict[str, bool] = {}
        for rule in self.rules:
            if "__" in rule.name:
                continue
            if rule.intent not in vetoed:
                vetoed[rule.intent] = any(g.search(norm) for g in self.guards.get(rule.intent, ()))
            if vetoed[rule.intent]:
                continue
            for m in rule.pattern.finditer(norm):
                lo, hi = out.get(rule.intent, (m.start(), m.end()))
                out[rule.intent] = (min(lo, m.start()), max(hi, m.end()))
        return out


def _intent_of(name: str, prefix: str, origin: str) -> str:
    intent = name[len(prefix):].split("__", 1)[0]
    if intent not in INTENT_SET:
        raise NluDataError(problem_at(origin, f"regex {name}", f"unknown intent {intent!r}"))
    if intent not in RULE_INTENTS:
        raise NluDataError(problem_at(origin, f"regex {name}", f"rules may only decide {sorted(RULE_INTENTS)}"))
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
    words = rule_words([r.pattern.pattern for r in rules if r.intent in SOUND_INTENTS and "__" not in r.name])
    return RuleSet(tuple(rules), {k: tuple(v) for k, v in guards.items()}, words)


def load_rules(path: str | Path) -> RuleSet:
    """Rules from a rules.yml; a missing file gives an empty rule set."""
    path = Path(path)
    if not path.exists():
        return RuleSet((), {})
    return rules_from_data(load_file(path))
