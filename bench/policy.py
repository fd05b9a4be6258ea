"""Per-turn decision time of the pure policy (no NLU, no I/O) over simulated calls.

Run: .venv/bin/python bench/policy.py [--turns 20000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, pct
from core.conversation import EventKind, SessionState, Turn
from core.parse import Parse
from core.vocab import INTENTS
from dialogue import policy
from dialogue.loader import load_bundle

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=20000)
    args = ap.parse_args()
    bundle = load_bundle(ROOT / "scripts_zh")
    rng = random.Random(7)
    kinds = [EventKind.SPEECH] * 8 + [EventKind.SILENCE, EventKind.DTMF]
    samples: dict[str, list[float]] = {t: [] for t in bundle.tracks}
    total = 0
    while total < args.turns:
        for track in bundle.tracks.values():
            state = SessionState(f"b{total}", track.id, "u", track.start, "2026-11-11T10:00:00+08:00")
            state = policy.start(track, state).state
            while not state.ended and total < args.turns:
                kind = rng.choice(kinds)
                intent = rng.choice(INTENTS)
                turn = Turn(kind, intent if kind is EventKind.SPEECH else None, rng.uniform(0.3, 1.0),
                            Parse("x", intent, 0.9), digits=rng.choice("0129") if kind is EventKind.DTMF else None)
                t0 = time.perf_counter_ns()
                state = policy.decide(track, state, turn).state
                samples[track.id].append((time.perf_counter_ns() - t0) / 1000)
                total += 1
    every = [v for vs in samples.values() for v in vs]
    print(f"policy decision time per turn (µs), {total} turns over {len(bundle.tracks)} tracks")
    print(f"{'track':<22}{'turns':>8}{'median':>10}{'p99':>10}{'max':>10}")
    for track_id, vs in sorted(samples.items()):
        if vs:
            print(f"{track_id:<22}{len(vs):>8}{statistics.median(vs):>10.1f}{pct(vs, 99):>10.1f}{max(vs):>10.1f}")
    print(f"{'all':<22}{len(every):>8}{statistics.median(every):>10.1f}{pct(every, 99):>10.1f}{max(every):>10.1f}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
