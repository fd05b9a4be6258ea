"""Concurrent real-time calls with and without batched decoding (WhisperConfig.max_batch).

Run: .venv/bin/python bench/asr_batch.py [--calls 12 20] [--seconds 30] [--batch 1 8]
         [--threads T] [--workers W] [--write-results]
     (--write-results replaces the "## ASR concurrency (batched decoding)" section of bench/RESULTS.md)

Same calls as bench/asr.py's concurrency table (telephone test replies after 2-4 s of bot speech,
fed in 20 ms frames in real time, one thread per call); whisper with the shipped settings
(`Settings()`: threads × workers) unless --threads/--workers say otherwise.
Sustained = p90 end of speech → final ≤ 1.5 s and the call's audio processed within 0.5 s of its end.

"CPU cores" is the process's CPU time (all threads) over the seconds of call audio played: the
cores these calls need to run in real time. Unlike the latencies it barely depends on what else
runs on the machine, so it is the figure to compare between runs on a shared machine; on 2 cores
it must stay well under 2 for the calls to keep up.
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
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="max_batch values to compare")
    ap.add_argument("--threads", type=int, help="CPU threads per decode (default: the shipped setting)")
    ap.add_argument("--workers", type=int, help="concurrent decodes (default: the shipped setting)")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    shipped = Settings()
    threads = args.threads or shipped.asr_threads
    workers = args.workers or shipped.asr_workers
    rec = load_recognizer(Settings(asr_threads=threads, asr_workers=workers), "whisper", cached=False)
    backend = rec.backend  # type: ignore[attr-defined]
    tel = sorted((AUDIO / "tel").glob("zh*.wav"))
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    flags = "".join(f" --{k} {v}" for k, v in (("threads", args.threads), ("workers", args.workers)) if v)
    emit(f"Command: `.venv/bin/python bench/asr_batch.py --calls {' '.join(map(str, args.calls))} "
         f"--batch {' '.join(map(str, args.batch))}{flags} --write-results`")
    emit()
    emit(f"Whisper: {threads} thread(s) per decode × {workers} worker(s), beam {backend.config.beam_size}.")
    emit()
    emit("| decoding | calls | finals | p50 ms | p90 ms | p99 ms | worst frame lag ms | lag at end ms "
         "| CPU cores | CPU ms per call-s | decodes / passes | speculative used / started | load avg | sustained |")
    emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    base = backend.config
    for n in args.calls:
        for size in args.batch:
            label = "one at a time" if size <= 1 else f"batched (≤ {size})"
            backend.config = replace(base, max_batch=size)
            before = dict(backend.counts)
            load = os.getloadavg()[0]
            c = concurrency(rec, tel, n, args.seconds)
            d = {k: backend.counts[k] - before[k] for k in before}
            ok = c["p90"] <= 1.5 and c["left"] <= 0.5
            emit(f"| {label} | {n} | {c['n']:.0f} | {ms(c['p50'])} | {ms(c['p90'])} | {ms(c['p99'])} | "
                 f"{ms(c['lag'])} | {ms(c['left'])} | {c['cores']:.2f} | {c['cores'] / n * 1000:.0f} | "
                 f"{d['decoded']} / {d['passes']} | {d['speculative_used']} / {d['speculative']} | "
                 f"{load:.1f} → {os.getloadavg()[0]:.1f} | {'yes' if ok else 'no'} |")
    emit()
    emit(f"Machine: {machine()}; {os.cpu_count()} cores (load averages above: everything over what this "
         "benchmark itself uses is other work competing for the same cores, which inflates the latencies "
         "but hardly the CPU figures).")
    if args.write_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## ASR concurrency (batched decoding)", lines)


if __name__ == "__main__":
    main()
