"""A 3-step cascade over 500 customers on PostgreSQL, dispatched by two `huashu worker` processes
on a real broker (Redis, RabbitMQ), one of them SIGKILLed mid-dispatch; then every invariant is
checked from the touches and from what the provider/gateway double received (tests/campaign/cascade.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.campaign.cascade import Cascade, wait_for
from tests.campaign.conftest import AMQP_URL, REDIS_URL
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis":
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            skip_or_fail(f"Redis unreachable: {exc}")
        yield REDIS_URL
        return
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
    except Exception as exc:  # pika raises several unrelated types
        skip_or_fail(f"RabbitMQ unreachable: {exc}")
    yield AMQP_URL


def test_cascade_on_two_workers_one_killed(tmp_path: Path, fresh_pg: str, broker_url: str) -> None:
    with Cascade(tmp_path, fresh_pg, broker_url, REDIS_URL, customers=500) as run:
        run.start_workers(2)
        run.wait_workers_ready()
        run.start()
        try:
            wait_for("first deliveries", lambda: len(run.gateway.requests) >= 80, 60)
            run.workers[0].send_signal(signal.SIGKILL)  # mid-dispatch: its claims must be taken over
            assert run.workers[0].wait(10) == -signal.SIGKILL
            wait_for("the invitations", lambda: run.touches.counts_by_state(run.name).get("done", 0) >= 440, 90,
                     run.touches)
            run.wait_settled(120)
        finally:
            run.stop_workers()
        run.check_invariants()
