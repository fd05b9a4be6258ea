"""Building a Runner from settings, and the embedded dispatcher of `huashu serve`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq

from campaign.channels import CallPlacer
from campaign.dispatch import Pacer, Scheduler, declare, make_broker, make_limiter_backend
from campaign.facts import FactsCheck
from campaign.gateways import JambonzPlacer, WebhookPlacer
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.settings import CampaignSettings
from store.errors import StoreError
from store.providers import MessageProvider, WebhookProvider

if TYPE_CHECKING:
    from store.sql import SqlStore

log = logging.getLogger("huashu.campaign")


def wall_clock() -> datetime:
    return datetime.now(UTC)


def placer(cs: CampaignSettings) -> CallPlacer | None:
    base = cs.public_base_url.rstrip("/")
    if cs.call_gateway == "webhook":
        return WebhookPlacer(cs.originate_url, cs.signing_secret, f"{base}/v1/events")
    if cs.call_gateway == "jambonz":
        return JambonzPlacer(cs.jambonz_api_url, cs.jambonz_account_sid, cs.jambonz_api_key,
                             cs.jambonz_application_sid, cs.caller_id, f"{base}/jambonz/campaign-status", cs.trunk)
    if cs.call_gateway:
        raise StoreError(f"HUASHU_CALL_GATEWAY must be webhook or jambonz, got {cs.call_gateway!r}")
    return None


def providers(cs: CampaignSettings) -> tuple[MessageProvider | None, MessageProvider | None]:
    def make(url: str) -> MessageProvider | None:
        return WebhookProvider(url, cs.signing_secret, cs.provider_include_phone) if url else None
    return make(cs.sms_webhook_url), make(cs.wecom_webhook_url)


def build_runner(store: SqlStore, cs: CampaignSettings, clock: Callable[[], datetime] = wall_clock,
                 pacing: bool = True, scripts_dir: Path | None = None) -> Runner:
    """A runner on the store with the configured providers, pacing and the facts check of call
    touches against the talk tracks of `scripts_dir` (default: the store's settings')."""
    touches = Touches.open(store)
    sms, wecom = providers(cs)
    runner = Runner(touches, clock, sms=sms, wecom=wecom, calls=placer(cs), lease=timedelta(seconds=cs.campaign_lease_s),
                    result_timeout=timedelta(seconds=cs.campaign_result_timeout_s))
    if pacing:
        runner.pacer = Pacer(make_limiter_backend(cs.redis_url), cs.redis_prefix, clock)
    runner.facts = FactsCheck(store, scripts_dir or store.settings.effective_scripts_dir)
    return runner


@dataclass
class Dispatcher:
    """A broker, the touch actor on it, optionally Dramatiq worker threads and the scheduler beat."""

    runner: Runner
    broker: dramatiq.Broker
    actor: dramatiq.Actor[Any, Any]
    scheduler: Scheduler
    worker: dramatiq.Worker | None = None
    _started: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, runner: Runner, cs: CampaignSettings) -> Dispatcher:
        broker = make_broker(cs.broker_url, cs.redis_prefix)
        runner.beat_s = cs.campaign_tick_s
        actor = declare(broker, lambda: runner)
        return cls(runner, broker, actor, Scheduler(runner, actor, cs.campaign_tick_s, cs.campaign_resend_s))

    def start(self, *, threads: int, schedule: bool = True) -> None:
        if threads > 0:
            self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=200)
            self.worker.start()
        if schedule:
            self.scheduler.start()
        log.info("campaign dispatch started: broker=%s threads=%d scheduler=%s",
                 type(self.broker).__name__, threads, schedule)

    def stop(self) -> None:
        self.scheduler.stop()
        if self.worker is not None:
            self.worker.stop(timeout=10_000)
        self.broker.close()
