"""Pacing with Dramatiq's rate limiters on the real Redis backend: calls per second per campaign and
concurrent calls (counted from the store's view passed in)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign.dispatch import Pacer, make_limiter_backend
from campaign.repo import Touch
from campaign.runner import Paced
from campaign.spec import load
from tests.campaign.conftest import REDIS_URL
from tests.conftest import SCRIPTS, skip_or_fail

pytestmark = pytest.mark.redis


def _touch(i: int, channel: str = "call") -> Touch:
    return Touch(i, "paced", "call", f"c{i}", channel, "", "claimed", None, "", 0, datetime.now(UTC), "x", None)


def test_calls_per_second_and_concurrency_on_redis(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis unreachable: {exc}")
    path = tmp_path / "paced.yml"
    path.write_text("name: paced\ncrowd: deposit_unpaid\npacing: {calls_per_second: 2, trunk_concurrency: 3}\n"
                    "steps:\n  - id: call\n    channel: call\n    track: presale_deposit\n", encoding="utf-8")
    camp = load(path, SCRIPTS)
    in_flight = {"n": 0}
    prefix = f"huashu-test-{uuid.uuid4().hex[:8]}:"
    one = Pacer(make_limiter_backend(REDIS_URL), lambda _: in_flight["n"], prefix)
    other = Pacer(make_limiter_backend(REDIS_URL), lambda _: in_flight["n"], prefix)  # another worker
    passed = 0
    while time.time() % 1 > 0.5:  # the limiter's buckets are wall-clock seconds: start early in one
        time.sleep(0.01)
    for i in range(6):  # well inside one second: only 2 go through, across both workers
        try:
            (one if i % 2 else other)(_touch(i), camp)
            passed += 1
        except Paced:
            pass
    assert passed == 2
    in_flight["n"] = 3
    pacer = Pacer(make_limiter_backend(REDIS_URL), lambda _: in_flight["n"], f"huashu-test-{uuid.uuid4().hex[:8]}:")
    with pytest.raises(Paced):
        pacer(_touch(9), camp)
    pacer(_touch(10, "wecom"), camp)  # WeCom messages are not paced
