"""Noisy copy of tests/data/nlu_dev3_clean.yml: generic telephone-ASR error types, from pypinyin.

Usage: .venv/bin/python tools/dev3_noise.py [IN] [OUT] [SEED]
(defaults: tests/data/nlu_dev3_clean.yml → tests/data/nlu_dev3_noisy.yml, seed 2026; seeded,
reproducible). Dev set 4: `tools/dev3_noise.py tests/data/nlu_dev4_clean.yml
tests/data/nlu_dev4_noisy.yml 2027`.

The error model is generic, not a hand-written confusion table:
- word homophones: a two-character span replaced by another common word of the same toneless
  pinyin (a recogniser's language model prefers real words: 微信 → 威信);
- character homophones: one character replaced by a common character of the same toneless
  pinyin, or of a near sound (dialect/recogniser confusions zh/z, ch/c, sh/s, n/l, r/l, f/h,
  -ng/-n);
- a dropped character, a duplicated character or pair (stutter), a filler (嗯 啊 呃 那个 就是);
- no punctuation.
"Common" characters and words come from pypinyin's phrase dictionary (characters that occur in
many phrases), so substitutes are what a recogniser would plausibly output.
"""

from __future__ import annotations

import random
import re
import sys
import unicodedata
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import yaml

SEED = 2026
P_WORD = 0.25  # per two-character span that has a same-sound word
P_CHAR = 0.10  # per remaining Chinese character, same toneless pinyin
P_NEAR = 0.04  # per remaining Chinese character, near sound
P_DROP = 0.15
P_DUP = 0.15
P_FILLER = 0.30
FILLERS = ("嗯", "啊", "呃", "那个", "就是", "这个", "然后")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
_NEAR_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"), ("r", "l"), ("f", "h"))
_NEAR_FINALS = (("ing", "in"), ("eng", "en"), ("ang", "an"), ("iang", "ian"), ("uang", "uan"))


def _toneless(p: str) -> str:
    s = unicodedata.normalize("NFD", p)
    return "".join(c for c in s if not unicodedata.combining(c)).replace("ü", "v")


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """(sound → common chars by frequency, two-char sound → common words, char → sound)."""
    from pypinyin import lazy_pinyin
    from pypinyin.phrases_dict import phrases_dict

    freq: dict[str, int] = defaultdict(int)
    for phrase in phrases_dict:
        for c in set(phrase):
            freq[c] += 1
    common = {c for c, n in freq.items() if n >= 30 and _HAN.match(c)}
    sound_of = {c: lazy_pinyin(c)[0] for c in common}
    by_sound: dict[str, list[str]] = defaultdict(list)
    for c in sorted(common, key=lambda ch: (-freq[ch], ch)):
        by_sound[sound_of[c]].append(c)
    words: dict[str, list[str]] = defaultdict(list)
    for phrase, readings in phrases_dict.items():
        if len(phrase) == 2 and all(c in common for c in phrase):
            key = "_".join(_toneless(r[0]) for r in readings)
            words[key].append(phrase)
    return dict(by_sound), {k: sorted(v) for k, v in words.items()}, sound_of


def _sound(c: str) -> str:
    from pypinyin import lazy_pinyin

    return lazy_pinyin(c)[0]


def _near(sound: str) -> list[str]:
    out = []
    for a, b in _NEAR_INITIALS:
        for x, y in ((a, b), (b, a)):
            if sound.startswith(x) and not (x == "z" and sound.startswith("zh")) \
                    and not (x == "c" and sound.startswith("ch")) and not (x == "s" and sound.startswith("sh")):
                out.append(y + sound[len(x):])
    for a, b in _NEAR_FINALS:
        for x, y in ((a, b), (b, a)):
            if sound.endswith(x):
                out.append(sound[:-len(x)] + y)
    return out


def _pick(cands: list[str], rng: random.Random) -> str:
    """Frequency-ranked list: earlier (more common) candidates are likelier."""
    weights = [1.0 / (i + 1) for i in range(len(cands))]
    return rng.choices(cands, weights)[0]


def noisy(text: str, rng: random.Random) -> str:
    by_sound, words, _ = _tables()
    clean = _PUNCT.sub("", unicodedata.normalize("NFKC", text))
    out: list[str] = []
    i = 0
    # A one- or two-character answer swapped for another sound is unrecognisable to anyone
    # (行 → 姓); such fragments get only the stutter/drop/filler errors.
    subst = len(_HAN.findall(clean)) > 2
    while subst and i < len(clean):
        pair = clean[i:i + 2]
        if len(pair) == 2 and all(_HAN.match(c) for c in pair):
            key = "_".join(_sound(c) for c in pair)
            alts = [w for w in words.get(key, []) if w != pair]
            if alts and rng.random() < P_WORD:
                out.append(rng.choice(alts))
                i += 2
                continue
        c = clean[i]
        if _HAN.match(c):
            s = _sound(c)
            same = [x for x in by_sound.get(s, []) if x != c]
            near = [x for n in _near(s) for x in by_sound.get(n, [])[:6]]
            r = rng.random()
            if same and r < P_CHAR:
                c = _pick(same, rng)
            elif near and r < P_CHAR + P_NEAR:
                c = _pick(near, rng)
        out.append(c)
        i += 1
    s = "".join(out) + clean[i:]
    if len(s) >= 4 and rng.random() < P_DROP:
        k = rng.randrange(len(s))
        s = s[:k] + s[k + 1:]
    if len(s) >= 2 and rng.random() < P_DUP:
        k = rng.randrange(len(s))
        n = 2 if k + 2 <= len(s) and rng.random() < 0.3 else 1
        s = s[:k + n] + s[k:k + n] + s[k + n:]
    if rng.random() < P_FILLER:
        f = rng.choice(FILLERS)
        k = rng.randrange(1, len(s)) if len(s) >= 4 and rng.random() < 0.4 else 0
        s = s[:k] + f + s[k:]
    return s


def noisy_copy(text: str, seed: int = SEED) -> str:
    """One noisy rendering that differs from the punctuation-free text (up to 20 tries)."""
    rng = random.Random(f"{seed}:{text}")
    clean = _PUNCT.sub("", unicodedata.normalize("NFKC", text))
    s = clean
    for _ in range(20):
        s = noisy(text, rng)
        if s != clean:
            break
    return s


def main(src: Path, dst: Path, seed: int = SEED) -> None:
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    args = "" if src.name == "nlu_dev3_clean.yml" and seed == SEED else f" {src} {dst} {seed}"
    lines = [f"# ASR-noised copy of tests/data/{src.name}: generated by `python tools/dev3_noise.py{args}` "
             f"(seed {seed}); do not edit.", 'version: "3.1"', "nlu:"]
    n = 0
    for block in data["nlu"]:
        lines += [f"- intent: {block['intent']}", "  examples: |"]
        for raw in block["examples"].splitlines():
            text = raw.strip()[2:].strip()
            if text:
                lines.append(f"    - {noisy_copy(text, seed)}")
                n += 1
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {dst} ({n} examples)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else Path("tests/data/nlu_dev3_clean.yml"),
         Path(args[1]) if len(args) > 1 else Path("tests/data/nlu_dev3_noisy.yml"),
         int(args[2]) if len(args) > 2 else SEED)
