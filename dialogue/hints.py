"""ASR hint phrases for every waiting node, compiled from what the track already says.

A node's hints are, in prompt order:
1. the track's `vocabulary` (domain words: 尾款, 短信, 企业微信…),
2. the values of the track's (and persona's) variables as they are spoken: product names, amounts
   as "299元", dates as written ("11月13日"); links and digit strings are never spoken,
3. short NLU examples of each intent the node expects (`expect` and its `on` keys), a few per
   intent, chosen so that each one brings words the others of that intent lack,
4. the node's own `hints` (added by the author); `hints_drop` removes phrases from 1-3.

Recognisers get them as `AsrHints` (Whisper: the decoding prompt and homophone rewriting;
vosk: the grammar). `huashu tracks hints TRACK [NODE]` prints them; `huashu validate` checks them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.vocab import INTENT_SET
from dialogue.render import speak_value
from dialogue.schema import Node, Track

PER_INTENT = 4  # NLU examples per expected intent
MAX_EXAMPLE_CHARS = 8  # longer examples are sentences, not phrases a prompt should carry
MAX_PROMPT_CHARS = 160  # Whisper's prompt holds ~223 tokens; Chinese is 1-2 tokens a character
_PUNCT = re.compile(r"[\s，。！？、,.!?;；:：~～…\"'“”‘’()（）]+")
_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}")
_URLISH = re.compile(r"^[\x21-\x7e]+$")  # links, ids, plain ASCII: not said on a call


@dataclass(frozen=True, slots=True)
class Hint:
    """One phrase and where it came from: `vocabulary`, `variable:<name>`, `intent:<name>`, `node`."""

    phrase: str
    source: str


@dataclass(frozen=True, slots=True)
class NodeHints:
    node: str
    hints: tuple[Hint, ...]

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(h.phrase for h in self.hints)

    @property
    def prompt_chars(self) -> int:
        return sum(len(p) + 1 for p in self.phrases)


def plain(text: str) -> str:
    """An NLU example as said: entity annotations unwrapped, punctuation removed."""
    text = _ANNOTATION.sub(lambda m: m.group(1) or m.group(2), text)
    return _PUNCT.sub("", text)


def expected_intents(node: Node) -> tuple[str, ...]:
    """`expect` first, then the `on` keys (the wildcard and pseudo-intents are not intents)."""
    return tuple(i for i in dict.fromkeys((*node.expect, *node.on)) if i in INTENT_SET)


_PARTICLES = frozenset("啊呀吧嘛呢哦嘞哈呗啦的了喔噢嗯")
_SCAN = 40  # only the first examples of an intent: authors list the usual replies first


def _undouble(text: str) -> str:
    """"好的好的" → "好的": a doubled reply teaches the recogniser nothing new."""
    half = len(text) // 2
    return text[:half] if len(text) % 2 == 0 and text[:half] == text[half:] else text


def pick_examples(examples: Iterable[str], limit: int = PER_INTENT) -> tuple[str, ...]:
    """Up to `limit` short examples in file order (authors list the usual replies first),
    skipping one unless at least half of its words (characters other than particles) are new
    to the ones already picked: "好的, 是啊, 没问题" rather than "好的, 好的呀, 好嘞"."""
    picked: list[str] = []
    seen: set[str] = set()
    for raw in list(examples)[:_SCAN]:
        text = _undouble(plain(raw))
        content = set(text) - _PARTICLES
        if not 2 <= len(text) <= MAX_EXAMPLE_CHARS or text in picked or not content:
            continue
        if len(content - seen) * 2 < len(content):
            continue
        picked.append(text)
        seen |= content
        if len(picked) >= limit:
            break
    return tuple(picked)


def spoken_value(value: str, kind: str) -> str | None:
    """A variable's value as a recogniser writes it when said, or None if it is never said."""
    value = value.strip()
    if not value or kind == "digits" or (_URLISH.match(value) and not value.replace(".", "").isdigit()):
        return None
    if kind == "amount":
        return f"{value}元" if len(value) >= 2 else None  # "7" (days, a count): too short to steer anything
    return value if len(value) >= 2 else None  # "7": too short to steer anything


def variable_hints(track: Track, values: Mapping[str, str] | None = None) -> tuple[Hint, ...]:
    """Spoken values of the track's variables (call values first, else the track's defaults)."""
    out: list[Hint] = []
    for name, var in track.variables.items():
        # a claim has no default: its sample stands in when no call's values are given
        value = (values or {}).get(name, var.default if var.default is not None else var.sample)
        if value is None or value.startswith("+"):  # no value, or a relative date (+Nd) sample
            continue
        if var.type == "date":  # YYYY-MM-DD is said 12月10日
            value = speak_value(value)
        phrase = spoken_value(str(value), var.type)
        if phrase:
            out.append(Hint(phrase, f"variable:{name}"))
    for name in ("brand",):  # who is calling: customers repeat it back ("哪个美丽优选？")
        if values and values.get(name):
            phrase = spoken_value(values[name], "text")
            if phrase:
                out.append(Hint(phrase, f"variable:{name}"))
    return tuple(out)


def node_hints(track: Track, node_id: str, examples: Mapping[str, tuple[str, ...]],
               values: Mapping[str, str] | None = None) -> NodeHints:
    """The compiled hints of one node (empty for a node that does not wait for the customer)."""
    node = track.nodes[node_id]
    if not node.waits:
        return NodeHints(node_id, tuple(Hint(p, "node") for p in node.hints))
    fixed = [Hint(p, "vocabulary") for p in track.vocabulary] + list(variable_hints(track, values))
    own = [Hint(p, "node") for p in node.hints]
    for per_intent in range(PER_INTENT, 0, -1):  # fewer examples per intent until the prompt fits
        found = [*fixed]
        for intent in expected_intents(node):
            found += [Hint(p, f"intent:{intent}") for p in pick_examples(examples.get(intent, ()), per_intent)]
        result = _dedup(node_id, [*found, *own], set(node.hints_drop))
        if result.prompt_chars <= MAX_PROMPT_CHARS:
            break
    return result


def _dedup(node_id: str, found: list[Hint], drop: set[str]) -> NodeHints:
    out: dict[str, Hint] = {}
    for h in found:
        if h.phrase not in drop and h.phrase not in out:
            out[h.phrase] = h
    return NodeHints(node_id, tuple(out.values()))


def track_hints(track: Track, examples: Mapping[str, tuple[str, ...]],
                values: Mapping[str, str] | None = None) -> dict[str, NodeHints]:
    """Hints of every waiting node of the track, in file order."""
    return {n: node_hints(track, n, examples, values) for n, node in track.nodes.items() if node.waits}


def hint_problems(track: Track, examples: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """(node, message) for each hint mistake: a drop that removes nothing, hints on a node that
    never listens, an empty or over-long phrase, a prompt too long for the recogniser."""
    problems: list[tuple[str, str]] = []
    for node_id, node in track.nodes.items():
        if not node.waits and (node.hints or node.hints_drop):
            problems.append((node_id, "hints on a node that does not wait for the customer"))
            continue
        for p in (*node.hints, *node.hints_drop):
            if not plain(p) or len(p) > 20:
                problems.append((node_id, f"hint phrase {p!r} must be 1-20 characters of speech"))
        if not node.waits:
            continue
        auto = node_hints(track.model_copy(update={"nodes": {
            **track.nodes, node_id: node.model_copy(update={"hints_drop": ()})}}), node_id, examples)
        for p in node.hints_drop:
            if p not in auto.phrases:
                problems.append((node_id, f"hints_drop: {p!r} is not among the node's hints "
                                          f"(see `huashu tracks hints {track.id} {node_id}`)"))
        chars = node_hints(track, node_id, examples).prompt_chars
        if chars > MAX_PROMPT_CHARS:
            problems.append((node_id, f"hints are {chars} characters; the recogniser's prompt holds "
                                      f"{MAX_PROMPT_CHARS} (drop some with hints_drop)"))
    for p in track.vocabulary:
        if not plain(p) or len(p) > 20:
            problems.append(("", f"vocabulary phrase {p!r} must be 1-20 characters of speech"))
    return problems


# -- NLU examples, loaded once per scripts folder ------------------------------------------------

_examples: dict[Path, dict[str, tuple[str, ...]]] = {}
_lock = threading.Lock()


def nlu_examples(scripts_root: Path) -> dict[str, tuple[str, ...]]:
    """Training examples per intent from `<scripts>/nlu` (empty when the folder has none)."""
    key = scripts_root.resolve()
    with _lock:
        if key in _examples:
            return _examples[key]
    from nlu.data import load_dir

    by_intent: dict[str, list[str]] = {}
    if (scripts_root / "nlu").is_dir():
        for ex in load_dir(scripts_root / "nlu", training_only=True).examples:
            by_intent.setdefault(ex.intent, []).append(ex.text)
    result = {k: tuple(v) for k, v in by_intent.items()}
    with _lock:
        return _examples.setdefault(key, result)


# -- what the recognisers get ----------------------------------------------------------------------

_compiled: dict[tuple[object, ...], tuple[str, ...]] = {}


def phrases_for(scripts_root: Path, track: Track, node_id: str, values: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The phrases of one node for one call's variable values (memoised: a call's hints are
    looked up at every turn)."""
    relevant = tuple(sorted((k, v) for k, v in (values or {}).items() if k in track.variables or k == "brand"))
    key = (scripts_root, track.id, id(track), node_id, relevant)
    with _lock:
        hit = _compiled.get(key)
    if hit is not None:
        return hit
    if node_id not in track.nodes:
        return ()
    phrases = node_hints(track, node_id, nlu_examples(scripts_root), dict(relevant)).phrases
    with _lock:
        if len(_compiled) > 20_000:  # one entry per (node, customer values); bounded
            _compiled.clear()
        _compiled[key] = phrases
    return phrases
