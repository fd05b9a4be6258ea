"""WeCom suggestion latency: ranking alone, the NLU, the whole service call (store + NLU + ranking),
and the HTTP route in the real server app (in-process ASGI, agent key on). Target: p99 ≤ 50 ms.

Run: .venv/bin/python bench/suggest.py [--n 600] [--customers 2000]
Uses a fresh SQLite store of demo customers in a temp dir and the trained NLU model of the user
data dir (trained first if missing, as `make run` does).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, pct
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-agent-key"


def measure(fn: Callable[[int], object], n: int, warmup: int = 20) -> list[float]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600, help="measured calls per row")
    ap.add_argument("--customers", type=int, default=2000)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from dialogue.history import generate_history
    from huashu.app import create_app
    from huashu.runtime import build_runtime
    from nlu import load_classifier
    from store.demo import generate_customers
    from wecom.demo_calls import load_script
    from wecom.service import WecomService

    tz = ZoneInfo("Asia/Shanghai")
    classifier = load_classifier(Settings(), train_if_missing=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", phone_key="bench", agent_keys=KEY)
        runtime = build_runtime(settings, classifier=classifier)
        store = runtime.store
        assert store is not None
        customers = list(generate_customers(args.customers, 7, date(2026, 11, 20)))
        store.upsert_customers(customers)  # type: ignore[attr-defined]
        store.write_results(generate_history(customers, 7, datetime(2026, 11, 20, 12, tzinfo=tz))[0])  # type: ignore[attr-defined]
        svc = WecomService(settings, runtime.bundle, classifier, store)
        lines = [t for t in load_script(settings.effective_scripts_dir).lines if not t.startswith("<")]
        rng = random.Random(7)
        picks = [(rng.choice(customers).customer_id, rng.choice(lines)) for _ in range(args.n + 50)]
        ctxs = [svc.context(cid) for cid, _ in picks]
        parses = [classifier.classify(text) for _, text in picks]

        rows = {
            "rank only (library, no I/O)": measure(lambda i: svc.suggester.rank(parses[i].intent, ctxs[i]), args.n),
            "NLU classify": measure(lambda i: classifier.classify(picks[i][1]), args.n),
            "service.suggest (store+NLU+rank)": measure(lambda i: svc.suggest(*picks[i]), args.n),
        }
        with TestClient(create_app(settings, runtime=runtime)) as client:
            headers = {"Authorization": f"Bearer {KEY}"}

            def http(i: int) -> None:
                cid, text = picks[i]
                r = client.post("/v1/wecom/suggest", json={"customer_id": cid, "message": text}, headers=headers)
                assert r.status_code == 200, r.text

            rows["POST /v1/wecom/suggest (in-process)"] = measure(http, args.n)
        store.close()

    print(f"WeCom suggestion latency (ms), {args.n} calls per row, {args.customers} demo customers, "
          f"{len(lines)} distinct messages")
    print(f"{'stage':<38}{'median':>9}{'p99':>9}{'max':>9}")
    for name, values in rows.items():
        print(f"{name:<38}{statistics.median(values):>9.2f}{pct(values, 99):>9.2f}{max(values):>9.2f}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {machine()}; load average during the run: {load}")


if __name__ == "__main__":
    main()
