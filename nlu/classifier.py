"""The intent classifier the engine uses: rules → calibrated ensemble → context prior → entities.

`load_classifier(settings)` loads the model directory (training it first when missing or stale
against the data hash); errors name the directory and say `huashu nlu train`.
"""

from __future__ import annotations

import fcntl
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.parse import ClassifyContext, Parse
from nlu.calibrate import Calibration
from nlu.config import TrainConfig
from nlu.data import NluDataError, data_hash
from nlu.entities import ProductTable, extract, product_table
from nlu.rules import RULE_INTENTS, RuleSet, load_rules
from nlu.text import normalize
from nlu.train import META_FILE, MODEL_FORMAT, Progress, train_model

if TYPE_CHECKING:
    from core.settings import Settings

# Below this calibrated confidence the engine treats the turn as not understood (fallback).
CONFIDENCE_THRESHOLD = 0.5
# Multiplier on the probability of each intent the current node expects (then renormalised):
# lifts an ambiguous 嗯 to affirm after a yes/no question, cannot overturn a clear answer.
CONTEXT_BOOST = 4.0
RULE_CONFIDENCE = 1.0
FALLBACK_INTENT = "out_of_scope"
# A clause's own intent is reported as `Parse.secondary` from this calibrated confidence up.
SECONDARY_THRESHOLD = 0.6
_NO_SECONDARY = frozenset({"greet", "out_of_scope", "repeat", FALLBACK_INTENT})
_ANSWER_WORDS = frozenset({"affirm", "deny", "thanks_bye"})
_CLAUSE_BREAK = re.compile(r"[，,。？?！!；;～~、…]+|\s+(?![a-z0-9])")
# ASR drops punctuation: a leading yes/no word followed by a clause of its own still splits
# (可以那运费谁出 → 可以 | 运费谁出). The joiners after the lead word belong to neither clause.
_LEAD = re.compile(r"^(?:嗯|啊|哦|噢|呃)?(?:(好的|好啊|好吧|好嘞|行啊|行吧|可以的?|嗯嗯|没问题|ok|是的|对的|要得|不用了|不需要|不要了|算了)"
                   r"(?:那么|那|但是|不过|就是|对了|请问|问一下|顺便问一?下)?"
                   r"|(好|行|嗯|对|中|成)(?:那么|那|但是|不过))(?=\w{3,})")


# ASR drops punctuation: a sentence-final particle with two or more characters after it ends a
# clause too (好的发我链接吧多少钱 → 好的 | 发我链接吧 | 多少钱). 哈 and 了 are left out: 哈喽, 算了.
_PARTICLE_END = re.compile(r"(?<=\w[吧吗呢嘛啦呀])(?=\w{2})")


def clauses(text: str) -> list[str]:
    """The utterance's clauses when it has more than one (else []): punctuation; when ASR gave
    none, a leading yes/no word before a longer clause, and a sentence-final particle."""
    parts = [p for p in _CLAUSE_BREAK.split(text) if normalize(p)]
    if len(parts) < 2:
        norm = normalize(text)
        m = _LEAD.match(norm)
        parts = [m.group(1) or m.group(2), norm[m.end():]] if m else [norm]
    parts = [q for p in parts for q in _PARTICLE_END.split(p) if q]
    return parts if len(parts) > 1 else []


def rule_clauses(text: str, rules: RuleSet) -> list[str]:
    """Without any other clause break, a rule's match is a clause of its own: what is said
    before or after it (three characters or more) is another (买的面霜有问题以后别打了 →
    买的面霜有问题 | 以后别打了)."""
    norm = normalize(text)
    for at, end in rules.spans(norm).values():
        before, match, after = norm[:at], norm[at:end], norm[end:]
        if len(before) < 3:  # a word or two beside the match belongs to its clause
            before, match = "", before + match
        if len(after) < 3:
            match, after = match + after, ""
        parts = [p for p in (before, match, after) if p]
        if len(parts) > 1:
            return parts
    return []


class NluModelError(RuntimeError):
    """The model directory is missing, stale or unreadable; the message names the path."""


class HuashuClassifier:
    """Implements core.parse.IntentClassifier."""

    def __init__(self, model_dir: Path, rules: RuleSet, products: ProductTable, *,
                 context_boost: float = CONTEXT_BOOST) -> None:
        self.model_dir = model_dir
        self.rules = rules
        self.products = products
        self.context_boost = context_boost
        try:
            meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"model format {meta.get('format')!r}, expected {MODEL_FORMAT}")
            self.meta: dict[str, Any] = meta
            self.intents: tuple[str, ...] = tuple(meta["intents"])
            self.calibration = Calibration(float(meta["weight"]), float(meta["temperature"]),
                                           float(meta["t_bert"]), float(meta["t_ngram"]))
            models = set(meta["models"])
            self._ngram = self._bert = None
            if "ngram" in models:
                from nlu.ngram import NgramModel

                self._ngram = NgramModel.load(model_dir)
            if "bert" in models:
                from nlu.bert import BertIntentModel

                self._bert = BertIntentModel.load(model_dir)
                if self._bert.labels != self.intents:
                    raise ValueError("transformer labels do not match meta.json")
        except NluModelError:
            raise
        except Exception as exc:  # any unreadable piece means a corrupt directory
            raise NluModelError(
                f"NLU model at {model_dir} is corrupt or incomplete ({type(exc).__name__}: {exc}); "
                f"retrain it with `huashu nlu train --out {model_dir}`") from exc
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads

    @property
    def data_hash(self) -> str:
        return str(self.meta.get("data_hash", ""))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated ensemble probabilities (N, len(intents)); no rules, no context."""
        with self._lock:
            b = self._bert.logits(texts) if self._bert is not None else None
        n = self._ngram.logits(texts) if self._ngram is not None else None
        return self.calibration.combine(b, n)

    def classify(self, text: str, context: ClassifyContext | None = None) -> Parse:
        return self.classify_batch([text], [context])[0]

    def classify_batch(self, texts: Sequence[str],
                       contexts: Sequence[ClassifyContext | None] | None = None) -> list[Parse]:
        """Classify many utterances with one model pass (throughput path)."""
        texts = list(texts)
        ctxs = list(contexts) if contexts is not None else [None] * len(texts)
        if len(ctxs) != len(texts):
            raise ValueError("contexts must match texts one to one")
        parts = [clauses(t) or rule_clauses(t, self.rules) for t in texts]
        flat = [c for cs in parts for c in cs]
        probs = self.probabilities(texts + flat) if texts else np.zeros((0, len(self.intents)))
        out, at = [], len(texts)
        for text, p, ctx, cs in zip(texts, probs[:len(texts)], ctxs, parts, strict=True):
            parse = self._decide(text, p, ctx)
            out.append(self._with_secondary(parse, cs, probs[at:at + len(cs)]))
            at += len(cs)
        return out

    def _with_secondary(self, parse: Parse, parts: list[str], probs: np.ndarray) -> Parse:
        """Add the most confident other intent that a rule or a single clause carries. A bare
        greeting in front of a question (喂你好，哪位？), or a whole too unsure to act on, gives
        the best clause's intent as the intent. The compliance intents come from rules only, but
        for a complaint said beside an opt-out (买的面霜有问题以后别打了): the model may hear the
        complaint clause, since the customer is not called again either way."""
        found: list[tuple[str, float]] = [(h.intent, RULE_CONFIDENCE) for h in self.rules.match_all(parse.text)]
        for part, p in zip(parts, probs, strict=True):
            hit = next(iter(self.rules.match_all(part)), None)  # untagged rules only
            top = int(p.argmax())
            if hit is not None:
                found.append((hit.intent, RULE_CONFIDENCE))
            elif self.intents[top] not in RULE_INTENTS or (
                    self.intents[top] == "complaint" and parse.intent == "opt_out"):
                found.append((self.intents[top], float(p[top])))
        cands = sorted(((i, c) for i, c in found if i not in _NO_SECONDARY and c >= SECONDARY_THRESHOLD),
                       key=lambda ic: -ic[1])
        # A short answer word in one clause (喂 → affirm) never replaces a different whole.
        lift = [(i, c) for i, c in cands if i == parse.intent or i not in _ANSWER_WORDS]
        if lift and parse.source != "rule" and (parse.intent == "greet" or parse.confidence < CONFIDENCE_THRESHOLD):
            name, conf = lift[0]
            ranking = ((name, conf), *((n, c) for n, c in parse.ranking if n != name))
            parse = replace(parse, intent=name, confidence=conf, ranking=ranking, source="clause")
        # Two answer words (行吧 | 我考虑一下: deny and affirm) contradict each other: the whole decides.
        other = next(((i, c) for i, c in cands if i != parse.intent
                      and not (i in _ANSWER_WORDS and parse.intent in _ANSWER_WORDS)), None)
        return replace(parse, secondary=other) if other else parse

    def _decide(self, text: str, probs: np.ndarray, context: ClassifyContext | None) -> Parse:
        entities = extract(text, context.now if context else None, products=self.products)
        if not text.strip():
            return Parse(text, FALLBACK_INTENT, 0.0, ((FALLBACK_INTENT, 0.0),), entities, "model")
        hit = self.rules.match(text)
        if hit is not None:
            return Parse(text, hit.intent, RULE_CONFIDENCE, ((hit.intent, RULE_CONFIDENCE),), entities, "rule")
        source = "model"
        top = int(probs.argmax())
        expected = [i for i, n in enumerate(self.intents) if context and n in context.expected_intents]
        if expected:
            lifted = probs.copy()
            lifted[expected] *= self.context_boost
            lifted /= lifted.sum()
            new_top = int(lifted.argmax())
            if new_top != top or (lifted[new_top] >= CONFIDENCE_THRESHOLD > probs[top]):
                source = "context"
            probs, top = lifted, new_top
        order = np.argsort(-probs)[:10]
        ranking = tuple((self.intents[i], float(probs[i])) for i in order)
        return Parse(text, self.intents[top], float(probs[top]), ranking, entities, source)


_cache: dict[tuple[str, str, float], HuashuClassifier] = {}
_cache_lock = threading.Lock()


def model_status(model_dir: Path, expected_hash: str) -> str:
    """'ok' | 'missing' | 'stale' | 'corrupt'."""
    if not model_dir.exists() or (model_dir.is_dir() and not any(model_dir.iterdir())):
        return "missing"
    meta_path = model_dir / META_FILE
    if not model_dir.is_dir() or not meta_path.is_file():
        return "corrupt"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        found = meta["data_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return "corrupt"
    return "ok" if found == expected_hash else "stale"


@contextmanager
def _train_lock(model_dir: Path) -> Iterator[None]:
    """Serialise training of one directory across processes (tests, server workers)."""
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(model_dir.parent / f".{model_dir.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_model(nlu_dir: Path, model_dir: Path, *, train_if_missing: bool = True,
                 progress: Progress | None = None, config: TrainConfig | None = None) -> Path:
    """Make sure `model_dir` holds a model trained on `nlu_dir`'s current data."""
    expected = data_hash(nlu_dir)
    status = model_status(model_dir, expected)
    if status == "ok":
        return model_dir
    if status == "corrupt":
        raise NluModelError(
            f"NLU model at {model_dir} is corrupt (no readable {META_FILE}); delete the directory "
            f"or retrain it with `huashu nlu train --out {model_dir}`")
    if not train_if_missing:
        what = "missing" if status == "missing" else "stale (trained on other data)"
        raise NluModelError(f"NLU model at {model_dir} is {what}; run `huashu nlu train` "
                            f"(or `huashu nlu train --out {model_dir}`)")
    with _train_lock(model_dir):
        if model_status(model_dir, expected) != "ok":  # another process may have finished it
            train_model(nlu_dir, model_dir, config or TrainConfig(), progress)
    return model_dir


def classifier_from_dir(model_dir: Path, nlu_dir: Path) -> HuashuClassifier:
    """Load a trained model directory with the rules and product table of `nlu_dir`."""
    try:
        rules = load_rules(nlu_dir / "rules.yml")
        products = product_table(nlu_dir)
    except NluDataError as exc:
        raise NluModelError(f"NLU data under {nlu_dir} is invalid: {exc}") from exc
    return HuashuClassifier(model_dir, rules, products)


def load_classifier(settings: Settings, *, train_if_missing: bool = True,
                    progress: Progress | None = None) -> HuashuClassifier:
    """The classifier for `settings` (model dir: settings.effective_nlu_model_dir, data:
    <scripts dir>/nlu). Missing or stale → trained first (progress bar on stderr) unless
    `train_if_missing=False`, which raises NluModelError naming the path. Cached per process."""
    model_dir = Path(settings.effective_nlu_model_dir)
    nlu_dir = Path(settings.effective_scripts_dir) / "nlu"
    if progress is None and train_if_missing:
        from nlu.progress import stderr_progress

        with stderr_progress() as bar:
            ensure_model(nlu_dir, model_dir, train_if_missing=True, progress=bar)
    else:
        ensure_model(nlu_dir, model_dir, train_if_missing=train_if_missing, progress=progress)
    rules_path = nlu_dir / "rules.yml"
    key = (str(model_dir.resolve()), data_hash(nlu_dir),
           rules_path.stat().st_mtime if rules_path.exists() else 0.0)
    with _cache_lock:
        clf = _cache.get(key)
        if clf is None:
            clf = _cache[key] = classifier_from_dir(model_dir, nlu_dir)
    return clf


def classify_texts(classifier: HuashuClassifier, texts: Sequence[str], *, now: datetime | None = None,
                   expected: Sequence[str] = ()) -> list[Parse]:
    """Convenience for CLI/bench: the same context for every text."""
    ctx = ClassifyContext(tuple(expected), now)
    return classifier.classify_batch(texts, [ctx] * len(texts))


ProgressFactory = Callable[[], Progress]
