"""Start-up time of the `huashu` command: every `--help`, and a refused `simulate` (calling
window, store gate, a fact the customer's record lacks).

Each command runs `--runs` times as a fresh process (what a user waits for); wall time and CPU
time (user + system of the child) are reported as median / p99. CPU time is the steadier number
on a shared machine; the load average is printed with the table.

    .venv/bin/python bench/cli.py [--runs 15]
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

LATE = "2026-12-03T23:00:00+08:00"  # outside the default calling window


def subcommands() -> list[list[str]]:
    """Every command path of the CLI (`[]` is `huashu` itself)."""
    import typer

    from huashu.cli import _register_all, app

    _register_all()
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])
    walk(typer.main.get_command(app), [])
    return paths


def timed(args: list[str], env: dict[str, str], stdin: str = "") -> tuple[float, float, int]:
    """(wall s, child CPU s, exit code) of one fresh `huashu` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "huashu", *args], input=stdin, capture_output=True, text=True,
                          env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--all-help", action="store_true", help="every subcommand's --help (default: a sample)")
    ns = parser.parse_args()
    data = tempfile.mkdtemp(prefix="huashu-bench-cli-")
    env = {**os.environ, "HUASHU_DATA_DIR": data, "HUASHU_CALLING_WINDOW": "09:00-21:00", "COLUMNS": "100"}
    paths = subcommands()
    if not ns.all_help:
        keep = {(), ("simulate",), ("serve",), ("report",), ("nlu", "evaluate"), ("transcribe",),
                ("customers", "import"), ("graph",)}
        paths = [p for p in paths if tuple(p) in keep]
    cases: list[tuple[str, list[str], str, int]] = [
        (" ".join(["huashu", *p, "--help"]), [*p, "--help"], "", 0) for p in paths]
    cases.append(("huashu simulate (refused: fresh test customer, 23:00)",
                  ["simulate", "--track", "wecom_add_gift", "--at", LATE], "喂\n", 3))
    cases.append(("huashu simulate --customer-id X (refused: store gate, 23:00)",
                  ["simulate", "--track", "wecom_add_gift", "--customer-id", "bench-1", "--at", LATE], "喂\n", 3))
    # A stored customer who never bought anything: a balance reminder is refused missing_fact:product.
    csv = Path(data) / "never.csv"
    csv.write_text("customer_id,phone,name,purchase_count\nbench-never,13800000009,王芳,0\n", encoding="utf-8")
    if timed(["customers", "import", str(csv)], env)[2] != 0:
        raise SystemExit("customers import failed")
    cases.append(("huashu simulate --customer-id X (refused: missing_fact, 10:00)",
                  ["simulate", "--track", "balance_reminder", "--customer-id", "bench-never",
                   "--at", "2026-12-03T10:00:00+08:00"], "喂\n", 3))
    timed(["--help"], env)  # warm the page cache once
    load0 = os.getloadavg()
    rows = []
    for label, args, stdin, want in cases:
        walls, cpus = [], []
        for _ in range(ns.runs):
            wall, cpu, code = timed(args, env, stdin)
            if code != want:
                raise SystemExit(f"{label}: exit {code}, expected {want}")
            walls.append(wall * 1000)
            cpus.append(cpu * 1000)
        rows.append((label, statistics.median(walls), pct(walls, 99), statistics.median(cpus), pct(cpus, 99)))
    load1 = os.getloadavg()
    print(f"Command: `.venv/bin/python bench/cli.py --runs {ns.runs}{' --all-help' if ns.all_help else ''}`\n")
    print("| command | wall ms median | wall ms p99 | CPU ms median | CPU ms p99 |")
    print("|---|---:|---:|---:|---:|")
    for label, wm, wp, cm, cp in rows:
        print(f"| `{label}` | {wm:,.0f} | {wp:,.0f} | {cm:,.0f} | {cp:,.0f} |")
    print(f"\nMachine: {machine()}; load average {load0[0]:.1f} at start, {load1[0]:.1f} at end; "
          f"{ns.runs} runs each.")


if __name__ == "__main__":
    main()
