"""Doubled and echoed finals on the development set (tools/dev_utterances.yml, never the test set).

Run: tools/make_test_audio.sh --dev /tmp/huashu-asr-dev
     .venv/bin/python bench/asr_repeats.py /tmp/huashu-asr-dev

Each telephone dev utterance is recognised as recorded, and again as a turn in which the caller
says it twice (the recording, 0.6 s of line silence, the recording again: "喂？喂？" / a repeated
answer). A final is "doubled" when it holds the reply twice (its first half, by character
similarity ≥ 0.85, again as its second half). Reported with the repeat collapse off and on
(asr.normalize.collapse_repeat), and CER against the reply said once.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import yaml

import asr.pipeline as pipeline
import asr.whisper_backend as wb
from asr import load_recognizer
from asr.audio import decode
from asr.metrics import corpus_cer
from asr.normalize import collapse_repeat, normalize_text
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def doubled(text: str) -> bool:
    return collapse_repeat(text) != text


def main() -> None:
    dev = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/huashu-asr-dev")
    items = yaml.safe_load((ROOT / "tools" / "dev_utterances.yml").read_text("utf-8"))["utterances"]
    rec = load_recognizer(Settings(), "whisper", cached=False)
    gap = np.zeros(int(0.6 * 16000), "<i2")
    for label, on in (("collapse off", False), ("collapse on", True)):
        fn = collapse_repeat if on else (lambda t, min_ratio=0.85: t)
        pipeline.collapse_repeat = fn
        wb.collapse_repeat = fn
        once, twice = [], []
        for u in items:
            x = np.frombuffer(decode((dev / "tel" / f"{u['id']}.wav").read_bytes(), target_rate=16000).pcm, "<i2")
            once.append((u["text"], rec.transcribe(x.tobytes()).text))
            twice.append((u["text"], rec.transcribe(np.concatenate([x, gap, x]).tobytes()).text))
        d1 = sum(doubled(normalize_text(h)) for _, h in once)
        d2 = sum(doubled(normalize_text(h)) for _, h in twice)
        print(f"| {label} | {len(items)} | {d1} | {corpus_cer(once) * 100:.1f} % | {d2} | {corpus_cer(twice) * 100:.1f} % |")


if __name__ == "__main__":
    print("| dev set (telephone) | utterances | doubled finals, said once | CER | doubled finals, said twice | "
          "CER vs. the reply once |")
    print("|---|---:|---:|---:|---:|---:|")
    main()
