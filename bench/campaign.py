"""Campaign runner: planning a step over 100,000 customers on PostgreSQL, dispatch throughput with
two `huashu worker` processes on Redis, and a simulated 3-day cascade.

Run: .venv/bin/python bench/campaign.py [--customers 100000] [--dispatch 5000] [--sim-customers 5000]
                                        [--write-results]   (replaces the "## Campaigns" section of RESULTS.md)
Needs the local PostgreSQL (scratch database created and dropped) and Redis.

The 3-day cascade alone, at several sizes (the scaling; "## Campaign simulate, 3 days" section):
     .venv/bin/python bench/campaign.py --sim-only --sim-sizes 2000,10000,30000 [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, pct
from bench.store import backend, write_section
from campaign import simulate
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import load
from core.settings import Settings
from store import open_store
from store.demo import generate_customers
from store.sql import SqlStore

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 6, 1)
PRESALE = ROOT / "scripts_zh/campaigns/presale_deposit_push.yml"
REDIS = "redis://127.0.0.1:6379/0"
ONE_STEP = "name: bench_dispatch\ncrowd: deposit_unpaid\nsteps:\n  - id: invite\n    channel: wecom\n    text: \"{name}您好\"\n"


def bench_plan(st: SqlStore, repeats: int) -> tuple[int, list[float]]:
    camp = load(PRESALE, ROOT / "scripts_zh")
    touches = Touches.open(st)
    runner = Runner(touches, lambda: datetime.now(UTC))
    times, n = [], 0
    for _ in range(repeats):
        now = datetime.now(UTC)
        if touches.runs():
            touches.set_status(camp.name, "stopped", now)
        touches.register(camp, now)
        t0 = time.perf_counter()
        n = runner.plan(camp.name, now)
        times.append(time.perf_counter() - t0)
    touches.set_status(camp.name, "stopped", datetime.now(UTC))
    return n, times


class Provider:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real provider's API

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                keys = [m["task_id"] for m in body["messages"]]
                with outer.lock:
                    outer.n += len(keys)
                data = json.dumps({"accepted": keys}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wecom"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def bench_dispatch(st: SqlStore, n: int, workers: int, threads: int) -> dict[str, float]:
    """A one-step WeCom campaign over the first `n` due customers, run by `workers` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_dispatch.yml"
        path.write_text(ONE_STEP, encoding="utf-8")
        touches = Touches.open(st)
        camp = load(path, ROOT / "scripts_zh")
        provider = Provider()
        env = {**os.environ, "HUASHU_DATABASE_URL": st.url, "HUASHU_DATA_DIR": tmp, "HUASHU_PHONE_KEY": "bench",
               "HUASHU_CALLING_WINDOW": "00:00-24:00", "HUASHU_BROKER_URL": REDIS, "HUASHU_REDIS_URL": REDIS,
               "HUASHU_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:", "HUASHU_WECOM_WEBHOOK_URL": provider.url,
               "HUASHU_CAMPAIGN_TICK_S": "0.5", "HUASHU_MAX_CALLS_PER_DAY": "100", "HUASHU_MAX_CALLS_PER_WEEK": "100"}
        procs = [subprocess.Popen([str(Path(sys.executable).parent / "huashu"), "worker", "--threads", str(threads)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        try:
            time.sleep(3)  # workers up
            now = datetime.now(UTC)
            touches.register(camp, now)
            while sum(touches.counts_by_state(camp.name).values()) == 0:
                time.sleep(0.2)
            total = sum(touches.counts_by_state(camp.name).values())
            while touches.counts_by_state(camp.name).get("done", 0) < total:
                time.sleep(0.2)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            provider.server.shutdown()
        attempts = touches.attempts(camp.name)
        ats = sorted(a["at"] for a in attempts)
        lat = [(a["at"] - now).total_seconds() for a in attempts]
        wall = (ats[-1] - ats[0]).total_seconds()
        touches.set_status(camp.name, "stopped", datetime.now(UTC))
        return {"touches": len(attempts), "wall_s": wall, "per_s": len(attempts) / wall, "p50_s": pct(lat, 50),
                "p99_s": pct(lat, 99), "provider": provider.n, "planned": total}


def bench_sim(customers: int, days: float) -> tuple[float, dict[str, Any], int, float, int, int]:
    """(wall s, status, touches, CPU s of this process, ticks, attempts) of `campaign simulate`'s
    path (simulate.run on a SQLite scratch store) over `customers` demo customers."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "src", phone_key="bench", database_url="")
        src = open_store(settings)
        src.upsert_customers(generate_customers(customers, seed=7, today=DAY))
        t0, c0 = time.perf_counter(), time.process_time()
        result = simulate.run(src, lambda p: open_store(settings.model_copy(update={"data_dir": p})), PRESALE,
                              ROOT / "scripts_zh", datetime(2026, 6, 1, 9, tzinfo=TZ), days, seed=1)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        src.close()
        return wall, result.status, len(result.touches), cpu, result.ticks, len(result.attempts)


def sim_scaling(sizes: list[int], days: float, emit: Any) -> None:
    emit("| customers | touches (finished) | provider attempts | simulated beats | wall | CPU | touches/s (wall) "
         "| load avg before → after |")
    emit("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        before = os.getloadavg()[0]
        wall, status, touched, cpu, ticks, attempts = bench_sim(n, days)
        after = os.getloadavg()[0]
        steps = ", ".join(f"{s['step']} {s['touches']}" for s in status["steps"])
        emit(f"| {n:,} | {touched:,} ({steps}) | {attempts:,} | {ticks:,} | {wall:.0f} s | {cpu:.0f} s "
             f"| {touched / wall:.0f} | {before:.1f} → {after:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dispatch", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--sim-customers", type=int, default=5000)
    ap.add_argument("--sim-days", type=float, default=3)
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--sim-only", action="store_true", help="only the simulated cascade, at --sim-sizes")
    ap.add_argument("--sim-sizes", default="2000,10000,30000")
    args = ap.parse_args()
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    if args.sim_only:
        sizes = [int(x) for x in args.sim_sizes.split(",")]
        emit(f"`campaign simulate` path (campaign.simulate.run: the runner, its Dramatiq actor on a StubBroker "
             f"with 4 threads, pacing and facts check, SQLite scratch store) over presale_deposit_push, "
             f"{args.sim_days:g} simulated days from 2026-06-01 09:00, demo customers (seed 7), behaviour seed 1.")
        emit()
        sim_scaling(sizes, args.sim_days, emit)
        emit()
        emit(f"Machine: {machine()} (2 cores shared with other agents' jobs: wall times are inflated, CPU is "
             f"this process's). Command: `.venv/bin/python bench/campaign.py --sim-only --sim-sizes "
             f"{args.sim_sizes}`.")
        if args.write_results:
            write_section(ROOT / "bench" / "RESULTS.md", "## Campaign simulate, 3 days", lines)
        return

    load1 = os.getloadavg()[0]
    with backend("postgresql") as st:
        t0 = time.perf_counter()
        st.upsert_customers(generate_customers(args.customers, seed=7, today=DAY))
        emit(f"{args.customers:,} demo customers imported into PostgreSQL in {time.perf_counter() - t0:.1f} s")
        emit()
        n, times = bench_plan(st, args.repeats)
        emit("| what | n | median | p99 (max of runs) |")
        emit("|---|---|---|---|")
        emit(f"| plan step 1 of presale_deposit_push (crowd evaluated, touches inserted), PostgreSQL | {n:,} touches "
             f"| {statistics.median(times):.2f} s | {max(times):.2f} s |")
    with backend("postgresql") as st:
        st.upsert_customers(generate_customers(args.dispatch, seed=8, today=DAY))
        d = bench_dispatch(st, args.dispatch, args.workers, args.threads)
        emit(f"| dispatch, {args.workers} `huashu worker` × {args.threads} threads on Redis, PostgreSQL store, "
             f"WeCom step to a local provider | {d['touches']:,} touches | {d['per_s']:.0f} touches/s sustained "
             f"({d['wall_s']:.1f} s first→last send) | due→sent p50 {d['p50_s']:.1f} s, p99 {d['p99_s']:.1f} s |")
    wall, status, touched, _, _, _ = bench_sim(args.sim_customers, args.sim_days)
    steps = ", ".join(f"{s['step']} {s['touches']}" for s in status["steps"])
    emit(f"| `campaign simulate` presale_deposit_push, {args.sim_days:g} simulated days, SQLite scratch store "
         f"| {args.sim_customers:,} customers, {touched:,} touches ({steps}) | {wall:.0f} s wall | – |")
    emit()
    emit(f"Machine: {machine()}; load average at start {load1:.1f} (2 cores shared with other agents' jobs). "
         f"Command: `.venv/bin/python bench/campaign.py --customers {args.customers} --dispatch {args.dispatch} "
         f"--sim-customers {args.sim_customers}`.")
    if args.write_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## Campaigns", lines)


if __name__ == "__main__":
    main()
