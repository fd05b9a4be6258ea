"""Exactly once under faults (issue 18 item 6): the 3-step cascade of tests/campaign/cascade.py over
200 customers on PostgreSQL, two `huashu worker` processes, and mid-dispatch (once 60 reminders
reached the SMS provider, with reminders and calls still to go):

- a private Redis broker SIGKILLed and restarted empty on the same port (every queued message lost);
- a private RabbitMQ node SIGKILLed and restarted (durable queues; the connections drop);
- PostgreSQL cut twice for 5 s by a TCP proxy between the workers and the database, each time
  inside a provider request (an SMS batch, then a call), so the worker cannot commit what the
  provider took.

While the fault is on and until the run settles, a watcher samples what customers would notice
(a step delivered twice under two keys, an opted-out customer messaged, a payer reminded after
paying, a call outside the window) and the store's at-most-once (one touch per step and customer,
one attempt per touch); afterwards every invariant of the SIGKILL test is checked again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.campaign.brokers import RabbitNode, RedisServer
from tests.campaign.cascade import Cascade, Watch, wait_for
from tests.campaign.conftest import REDIS_URL
from tests.conftest import skip_or_fail
from tests.store.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CUSTOMERS = 200
# Paced so dispatch lasts ~20 s: reminders 20/s from 10.8 s, calls 10/s from 14.4 s after the start.
PACING: dict[str, Any] = {"sms_per_second": 20, "calls_per_second": 10, "remind_after_h": 0.003, "call_after_h": 0.001}
TRIGGER_SMS = 60  # the fault starts once this many reminders reached the provider (of ~150)


@dataclass
class Timeline:
    started: float
    fault: float
    back: float
    settled: float

    def report(self, run: Cascade, what: str) -> str:
        log = run.gateway.log
        before = sum(1 for d in log if d.at < self.fault)
        during = sum(1 for d in log if self.fault <= d.at < self.back)
        after = sum(1 for d in log if d.at >= self.back)
        with open("/proc/loadavg") as fh:
            load = fh.read().split()[0]
        return (f"{what}: {CUSTOMERS} customers, {sum(run.touches.counts_by_state(run.name).values())} touches; "
                f"fault {self.fault - self.started:.1f} s after the start, lasted {self.back - self.fault:.1f} s, "
                f"settled {self.settled - self.back:.1f} s after; provider requests before/during/after: "
                f"{before}/{during}/{after}, repeats of a key: {len(run.gateway.repeats())}; load {load}")


def _sms(run: Cascade) -> int:
    return sum(1 for channel, _ in run.gateway.requests if channel == "sms")


def _run_with_fault(run: Cascade, fault: Callable[[], None]) -> Timeline:
    """Start the run and two workers; apply `fault` (it returns once the service is back) when
    the reminders are under way; wait until the run settles while a Watch samples the invariants."""
    run.start_workers(2)
    try:
        run.wait_workers_ready()
        run.start()
        started = time.monotonic()
        wait_for("the reminders to be under way", lambda: _sms(run) >= TRIGGER_SMS, 90, run.touches)
        with Watch(run) as watch:
            at = time.monotonic()
            fault()
            back = time.monotonic()
            run.wait_settled(120)
            settled = time.monotonic()
        alive = [w.poll() for w in run.workers]
    finally:
        run.stop_workers()
    assert alive == [None, None], run.worker_logs()[-3000:]  # the workers rode it out
    assert watch.samples > 4 and not watch.found, watch.found
    tl = Timeline(started, at, back, settled)
    sms_after = sum(1 for d in run.gateway.log if d.channel == "sms" and d.at >= back and not d.repeat)
    calls_after = sum(1 for d in run.gateway.log if d.channel == "call" and d.at >= back)
    assert sms_after > 0 and calls_after > 0, tl.report(run, "not mid-dispatch")  # the fault hit a running step
    return tl


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis unreachable: {exc}")


def _queued_touches(url: str) -> set[int]:
    """The touch ids in messages a Redis broker holds queued, not yet fetched by a worker."""
    import redis

    client = redis.Redis.from_url(url)
    ids: set[int] = set()
    try:
        for key in client.scan_iter("*"):
            if client.type(key) != b"list":
                continue
            message_ids = client.lrange(key, 0, -1)
            for body in client.hmget(key + b".msgs", message_ids) if message_ids else ():
                if body:
                    ids.update(json.loads(body)["args"][0])
    finally:
        client.close()
    return ids


@pytest.mark.redis
def test_redis_broker_restart_mid_dispatch(tmp_path: Path, fresh_pg: str) -> None:
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except FileNotFoundError as exc:
        skip_or_fail(f"no redis-server: {exc}")
    lost: set[int] = set()

    def restart() -> None:
        deadline = time.monotonic() + 15  # kill it while it holds queued messages: they must not matter
        while not lost and time.monotonic() < deadline:
            lost.update(_queued_touches(server.url))
            time.sleep(0.02)
        server.kill()  # no persistence: the queues, the delayed messages and the pacing buckets are gone
        time.sleep(3)
        server.start()

    try:
        # Redis carries both the queue and the pacing limits, as in the documented set-up. No
        # lease runs out here (20 s), so nothing may reach the provider twice, not even a repeat.
        with Cascade(tmp_path, fresh_pg, server.url, server.url, customers=CUSTOMERS, name="rrestart",
                     lease_s=20, pacing=PACING) as run:
            tl = _run_with_fault(run, restart)
            run.check_invariants()
            assert not run.gateway.repeats()
            print(tl.report(run, "redis restart") + f"; touches whose queued message Redis lost: {len(lost)}")
            assert lost  # those touches were done all the same: re-enqueued from the store
    finally:
        server.close()


@pytest.mark.rabbitmq
@pytest.mark.redis
def test_rabbitmq_broker_restart_mid_dispatch(tmp_path: Path, fresh_pg: str) -> None:
    _require_redis()
    node = RabbitNode(tmp_path / "rabbit")
    try:
        boot = node.start()
    except FileNotFoundError as exc:
        skip_or_fail(f"no RabbitMQ server: {exc}")
    reboot: list[float] = []

    def restart() -> None:
        node.kill()  # unclean: unacked deliveries go back to their queues when it is up again
        reboot.append(node.start())

    try:
        with Cascade(tmp_path, fresh_pg, node.url, REDIS_URL, customers=CUSTOMERS, name="qrestart",
                     lease_s=20, pacing=PACING) as run:
            tl = _run_with_fault(run, restart)
            run.check_invariants()
            assert not run.gateway.repeats()
            print(tl.report(run, "rabbitmq restart") + f"; node boot {boot:.1f} s, reboot {reboot[0]:.1f} s")
    finally:
        node.close()


@pytest.mark.redis
def test_database_outage_mid_dispatch(tmp_path: Path, fresh_pg: str) -> None:
    _require_redis()
    url = sa.make_url(fresh_pg)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    plan = ["sms", "call"]  # cut inside the next SMS request, then (once back) inside the next call request
    cuts: list[tuple[str, float]] = []
    back = threading.Event()
    lock = threading.Lock()

    def cut_now(channel: str) -> None:
        """Inside a provider request (the worker waits for its answer): the database goes away, so
        the worker cannot commit that the provider took these messages (or placed this call)."""
        with lock:
            if len(cuts) >= len(plan) or channel != plan[len(cuts)] or (cuts and not back.is_set()):
                return
            back.clear()
            cuts.append((channel, time.monotonic()))
            proxy.cut()  # live connections dropped, new ones refused
        threading.Timer(5.0, restore).start()

    def restore() -> None:
        proxy.resume()
        back.set()

    def outage() -> None:
        run.gateway.before_reply = cut_now
        deadline = time.monotonic() + 60
        while (len(cuts) < len(plan) or not back.is_set()) and time.monotonic() < deadline:
            time.sleep(0.1)
        run.gateway.before_reply = None
        assert len(cuts) == len(plan) and back.wait(10), cuts

    try:
        # Leases of 3 s run out during each outage: what was in flight is taken over afterwards.
        with Cascade(tmp_path, fresh_pg, REDIS_URL, REDIS_URL, customers=CUSTOMERS, name="dbout",
                     worker_db_url=through_proxy, lease_s=3, result_timeout_s=15, pacing=PACING) as run:
            tl = _run_with_fault(run, outage)
            run.check_invariants()
            assert "cannot reach the database" in run.worker_logs()  # the workers did see the outage
            repeats = run.gateway.repeats()
            print(tl.report(run, "database outage") + "; cuts of 5 s inside a provider request: " + ", ".join(
                f"{ch} at {at - tl.started:.1f} s" for ch, at in cuts))
            # The SMS batch in flight at the first cut was sent again under the same keys (dropped
            # by the provider); the call in flight at the second was never dialled again.
            assert repeats and {d.channel for d in repeats} == {"sms"}
    finally:
        proxy.close()
