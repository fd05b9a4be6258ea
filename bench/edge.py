"""What the edge's checks cost per request and per log line (issue 13): body parsing with the
nesting bound and the id/text rules, signature verification, the masking log formatter; plus
the worst case the nesting bound is there for (a 2 MB body of brackets).

    .venv/bin/python bench/edge.py [--n 20000]

Prints median and p99 in microseconds, the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, pct
from server import models as m
from server import security
from server.errors import ApiError
from server.logs import FORMAT, MaskingFormatter

START = json.dumps({"call_id": "call-20261203-000001", "customer_id": "cust-000001", "track": "wecom_add_gift",
                    "vars": {"name": "王女士", "gift": "小样"}}, ensure_ascii=False).encode()
EVENT = json.dumps({"seq": 3, "type": "speech", "text": "别再给我打电话了，把我的号码删掉", "confidence": 0.92},
                   ensure_ascii=False).encode()
JAMBONZ = json.dumps({"call_sid": "jb-1", "reason": "speechDetected", "speech": {"alternatives": [
    {"transcript": "喂，你好", "confidence": 0.9}]}}, ensure_ascii=False).encode()
WORST = b"[" * 1_000_000 + b"]" * 1_000_000


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    return pct(samples, 50), pct(samples, 99)


def refused(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> None:
        try:
            fn()
        except ApiError:
            return
        raise AssertionError("expected a refusal")
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    formatter = MaskingFormatter(FORMAT)
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:50000", "POST", "/v1/calls/call-13812345678/events", "1.1", 200), None)
    plain = logging.LogRecord("huashu.server.calls", logging.INFO, __file__, 1, "call %s started: track=%s",
                              ("call-20261203-000001", "wecom_add_gift"), None)
    header = security.sign("secret", EVENT)
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("parse POST /v1/calls body (nesting bound + id/text rules)", lambda: m.parse(m.StartCallIn, START), args.n),
        ("parse an event body", lambda: m.parse(m.EventIn, EVENT), args.n),
        ("nesting bound alone, jambonz hook body", lambda: m.check_json_depth(JAMBONZ), args.n),
        ("verify X-Huashu-Signature", lambda: security.verify(header, EVENT, ["secret"]), args.n),
        ("format an access-log line with a phone in the path", lambda: formatter.format(access), args.n),
        ("format a log line without digits runs", lambda: formatter.format(plain), args.n),
        ("refuse a 2 MB body nested 1,000,000 deep", refused(lambda: m.check_json_depth(WORST)), 20),
    ]
    load0 = os.getloadavg()[0]
    print("| check | median µs | p99 µs | runs |")
    print("|---|---:|---:|---:|")
    for name, fn, n in cases:
        med, p99 = timed(fn, n)
        print(f"| {name} | {med:,.1f} | {p99:,.1f} | {n:,} |")
    print(f"\nMachine: {machine()}. 1-min load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end.")


if __name__ == "__main__":
    main()
