"""Reproducible telephone-ASR noise: homophones, dropped/repeated characters, no punctuation,
fillers. The same generator augments training text and makes the noisy copy of held-out set 1;
the confusion table is data (scripts_zh/nlu/asr_noise.yml: `synonym` = misrecognitions of a word,
`lookup: filler` = hesitation words).

Training also uses generic sound noise (`p_sound` > 0): any Chinese character may become an
everyday character of the same pinyin (nlu.sound.homophones; now and then a near sound), so the
models meet homophones no table lists. The noisy copy of set 1 keeps `p_sound` 0 (its file is
fixed by seed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from nlu.data import Example, NluData
from nlu.sound import HAN, homophones
from nlu.text import strip_punct


@dataclass(frozen=True, slots=True)
class NoiseTable:
    homophones: dict[str, tuple[str, ...]]
    fillers: tuple[str, ...]

    @classmethod
    def from_data(cls, data: NluData) -> NoiseTable:
        homophones: dict[str, tuple[str, ...]] = {}
        noise_files = {f for f in data.files if f.name.startswith("asr_noise")}
        for entry in data.synonyms:
            if any(entry.origin.startswith(str(f)) for f in noise_files):
                homophones[entry.name] = homophones.get(entry.name, ()) + entry.items
        return cls(homophones, data.lookup("filler"))


@dataclass(frozen=True, slots=True)
class AsrNoise:
    """Seeded noise generator. Probabilities are per utterance except homophones (per site)."""

    table: NoiseTable
    p_homophone_word: float = 0.6  # multi-character words (微信→威信)
    p_homophone_char: float = 0.25  # single characters are frequent (是→事), so rarer
    p_drop: float = 0.2
    p_repeat: float = 0.2
    p_filler: float = 0.3
    p_sound: float = 0.0  # per Chinese character the table left alone: a generic homophone
    p_near: float = 0.25  # of those, the share drawn from near sounds (shi/si, nan/lan)

    def _pattern(self) -> re.Pattern[str] | None:
        keys = sorted(self.table.homophones, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, keys))) if keys else None

    def noisy(self, text: str, rng: random.Random) -> str:
        """One noisy rendering of `text` (never returns the clean punctuation-free text when a
        change is possible)."""
        clean = strip_punct(text)
        s = clean
        pattern = self._pattern()
        if pattern is not None:
            def sub(m: re.Match[str]) -> str:
                p = self.p_homophone_word if len(m.group()) > 1 else self.p_homophone_char
                return rng.choice(self.table.homophones[m.group()]) if rng.random() < p else m.group()
            s = pattern.sub(sub, s)
        if self.p_sound > 0:
            s = "".join(self._sound(c, rng) for c in s)
        if len(s) >= 4 and rng.random() < self.p_drop:
            i = rng.randrange(len(s))
            s = s[:i] + s[i + 1:]
        if len(s) >= 2 and rng.random() < self.p_repeat:
            s = self._repeat(s, rng)
        if self.table.fillers and rng.random() < self.p_filler:
            s = self._filler(s, rng)
        if s == clean and len(clean) >= 1:
            ops = [self._repeat] + ([self._filler] if self.table.fillers else [])
            s = rng.choice(ops)(s, rng)
        return s

    def _sound(self, c: str, rng: random.Random) -> str:
        if not HAN.match(c) or rng.random() >= self.p_sound:
            return c
        cands = homophones(c, exact=rng.random() >= self.p_near) or homophones(c, exact=False)
        return rng.choice(cands) if cands else c

    def _repeat(self, s: str, rng: random.Random) -> str:
        i = rng.randrange(len(s))
        n = 2 if i + 2 <= len(s) and rng.random() < 0.3 else 1
        return s[:i + n] + s[i:i + n] + s[i + n:]

    def _filler(self, s: str, rng: random.Random) -> str:
        filler = rng.choice(self.table.fillers)
        if len(s) >= 4 and rng.random() < 0.35:
            i = rng.randrange(1, len(s))
            return s[:i] + filler + s[i:]
        return filler + s

    def variants(self, text: str, n: int, *, seed: int | str, salt: str = "train") -> list[str]:
        """Up to `n` distinct noisy renderings; the same (text, n, seed, salt) → the same list."""
        rng = random.Random(f"{seed}:{salt}:{text}")
        out: list[str] = []
        for _ in range(n * 3):
            v = self.noisy(text, rng)
            if v and v not in out:
                out.append(v)
            if len(out) == n:
                break
        return out


def noisy_copy(examples: Iterable[Example], noise: AsrNoise, *, seed: int | str) -> list[Example]:
    """One noisy rendering per example, labels and metadata kept (entity spans dropped)."""
    out = []
    for ex in examples:
        v = noise.variants(ex.text, 1, seed=seed, salt="heldout")
        out.append(replace(ex, text=v[0] if v else ex.text, annotations=()))
    return out


def dump_rasa(examples: Sequence[Example], header: str = "") -> str:
    """Rasa 3 YAML for examples (context-tagged ones as `{text, metadata}` items)."""
    import yaml

    def q(s: str) -> str:
        return yaml.safe_dump(s, allow_unicode=True, default_style='"').strip()

    lines = [header.rstrip()] if header else []
    lines += ['version: "3.1"', "nlu:"]
    plain: dict[str, list[str]] = {}
    tagged: list[Example] = []
    for ex in examples:
        if ex.expected_intents:
            tagged.append(ex)
        else:
            plain.setdefault(ex.intent, []).append(ex.text)
    for intent, texts in plain.items():
        lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {t}" for t in texts]
    for ex in tagged:
        lines += [f"- intent: {ex.intent}", "  examples:", f"  - text: {q(ex.text)}",
                  f"    metadata: {{expected_intents: [{', '.join(ex.expected_intents)}]}}"]
    return "\n".join(lines) + "\n"
