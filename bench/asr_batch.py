"""Concurrent real-time calls with and without batched decoding (WhisperConfig.max_batch).

Run: .venv/bin/python bench/asr_batch.py [--calls 12 20] [--seconds 30] [--write-results]
     (--write-results replaces the "## ASR concurrency (batched decoding)" section of bench/RESULTS.md)

Same calls as bench/asr.py's concurrency table (telephone test replies after 2-4 s of bot speech,
fed in 20 ms frames in real time, one thread per call); whisper with 1 thread × 2 workers.
Sustained = p90 end of speech → final ≤ 1.5 s and the call's audio processed within 0.5 s of its end.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr import load_recognizer
from bench._machine import machine
from bench.asr import AUDIO, ROOT, concurrency, ms, write_section
from core.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[12, 20])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    rec = load_recognizer(Settings(asr_threads=1, asr_workers=2), "whisper", cached=False)
    backend = rec.backend  # type: ignore[attr-defined]
    tel = sorted((AUDIO / "tel").glob("zh*.wav"))
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit(f"Command: `.venv/bin/python bench/asr_batch.py --calls {' '.join(map(str, args.calls))} --write-results`")
    emit()
    emit("| decoding | calls | finals | p50 ms | p90 ms | p99 ms | worst frame lag ms | lag at end ms | load avg | sustained |")
    emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    base = backend.config
    for n in args.calls:
        for label, size in (("one at a time", 1), ("batched (≤ 8)", 8)):
            backend.config = replace(base, max_batch=size)
            load = os.getloadavg()[0]
            c = concurrency(rec, tel, n, args.seconds)
            ok = c["p90"] <= 1.5 and c["left"] <= 0.5
            emit(f"| {label} | {n} | {c['n']:.0f} | {ms(c['p50'])} | {ms(c['p90'])} | {ms(c['p99'])} | {ms(c['lag'])} | "
                 f"{ms(c['left'])} | {load:.1f} → {os.getloadavg()[0]:.1f} | {'yes' if ok else 'no'} |")
    emit()
    emit(f"Machine: {machine()}; {os.cpu_count()} cores shared with other agents while this ran (load averages "
         "above: everything over 2 is other work competing for the same 2 cores), so these are upper bounds.")
    if args.write_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## ASR concurrency (batched decoding)", lines)


if __name__ == "__main__":
    main()
