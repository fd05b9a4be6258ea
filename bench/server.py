"""Gateway server under load: callback latency (p50/p99) and events/s at 100, 500 and 1,000
concurrent simulated calls, each sending a text speech event every ~5 s, against `huashu serve`
with 1 worker (in-process sessions, and Redis) and 2 workers (Redis). Loopback only; the load
generator is `huashu gateway-sim`'s engine (server/gateway_sim.py) in this process, on the same
machine as the server (so it takes CPU from it).

Run: .venv/bin/python bench/server.py [--levels 100,500,1000] [--duration 40] [--configs mem1,redis1,redis2]
     [--no-append]
Appends the table to bench/RESULTS.md under "## Server" (replacing an earlier "## Server" section).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import machine  # noqa: E402
from core.settings import Settings  # noqa: E402
from server.gateway_sim import SimConfig, Turn, percentile, run_load  # noqa: E402

HUASHU = str(Path(sys.executable).parent / "huashu")
SECRET = "bench-secret"
REDIS = os.environ.get("HUASHU_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Customer turns that keep a wecom_add_gift call going for a while (the bot ends it after its turn cap)
SCRIPT = ["喂，你好", "你们是哪家", "<silence>", "这个是什么活动", "要钱吗", "你是机器人吗", "嗯，你说", "什么礼品",
          "再说一遍", "我考虑一下", "好的", "怎么加", "加了"]
CUSTOMERS = 20_000  # enough distinct customers for every call of a run (the caps are lifted anyway)
CONFIGS = {"mem1": ("1 worker, in-process sessions", 1, False), "redis1": ("1 worker, Redis", 1, True),
           "redis2": ("2 workers, Redis", 2, True)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_customers(data: Path, n: int) -> None:
    """Imported customers for the calls (as in production: calls go to known customers)."""
    from core.customers import CustomerRecord
    from store import open_store

    store = open_store(Settings(data_dir=data))
    try:
        store.upsert_customers(CustomerRecord(customer_id=f"bench{i:06d}", phone=f"139{i:08d}", name="顾客")
                               for i in range(1, n + 1))
    finally:
        store.close()


def start_server(workers: int, redis: bool, data: Path, prefix: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUASHU_")}
    env.update(HUASHU_DATA_DIR=str(data), HUASHU_CACHE_DIR=str(data / "cache"),
               HUASHU_NLU_MODEL_DIR=str(Settings().effective_nlu_model_dir), HUASHU_GATEWAY_SECRET=SECRET,
               HUASHU_AGENT_KEYS="bench-agent-key",
               HUASHU_CALLING_WINDOW="00:00-24:00", HUASHU_MAX_CALLS_PER_DAY="1000000",
               HUASHU_MAX_CALLS_PER_WEEK="1000000")
    if redis:
        env.update(HUASHU_REDIS_URL=REDIS, HUASHU_REDIS_PREFIX=prefix)
    proc = subprocess.Popen([HUASHU, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
                            env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"huashu serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("huashu serve did not become healthy")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def clear_redis(prefix: str) -> None:
    from server.redis_sessions import RedisSessions

    async def run() -> None:
        sessions = RedisSessions(REDIS, prefix=prefix, ttl_s=60, lock_ttl_ms=1000)
        await sessions.delete_prefix()
        await sessions.close()
    asyncio.run(run())


def scrape(url: str) -> dict[str, float]:
    """Server counters: fillers played, NLU passes and the utterances in them."""
    text = httpx.get(url + "/metrics", timeout=10).text
    out = {"fillers": 0.0, "batches": 0.0, "utterances": 0.0}
    names = {"huashu_deadline_fillers_total": "fillers", "huashu_nlu_batch_size_count": "batches",
             "huashu_nlu_batch_size_sum": "utterances"}
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in names:
            out[names[name]] += float(line.split()[-1])
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children (uvicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: ppid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def measure(url: str, level: int, duration: float, interval: float, ramp: float, first: int = 0,
            pid: int | None = None) -> dict[str, Any]:
    """Calls placed evenly over `ramp` s (a dialer's calls-per-second), then `duration` s of steady
    state; event latencies are from the steady state, start latencies from the ramp. With `pid`,
    the server's CPU time over the steady state is measured too."""
    before = scrape(url)
    load0 = os.getloadavg()[0]
    cpu: list[float] = []
    timers = [threading.Timer(ramp + x, lambda: cpu.append(tree_cpu_s(pid) if pid else 0.0)) for x in (0, duration)]
    for timer in timers:
        timer.start()
    cfg = SimConfig(url=url, track="wecom_add_gift", secret=SECRET, interval_s=interval, timeout_s=60)
    turns = [Turn.parse(s) for s in SCRIPT]
    result = asyncio.run(run_load(cfg, turns, concurrency=level, duration_s=ramp + duration, ramp_s=ramp,
                                  customer=lambda n: f"bench{(first + n - 1) % CUSTOMERS + 1:06d}"))
    steady_from, steady_to = result.t0 + ramp, result.t0 + ramp + duration
    samples = [s for s in result.samples if steady_from <= s.at < steady_to]
    events = [s.seconds * 1000 for s in samples if s.kind != "start"]
    speech = [s.seconds * 1000 for s in samples if s.kind == "speech"]
    fast = [s.seconds * 1000 for s in samples if s.kind in ("silence", "playback_done")]
    starts = [s.seconds * 1000 for s in result.samples if s.kind == "start"]
    # After the steady state every call hangs up at its next turn: all of them within ~one interval
    # (a campaign stopped, a trunk dropped). Their hangups each end a call and write its result.
    wind_down = [s.seconds * 1000 for s in result.samples if s.kind == "hangup" and s.at >= steady_to]
    errors = sum(1 for s in result.samples if s.status != 200) + sum(1 for c in result.calls if c.error)
    for timer in timers:
        timer.join()
    after = scrape(url)
    batches = after["batches"] - before["batches"]
    return {"fillers": after["fillers"] - before["fillers"],
            "batch": (after["utterances"] - before["utterances"]) / batches if batches else float("nan"),
            "loadavg": f"{load0:.1f}→{os.getloadavg()[0]:.1f}",
            "level": level, "callbacks": len(samples), "per_s": len(samples) / duration,
            "cpu_ms": (cpu[1] - cpu[0]) * 1000 / max(len(samples), 1) if len(cpu) == 2 else float("nan"),
            "cpu_pct": (cpu[1] - cpu[0]) * 100 / duration if len(cpu) == 2 else float("nan"),
            "speech_p50": percentile(speech, 50), "speech_p99": percentile(speech, 99),
            "event_p50": percentile(events, 50), "event_p99": percentile(events, 99),
            "fast_p50": percentile(fast, 50), "fast_p99": percentile(fast, 99),
            "start_p50": percentile(starts, 50), "start_p99": percentile(starts, 99), "errors": errors,
            "hangups": len(wind_down), "hangup_p50": percentile(wind_down, 50), "hangup_p99": percentile(wind_down, 99),
            "calls": len(result.calls), "wall_s": result.wall_s}


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| server | concurrent calls | callbacks | callbacks/s | speech p50 ms | speech p99 ms | "
            "silence/playback_done p50 / p99 ms | all events p99 ms | start p50 ms | start p99 ms | errors | fillers "
            "| NLU batch | server CPU ms/callback (% of a core) | load avg | wind-down hangups: n, p50 / p99 ms |")
    lines = [head, "|" + "---|" * 16]
    for r in rows:
        lines.append(f"| {r['config']} | {r['level']} | {r['callbacks']} | {r['per_s']:.0f} | {r['speech_p50']:.1f} | "
                     f"{r['speech_p99']:.1f} | {r['fast_p50']:.1f} / {r['fast_p99']:.1f} | {r['event_p99']:.1f} | "
                     f"{r['start_p50']:.1f} | {r['start_p99']:.1f} | "
                     f"{r['errors']} | {r['fillers']:.0f} | {r['batch']:.1f} | {r['cpu_ms']:.2f} ({r['cpu_pct']:.0f} %) | "
                     f"{r['loadavg']} | {r['hangups']}, {r['hangup_p50']:.1f} / {r['hangup_p99']:.1f} |")
    return "\n".join(lines)


def append_results(text: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start = old.find("\n## Server\n")
    if start >= 0:
        nxt = old.find("\n## ", start + 1)
        old = old[:start] + (old[nxt:] if nxt >= 0 else "\n")
    path.write_text(old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="100,500,1000")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of steady-state load per level")
    ap.add_argument("--ramp", type=float, default=20.0, help="seconds over which the calls are placed")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between a call's speech events")
    ap.add_argument("--configs", default="mem1,redis1,redis2")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows: list[dict[str, Any]] = []
    for key in args.configs.split(","):
        name, workers, redis = CONFIGS[key]
        data = Path(tempfile.mkdtemp(prefix="huashu-bench-"))
        prefix = f"huashu-bench:{uuid.uuid4().hex[:8]}:"
        seed_customers(data, CUSTOMERS)
        proc, url = start_server(workers, redis, data, prefix, data / "server.log")
        try:
            placed = 0
            for level in levels:
                row = measure(url, level, args.duration, args.interval, args.ramp, placed, proc.pid)
                placed += int(row["calls"])
                row["config"] = name
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            stop_server(proc)
            if redis:
                clear_redis(prefix)
            shutil.rmtree(data, ignore_errors=True)
    cmd = "python bench/server.py " + " ".join(sys.argv[1:])
    text = (f"## Server\n\nCallback latency seen by the gateway simulator (client side, loopback, signed HTTP, "
            f"real NLU, text speech events every ~{args.interval:g} s per call; calls placed evenly over "
            f"{args.ramp:g} s, then {args.duration:g} s of steady state measured; the load generator shares the "
            f"machine). Events = speech/playback_done/hangup callbacks in the steady state; `start` = POST "
            f"/v1/calls (compliance gate + SQLite writes; imported customers) during the ramp; fillers = "
            f"turns that missed the 1.5 s budget; wind-down hangups = after the measured window every call "
            f"hangs up at its next turn, so all of them end within ~{args.interval:g} s, each writing its "
            f"result to the store; NLU batch = utterances per model pass (micro-batching); load avg = the "
            f"machine's 1-min load before → after (other jobs share it).\n\n"
            f"{table(rows)}\n\nmachine: {machine()}  \ncommand: `{cmd.strip()}`  \n"
            f"date: {dt.datetime.now().isoformat(timespec='minutes')}\n")
    print(text)
    if not args.no_append:
        append_results(text)


if __name__ == "__main__":
    main()
