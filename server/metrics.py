"""Prometheus metrics (names prefixed huashu_). With `--workers N` the serve command sets
PROMETHEUS_MULTIPROC_DIR and /metrics aggregates every worker; calls-active is read from the
session store and the outbox backlog from the (shared) outbox file at scrape time, so they are
right across workers (and after a worker is killed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0)


class _ReadGauge(Collector):
    """A gauge whose value is read from shared state (not summed over workers)."""

    def __init__(self, name: str, doc: str, read: Callable[[], float | None]) -> None:
        self.name, self.doc, self.read = name, doc, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        value = self.read()
        g = GaugeMetricFamily(self.name, self.doc)
        if value is not None:
            g.add_metric([], value)
        yield g


class Metrics:
    """One set of metrics per app (its own registry, so several apps can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_started = Counter("huashu_calls_started", "Calls started", ["track"], registry=r)
        self.refusals = Counter("huashu_call_refusals", "Calls refused by the compliance gate",
                                ["reason"], registry=r)
        self.events = Counter("huashu_events", "Gateway events handled", ["type"], registry=r)
        self.replays = Counter("huashu_idempotent_replays", "Callbacks answered from the idempotency cache",
                               registry=r)
        self.stale = Counter("huashu_stale_events", "Events older than the call's newest (no effect)",
                             registry=r)
        self.fillers = Counter("huashu_deadline_fillers", "Turns that missed the budget (filler played)",
                               registry=r)
        self.queued_speech = Counter("huashu_queued_speech", "Journaled events answered by a later turn "
                                     "(said while the call was busy, or while its worker died)", registry=r)
        self.opt_outs = Counter("huashu_opt_outs_at_receipt", "Opt-outs put on the do-not-contact list on "
                                "receipt, before the turn (retries count again)", registry=r)
        self.takeovers = Counter("huashu_lock_takeovers", "Call locks taken over from a worker that stopped "
                                 "heartbeating", registry=r)
        self.outcomes = Counter("huashu_call_outcomes", "Finished calls by outcome and final node",
                                ["track", "node", "outcome"], registry=r)
        self.latency = Histogram("huashu_callback_latency_seconds", "Callback handling time",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.nlu_latency = Histogram("huashu_turn_compute_seconds", "Engine turn time (NLU + policy + store)",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.nlu_batch = Histogram("huashu_nlu_batch_size", "Utterances per NLU model pass (micro-batching)",
                                   buckets=(1, 2, 4, 8, 16, 32), registry=r)
        self.asr_latency = Histogram("huashu_asr_seconds", "Speech recognition time per upload",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.auth_failures = Counter("huashu_auth_failures", "Requests refused for a bad signature or key",
                                     ["area"], registry=r)
        self._active_value: float | None = None
        self._backlog_value: float | None = None
        self._shared = [
            _ReadGauge("huashu_calls_active", "Calls started and not yet ended (session store)",
                       lambda: self._active_value),
            _ReadGauge("huashu_outbox_backlog", "Store writes (results, opt-outs, attempts) queued in the "
                       "outbox while the database is unreachable", lambda: self._backlog_value)]
        for gauge in self._shared:
            r.register(gauge)

    def set_active(self, value: float | None) -> None:
        self._active_value = value

    def set_backlog(self, value: float | None) -> None:
        self._backlog_value = value

    def render(self) -> tuple[bytes, str]:
        """The exposition text (every worker's numbers in multi-process mode)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            for gauge in self._shared:
                registry.register(gauge)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
