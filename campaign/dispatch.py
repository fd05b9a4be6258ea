"""Dispatch on Dramatiq: the queue carries touch ids, the actor runs `Runner.execute`.

Brokers: `redis://…` (RedisBroker), `amqp://…` (RabbitmqBroker), empty: an in-process StubBroker
with worker threads (the embedded default of `huashu serve`). The broker only moves ids; the
store decides (claims), so a lost or duplicated message costs nothing: the scheduler re-enqueues
every due touch that is not done, and a second delivery finds the touch already claimed.

Pacing uses Dramatiq's rate limiters on a Redis backend (in-process backend without Redis):
calls per second per campaign and SMS per second per campaign, in buckets of the runner's clock
(the wall clock, or `campaign simulate`'s simulated one). Concurrent calls per trunk are not a
rate: they are admitted in the store (campaign.repo.Touches.begin_send), across campaigns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.rate_limits import BucketRateLimiter
from dramatiq.rate_limits.backend import RateLimiterBackend
from dramatiq.rate_limits.backends import StubBackend

from campaign.repo import Touch
from campaign.runner import Paced, Runner
from campaign.spec import RunCampaign
from store.errors import StoreError

log = logging.getLogger("huashu.campaign")
QUEUE = "huashu_campaign"
ACTOR = "huashu_execute_touches"
BATCH = 50  # touch ids per message: one claim, one provider request, one commit per phase
BACKEND_RETRY_S = 2.0  # a touch held back while the pacing backend is unreachable is tried again after this


def make_broker(url: str, namespace: str = "huashu") -> dramatiq.Broker:
    """A broker for HUASHU_BROKER_URL (empty: in-process)."""
    if not url:
        return StubBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, namespace=namespace.rstrip(":") or "huashu")
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, confirm_delivery=True)
    raise StoreError(f"HUASHU_BROKER_URL must be redis://… or amqp://… (or empty: in-process), got {url!r}")


def _backend_errors() -> tuple[type[BaseException], ...]:
    """What a rate limiter backend raises when its server is away."""
    try:
        from redis import RedisError
    except ImportError:
        return (OSError,)
    return (OSError, RedisError)


def make_limiter_backend(redis_url: str) -> RateLimiterBackend:
    if redis_url:
        from dramatiq.rate_limits.backends import RedisBackend

        return RedisBackend(url=redis_url)
    return StubBackend()


def _wall() -> datetime:
    return datetime.now(UTC)


class ClockedBucketLimiter(BucketRateLimiter):
    """Dramatiq's bucket rate limiter with its buckets read off `clock` instead of time.time(), so
    the simulated clock of `campaign simulate` paces exactly as the wall clock does. Keys outlive
    their bucket by a minute: a simulated second may take longer than a real one."""

    def __init__(self, backend: RateLimiterBackend, key: str, *, limit: int, bucket: int,
                 clock: Callable[[], datetime]) -> None:
        super().__init__(backend, key, limit=limit, bucket=bucket)
        self.clock = clock

    def bucket_of(self) -> tuple[int, int]:
        """(this bucket's start, the next one's) in ms of the clock."""
        ms = int(self.clock().timestamp() * 1000)
        start = ms - ms % self.bucket
        return start, start + self.bucket

    def _acquire(self) -> bool:
        start, _ = self.bucket_of()
        key, ttl = f"{self.key}@{start}", self.bucket + 60_000
        if self.backend.add(key, 1, ttl=ttl):
            return True
        return bool(self.backend.incr(key, 1, maximum=self.limit, ttl=ttl))


@dataclass
class Pacer:
    """Checked by the runner right before it sends; raises Paced (with the time until the next
    bucket) when this second's calls or SMS of the campaign are used up."""

    backend: RateLimiterBackend
    prefix: str = "huashu:"
    clock: Callable[[], datetime] = _wall
    _limiters: dict[tuple[str, str], ClockedBucketLimiter] = field(default_factory=dict)

    def _limiter(self, channel: str, campaign: str, per_s: float) -> ClockedBucketLimiter:
        limiter = self._limiters.get((channel, campaign))
        if limiter is None:
            bucket_ms = 1000 if per_s >= 1 else int(1000 / per_s)
            limit = max(1, int(per_s)) if per_s >= 1 else 1
            limiter = self._limiters[(channel, campaign)] = ClockedBucketLimiter(
                self.backend, f"{self.prefix}rate:{channel}:{campaign}", limit=limit, bucket=bucket_ms,
                clock=self.clock)
        return limiter

    def __call__(self, touch: Touch, camp: RunCampaign) -> None:
        pacing = camp.file.pacing
        if touch.channel == "wecom":
            return
        per_s = pacing.calls_per_second if touch.channel == "call" else pacing.sms_per_second
        rate = self._limiter(touch.channel, camp.name, per_s)
        try:
            with rate.acquire(raise_on_failure=False) as ok:
                if not ok:
                    ms = int(self.clock().timestamp() * 1000)
                    raise Paced(max(rate.bucket_of()[1] - ms, 1) / 1000)
        except _backend_errors() as exc:
            # The limits cannot be counted (Redis restarting, say): send nothing now rather than
            # unpaced, and try again shortly, not after the 10 minutes of a failed send.
            log.warning("pacing backend unavailable (%s): touch %d held back", exc, touch.id)
            raise Paced(BACKEND_RETRY_S) from None


def declare(broker: dramatiq.Broker, runner: Callable[[], Runner], resend_paced: bool = True
            ) -> dramatiq.Actor[Any, Any]:
    """The touch actor on `broker`: a message is a batch of touch ids (the runner is looked up per
    message). Ids a pacing limit sent back are enqueued again after a delay (`campaign simulate`
    turns that off: its scheduler lists them again at the next simulated second)."""
    def execute_touches(touch_ids: list[int]) -> None:
        results, paced = runner().execute_batch([int(i) for i in touch_ids])
        if paced and resend_paced:
            actor.send_with_options(args=(paced,), delay=1000)
        log.debug("touches %s: %s", touch_ids, results)

    actor: dramatiq.Actor[Any, Any] = dramatiq.actor(
        broker=broker, actor_name=ACTOR, queue_name=QUEUE, max_retries=3, min_backoff=1000,
        time_limit=300_000)(execute_touches)
    return actor


def send_batches(actor: dramatiq.Actor[Any, Any], touch_ids: list[int], size: int = BATCH) -> None:
    for i in range(0, len(touch_ids), size):
        actor.send(touch_ids[i:i + size])


class Scheduler:
    """The beat: every `interval_s`, `Runner.tick` and enqueue each due touch id (again only once
    its previous message had time to run: a lost message is re-sent, not lost)."""

    def __init__(self, runner: Runner, actor: dramatiq.Actor[Any, Any], interval_s: float = 2.0,
                 resend_after_s: float = 60.0) -> None:
        self.runner = runner
        self.actor = actor
        self.interval_s = interval_s
        self.resend_after_s = resend_after_s
        self._sent: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> int:
        """One tick; returns how many ids were enqueued."""
        ids = self.runner.tick()
        mono = time.monotonic()
        fresh = [i for i in ids if mono - self._sent.get(i, -1e9) >= self.resend_after_s]
        send_batches(self.actor, fresh)
        for touch_id in fresh:
            self._sent[touch_id] = mono
        if len(self._sent) > 200_000:
            self._sent = {k: v for k, v in self._sent.items() if mono - v < self.resend_after_s}
        return len(fresh)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:  # the database is down, say: log, keep beating
                log.exception("campaign scheduler tick failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="huashu-campaign-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
