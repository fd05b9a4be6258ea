"""NLU: per-utterance latency (single thread), batch throughput, load time, model size, and
(optionally) training time. Appends the table to bench/RESULTS.md under "## NLU".

Run: .venv/bin/python bench/nlu.py [--model DIR] [--passes 3] [--train] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, pct

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADING = "## NLU"


def _load_cold(model: Path, nlu_dir: Path, runs: int = 3) -> list[float]:
    """Fresh interpreter: import + load + first classify, seconds (includes torch/transformers import)."""
    code = ("import time,sys;t=time.perf_counter();from pathlib import Path;"
            "from nlu.classifier import classifier_from_dir;"
            f"c=classifier_from_dir(Path({str(model)!r}),Path({str(nlu_dir)!r}));c.classify('你好');"
            "print(time.perf_counter()-t)")
    out = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="model dir (default: settings; trained if missing)")
    ap.add_argument("--passes", type=int, default=3, help="passes over the held-out utterances")
    ap.add_argument("--train", action="store_true", help="also time `huashu nlu train` (2 threads)")
    ap.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = ap.parse_args()

    from core.settings import Settings
    from nlu.bert import torch  # via nlu.bert: it sets the OpenMP/offline environment first
    from nlu.classifier import classifier_from_dir, load_classifier
    from nlu.data import data_hash, load_file

    settings = Settings()
    nlu_dir = Path(settings.effective_scripts_dir) / "nlu"
    if args.model:
        settings = settings.model_copy(update={"nlu_model_dir": str(args.model)})
    load_classifier(settings)  # trains when missing/stale
    model_dir = Path(settings.effective_nlu_model_dir)
    load1 = os.getloadavg()[0]

    rows: list[tuple[str, str]] = []
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    rows.append(("model size on disk", f"{size / 1e6:.1f} MB ({model_dir.name}/, data hash {data_hash(nlu_dir)})"))

    torch.set_num_threads(1)
    loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        clf = classifier_from_dir(model_dir, nlu_dir)
        loads.append(time.perf_counter() - t0)
    rows.append(("load, in-process (libraries imported)", f"median {statistics.median(loads) * 1000:.0f} ms, "
                                                          f"max {max(loads) * 1000:.0f} ms (5 loads)"))
    cold = _load_cold(model_dir, nlu_dir)
    rows.append(("load, fresh process (import torch+transformers, load, 1st parse)",
                 f"median {statistics.median(cold):.2f} s, max {max(cold):.2f} s (3 runs)"))

    texts = [e.text for e in load_file(ROOT / "tests/data/nlu_test.yml").examples]
    texts += [e.text for e in load_file(ROOT / "tests/data/nlu_test_noisy.yml").examples]
    for t in texts[:50]:
        clf.classify(t)
    lat: list[float] = []
    cpu0, wall0 = _cpu(), time.perf_counter()
    for _ in range(args.passes):
        for t in texts:
            t0 = time.perf_counter_ns()
            clf.classify(t)
            lat.append((time.perf_counter_ns() - t0) / 1e6)
    cpu_per = (_cpu() - cpu0) / len(lat) * 1000
    wall = time.perf_counter() - wall0
    rows.append(("classify(), 1 thread, per utterance",
                 f"median {statistics.median(lat):.2f} ms, p99 {pct(lat, 99):.2f} ms, max {max(lat):.2f} ms, "
                 f"CPU {cpu_per:.2f} ms ({len(lat)} calls, {len(texts)} held-out texts × {args.passes})"))
    rows.append(("classify(), 1 thread, sequential throughput", f"{len(lat) / wall:.0f} utterances/s"))

    for threads in (1, 2):
        torch.set_num_threads(threads)
        clf.classify_batch(texts[:64])
        t0 = time.perf_counter()
        n = 0
        for _ in range(args.passes):
            for i in range(0, len(texts), 64):
                n += len(clf.classify_batch(texts[i:i + 64]))
        rows.append((f"classify_batch(64), {threads} thread(s)", f"{n / (time.perf_counter() - t0):.0f} utterances/s"))

    if args.train:
        from nlu.config import TrainConfig
        from nlu.train import train_model

        with tempfile.TemporaryDirectory() as tmp:
            cpu0, t0 = _cpu(), time.perf_counter()
            report = train_model(nlu_dir, Path(tmp) / "m", TrainConfig(threads=2))
            rows.append(("training (`huashu nlu train`, 2 threads)",
                         f"wall {time.perf_counter() - t0:.0f} s, CPU {_cpu() - cpu0:.0f} s; validation accuracy "
                         + ", ".join(f"{k} {v:.3f}" for k, v in report.val_accuracy.items())))
    load2 = os.getloadavg()[0]

    mach = (f"{machine()}; torch {torch.__version__}. Shared machine: 1-min load average "
            f"{load1:.1f} at start, {load2:.1f} at end (2 cores), so times are upper bounds.")
    width = max(len(k) for k, _ in rows)
    print(f"NLU benchmark — {mach}")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    if not args.no_write:
        _write(rows, mach, args)


def _write(rows: list[tuple[str, str]], mach: str, args: argparse.Namespace) -> None:
    cmd = "`.venv/bin/python bench/nlu.py" + (" --train" if args.train else "") + \
          (f" --passes {args.passes}" if args.passes != 3 else "") + "`"
    body = [HEADING, "", f"Command: {cmd} ({time.strftime('%Y-%m-%d')})", "", "| measure | result |", "|---|---|"]
    body += [f"| {k} | {v} |" for k, v in rows]
    body += ["", f"Machine: {mach}", ""]
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    lines = text.splitlines()
    if HEADING in lines:  # replace our section, keep everyone else's
        start = lines.index(HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + body + lines[end:]
    else:
        lines = [*lines, "", *body] if lines and lines[-1].strip() else [*lines, *body]
    RESULTS.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {RESULTS} ({HEADING})")


if __name__ == "__main__":
    main()
