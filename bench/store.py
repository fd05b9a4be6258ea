"""Store throughput: conversation outcomes written per second (batched and one by one) on SQLite and
PostgreSQL, and crowd-package (segment) evaluation time on 100,000 demo customers.

Run: .venv/bin/python bench/store.py [--customers 100000] [--results 10000] [--batch 500]
                                     [--write-results]   (replaces the "## Store" section of RESULTS.md)
PostgreSQL: the local server (127.0.0.1:5432, user postgres); a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from bench._machine import machine, pct
from core.conversation import ConversationResult, TurnRecord, Utterance
from core.customers import CustomerRecord
from core.settings import Settings
from core.vocab import grade_for
from dialogue.history import generate_history
from store import open_store
from store.demo import generate_customers
from store.segment_sql import evaluate
from store.segments import load_segments
from store.sql import SqlStore

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=TZ)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SEGMENTS = ("deposit_unpaid", "high_intent_unpaid", "rfm_important_value", "cycle_due", "oaipl_purchased_member")
OUTCOMES = ("high_intent", "no_response", "call_back_later", "not_interested", "promised_to_pay", "wechat_added")


@contextmanager
def backend(kind: str) -> Iterator[SqlStore]:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            st = open_store(Settings(data_dir=Path(tmp), phone_key="bench"))
            try:
                yield st
            finally:
                st.close()
            return
        name = f"huashu_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            st = open_store(Settings(data_dir=Path(tmp), phone_key="bench",
                                     database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"))
            try:
                yield st
            finally:
                st.close()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def server_version(st: SqlStore) -> str:
    with st.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return "SQLite " + str(conn.exec_driver_sql("select sqlite_version()").scalar())
        return "PostgreSQL " + str(conn.exec_driver_sql("show server_version").scalar()).split()[0]


def results(n: int, offset: int) -> list[ConversationResult]:
    out = []
    for i in range(offset, offset + n):
        outcome = OUTCOMES[i % len(OUTCOMES)]
        tags = (outcome, "price_sensitive") if i % 3 == 0 else (outcome,)
        end = NOW - timedelta(seconds=i)
        turns = tuple(TurnRecord(user="好的" if k else None, kind="speech", intent="affirm" if k else None,
                                 confidence=0.9 if k else None, node=f"n{k}",
                                 bot=(Utterance(f"clip{k}", "您好，这里是小美，618 定金已经可以付了"),), actions=())
                      for k in range(6))
        out.append(ConversationResult(f"bench-{i}", f"cust-{i % 5000}", "presale_deposit", "xiaomei", "call", "",
                                      end - timedelta(minutes=2), end, outcome, grade_for(outcome, set(tags)), tags,
                                      {"promised_pay_time": "2026-06-02T20:00:00+08:00"},
                                      tuple(f"n{k}" for k in range(6)), turns, "bot"))
    return out


def bench_writes(st: SqlStore, total: int, batch: int, singles: int) -> dict[str, float]:
    # The engine writes results for imported customers: import them first (not timed).
    st.upsert_customers([CustomerRecord(f"cust-{i}", f"139{i:08d}") for i in range(5000)])
    per_batch: list[float] = []  # seconds per batch
    written = 0
    backends = _db_pids(st)
    cpu0, db0 = time.process_time(), _cpu_seconds(backends)
    t_all = time.perf_counter()
    for offset in range(0, total, batch):
        chunk = results(batch, offset)
        t0 = time.perf_counter()
        written += st.write_results(chunk)
        per_batch.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    cpu_ms = (time.process_time() - cpu0 + _cpu_seconds(backends) - db0) / total * 1000
    assert written == total, (written, total)
    rates = [batch / s for s in per_batch]
    single_times = []
    for r in results(singles, total):
        t0 = time.perf_counter()
        st.write_result(r)
        single_times.append(time.perf_counter() - t0)
    return {"batched_median": statistics.median(rates), "batched_p1": pct(rates, 1),
            "batch_ms_median": statistics.median(per_batch) * 1000, "batch_ms_p99": pct(per_batch, 99) * 1000,
            "overall": total / sum(per_batch), "wall": wall, "cpu_ms": cpu_ms,
            "single_ms_median": statistics.median(single_times) * 1000,
            "single_ms_p99": pct(single_times, 99) * 1000}


def _db_pids(st: SqlStore) -> list[int]:
    """PostgreSQL backends serving this database (local server: their CPU time is in /proc)."""
    with st.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return []
        return list(conn.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                    .scalars())


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def bench_segments(st: SqlStore, n: int, repeats: int) -> tuple[float, dict[str, tuple[int, float, float]]]:
    t0 = time.perf_counter()
    customers = list(generate_customers(n, 7, NOW.date()))
    st.upsert_customers(customers)
    history, attempts = generate_history(customers, 7, NOW)
    st.write_results(history)
    st.record_attempts([(c, k, a, "call") for c, k, a in attempts])
    load_s = time.perf_counter() - t0
    segs = load_segments(ROOT / "scripts_zh")
    out = {}
    for name in SEGMENTS:
        times, size = [], 0
        for _ in range(repeats):
            t1 = time.perf_counter()
            size = len(evaluate(st, segs[name], NOW).targets)
            times.append(time.perf_counter() - t1)
        out[name] = (size, statistics.median(times), pct(times, 99))
    return load_s, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--results", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--singles", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    lines: list[str] = []
    load_before = os.getloadavg()[0]

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit(f"Command: `.venv/bin/python bench/store.py --customers {args.customers} --results {args.results} "
         f"--batch {args.batch}`")
    emit()
    emit("Outcome write-back (ConversationResult with 6 turns + tags, one transaction per batch; idempotent "
         "insert):")
    emit()
    emit("| backend | batch | outcomes/s median | outcomes/s p1 (slowest) | batch ms median | batch ms p99 "
         "| CPU ms/outcome (client + db) | unbatched ms median | unbatched ms p99 |")
    emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    seg_rows: list[str] = []
    versions = []
    for kind in args.backends.split(","):
        with backend(kind) as st:
            versions.append(server_version(st))
            w = bench_writes(st, args.results, args.batch, args.singles)
            emit(f"| {versions[-1]} | {args.batch} | {w['batched_median']:,.0f} | {w['batched_p1']:,.0f} | "
                 f"{w['batch_ms_median']:.1f} | {w['batch_ms_p99']:.1f} | {w['cpu_ms']:.3f} | "
                 f"{w['single_ms_median']:.2f} | "
                 f"{w['single_ms_p99']:.2f} |")
        with backend(kind) as st:
            load_s, segs = bench_segments(st, args.customers, args.repeats)
            for name, (size, med, p99) in segs.items():
                seg_rows.append(f"| {versions[-1]} | {name} | {size:,} | {med * 1000:,.0f} | {p99 * 1000:,.0f} |")
            seg_rows.append(f"| {versions[-1]} | (load {args.customers:,} demo customers + history) | | "
                            f"{load_s * 1000:,.0f} | |")
    emit()
    emit(f"Segment evaluation on {args.customers:,} demo customers (SQL filter + do-not-contact exclusion + "
         f"one target per phone, {args.repeats} runs each):")
    emit()
    emit("| backend | segment | targets | ms median | ms p99 |")
    emit("|---|---|---:|---:|---:|")
    for row in seg_rows:
        emit(row)
    emit()
    emit(f"Machine: {machine()}; {', '.join(versions)} (local server). Shared machine: 1-min load average "
         f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (2 cores), so these are lower bounds.")
    if args.write_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## Store", lines)


def write_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replace (or add) our section of the shared results file, leaving the others untouched."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    body = f"{heading}\n\n" + "\n".join(lines).rstrip() + "\n"
    start = text.find(f"\n{heading}\n")
    if start < 0:
        text = text.rstrip() + "\n\n" + body
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + body + (text[end:] if end >= 0 else "")
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
