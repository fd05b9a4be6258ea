"""Pacing with Dramatiq's rate limiters: calls per second per campaign on the real Redis backend
(shared by workers), and the same limiter on a simulated clock (what `campaign simulate` runs).
Concurrent calls per trunk are admitted in the store: tests/campaign/test_trunks.py."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dramatiq.rate_limits.backends import StubBackend

from campaign.dispatch import Pacer, make_limiter_backend
from campaign.repo import Touch
from campaign.runner import Paced
from campaign.spec import load
from tests.campaign.conftest import REDIS_URL
from tests.conftest import SCRIPTS, skip_or_fail


def _touch(i: int, channel: str = "call") -> Touch:
    return Touch(i, "paced", "call", f"c{i}", channel, "", "claimed", None, "", 0, datetime.now(UTC), "x", None)


@pytest.mark.redis
def test_calls_per_second_on_redis_across_workers(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis unreachable: {exc}")
    path = tmp_path / "paced.yml"
    path.write_text("name: paced\ncrowd: deposit_unpaid\npacing: {calls_per_second: 2}\n"
                    "steps:\n  - id: call\n    channel: call\n    track: presale_deposit\n", encoding="utf-8")
    camp = load(path, SCRIPTS)
    prefix = f"huashu-test-{uuid.uuid4().hex[:8]}:"
    one = Pacer(make_limiter_backend(REDIS_URL), prefix)
    other = Pacer(make_limiter_backend(REDIS_URL), prefix)  # another worker
    passed = 0
    while time.time() % 1 > 0.5:  # the limiter's buckets are wall-clock seconds: start early in one
        time.sleep(0.01)
    for i in range(6):  # well inside one second: only 2 go through, across both workers
        try:
            (one if i % 2 else other)(_touch(i), camp)
            passed += 1
        except Paced as paced:
            assert 0 < paced.delay_s <= 1.0  # until the next second's bucket
    assert passed == 2
    one(_touch(10, "wecom"), camp)  # WeCom messages are not paced


def test_the_same_limiter_on_a_simulated_clock(tmp_path: Path) -> None:
    path = tmp_path / "paced.yml"
    path.write_text("name: paced\ncrowd: deposit_unpaid\npacing: {calls_per_second: 3, sms_per_second: 0.5}\n"
                    "steps:\n  - id: call\n    channel: call\n    track: presale_deposit\n", encoding="utf-8")
    camp = load(path, SCRIPTS)
    now = {"t": datetime(2026, 6, 1, 9, 0, 0, 250_000, tzinfo=UTC)}
    pacer = Pacer(StubBackend(), "sim:", lambda: now["t"])

    def admitted(channel: str, n: int) -> tuple[int, list[float]]:
        ok, delays = 0, []
        for i in range(n):
            try:
                pacer(_touch(i, channel), camp)
                ok += 1
            except Paced as paced:
                delays.append(paced.delay_s)
        return ok, delays
    ok, delays = admitted("call", 5)
    assert ok == 3 and delays == [0.75, 0.75]  # the rest wait for the next simulated second
    time.sleep(1.1)  # wall time passing does not refill a simulated second
    assert admitted("call", 2)[0] == 0
    now["t"] += timedelta(seconds=1)
    assert admitted("call", 5)[0] == 3
    assert admitted("sms", 3)[0] == 1  # 0.5/s: one per 2-second bucket ([:00, :02) here)
    now["t"] += timedelta(seconds=1)
    assert admitted("sms", 1)[0] == 1  # [:02, :04)
    now["t"] += timedelta(seconds=1)
    assert admitted("sms", 1)[0] == 0
