"""`campaign simulate`: the real runner and Dramatiq actor on a simulated clock, against a
simulated gateway and simulated customers, in a scratch copy of the configured store's customers
(the configured store is only read: simulated payments and calls never reach it).

The runner is the one workers run, with the same pacing (calls/s and SMS/s per campaign with
Dramatiq's bucket limiters read off the simulated clock, concurrent calls per trunk admitted in
the store, carrier rules) and the same facts check. The clock moves in scheduler beats, idle
stretches skipped; while a rate holds touches back it moves a second at a time, while a trunk is
full it moves to the next event (a call that ends frees a line).
"""

from __future__ import annotations

import heapq
import itertools
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from dramatiq.rate_limits.backends import StubBackend
from sqlalchemy import event

from campaign import behaviour as bh
from campaign.channels import CallRequest
from campaign.dispatch import QUEUE, Pacer, declare, send_batches
from campaign.events import CALL_RESULT, Event, record
from campaign.facts import FactsCheck
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import RunCampaign, load
from core.conversation import ConversationResult
from store import schema as t
from store.providers import OutboundMessage

if TYPE_CHECKING:
    from store.sql import SqlStore


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, at: datetime) -> None:
        with self._lock:
            self.now = at


@dataclass
class SimWorld:
    """The gateway, the message providers and the customers' later actions (an event heap)."""

    seed: int
    clock: SimClock
    store: SqlStore
    include_phone: bool = False
    delivered: dict[str, int] = field(default_factory=dict)  # idempotency key → deliveries accepted
    _heap: list[tuple[datetime, int, Event]] = field(default_factory=list)
    _n: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def later(self, event: Event) -> None:
        with self._lock:
            heapq.heappush(self._heap, (event.at, next(self._n), event))

    def due_events(self, now: datetime) -> list[Event]:
        out = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                out.append(heapq.heappop(self._heap)[2])
        return out

    def next_event_at(self) -> datetime | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    # a message provider (sms and wecom): drops a repeated idempotency key like a real provider
    def send(self, messages: Sequence[OutboundMessage]) -> set[str]:
        now = self.clock()
        for m in messages:
            with self._lock:
                first = m.task_id not in self.delivered
                self.delivered[m.task_id] = self.delivered.get(m.task_id, 0) + 1
            if not first:
                continue
            step = m.task_id.split(":")[1]
            pay = bh.pays_after(self.seed, m.customer_id, step, bh.PAY_AFTER_MESSAGE.get(m.channel, 0.05), now)
            if pay is not None:
                self.later(Event(f"sim:pay:{m.customer_id}", "deposit_paid", m.customer_id, pay, {}))
            if m.channel == "wecom" and bh.unit(self.seed, m.customer_id, "reply", step) < bh.REPLY_AFTER_WECOM:
                self.later(Event(f"sim:reply:{m.task_id}", "wecom_reply", m.customer_id, now + timedelta(hours=1),
                                 {}))
        return {m.task_id for m in messages}

    # a call placer: the result comes back as an event after the call's length
    def place(self, call: CallRequest) -> None:
        now = self.clock()
        with self._lock:
            first = call.call_id not in self.delivered
            self.delivered[call.call_id] = self.delivered.get(call.call_id, 0) + 1
        if not first:
            return
        attempt = int(call.call_id.split("#")[1]) if "#" in call.call_id else 1
        out = bh.call(self.seed, call.customer_id, attempt)
        end = now + timedelta(seconds=out.seconds)
        if out.result == "answered":
            self._write_talk(call, out, now, end)
        self.later(Event(f"{call.call_id}:result", CALL_RESULT, call.customer_id, end,
                         {"call_id": call.call_id, "result": out.result, "reason": out.reason}))

    def _write_talk(self, call: CallRequest, out: bh.CallOutcome, start: datetime, end: datetime) -> None:
        self.store.write_result(ConversationResult(
            call.call_id, call.customer_id, call.track, "", "call", "sim", start, end, out.outcome, out.grade,
            out.tags, {}, (), (), "customer"))
        if out.outcome == "do_not_contact":
            self.store.mark_do_not_contact(call.customer_id, "opt_out", f"call:{call.call_id}", end)
        pay = bh.pays_after(self.seed, call.customer_id, call.step, out.pay_chance, end)
        if pay is not None:
            self.later(Event(f"sim:pay:{call.customer_id}", "deposit_paid", call.customer_id, pay, {}))


class _Provider:
    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.include_phone = world.include_phone

    def send(self, messages: Sequence[OutboundMessage]) -> set[str]:
        return self.world.send(messages)

    def place(self, call: CallRequest) -> None:
        self.world.place(call)


def copy_customers(source: SqlStore, target: SqlStore) -> int:
    """The configured store's customers (orders, tags, opt-outs, recent attempts) into a scratch store."""
    tables = (t.customers, t.orders, t.tags, t.do_not_contact, t.contact_attempts)
    n = 0
    with source.engine.connect() as src, target.engine.begin() as dst:
        for table in tables:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            for i in range(0, len(rows), 2000):
                dst.execute(table.insert(), rows[i:i + 2000])
            if table is t.customers:
                n = len(rows)
    return n


def _scratch(store: SqlStore) -> None:
    """A scratch SQLite store is thrown away after the run: its commits need not reach the disk
    (a durable sync per commit was most of a simulated touch's wall time)."""
    if store.engine.dialect.name != "sqlite":
        return

    def no_sync(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.close()
    event.listen(store.engine, "connect", no_sync)
    store.engine.dispose()  # connections opened before the listener reconnect with it


def _step_times(touches: Touches, name: str, started: datetime) -> list[datetime]:
    camp, _, _ = touches.campaign(name, fresh=False)
    planned = touches.planned_steps(name)
    return [started + s.offset for s in camp.steps if s.spec.trigger is None and s.id not in planned]


def _next(now: datetime, tick: timedelta, wakes: Sequence[datetime | None]) -> datetime:
    """The next beat: one tick on, or later when nothing can happen before (idle hours skipped;
    still on the tick grid so runs are reproducible)."""
    soonest = min((w for w in wakes if w is not None and w > now), default=None)
    if soonest is None or soonest <= now + tick:
        return now + tick
    return now + tick * ((soonest - now) // tick)


@dataclass
class SimResult:
    campaign: str
    start: datetime
    end: datetime
    ticks: int
    status: dict[str, Any]
    touches: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    deliveries: dict[str, int]
    customers: int

    def attempt_lines(self) -> list[dict[str, Any]]:
        """Every provider attempt: `{"campaign","step","customer_id","channel","attempt","trunk","at",
        "ended_at","result","reason"}` (times ISO with the start's offset; `ended_at` for calls:
        the result came back, the line was free again)."""
        tz = self.start.tzinfo

        def iso(at: datetime | None) -> str | None:
            return None if at is None else at.astimezone(tz).isoformat()
        return [{"campaign": a["campaign"], "step": a["step"], "customer_id": a["customer_id"],
                 "channel": a["channel"], "attempt": a["attempt"], "trunk": a["trunk"], "at": iso(a["at"]),
                 "ended_at": iso(a["ended_at"]), "result": a["result"], "reason": a["reason"]}
                for a in self.attempts]


def run(source: SqlStore, make_store: Callable[[Path], SqlStore], campaign_file: Path, scripts_dir: Path,
        start: datetime, days: float, seed: int = 0, tick: timedelta = timedelta(minutes=5), threads: int = 4,
        progress: Callable[[float], None] | None = None) -> SimResult:
    camp = load(campaign_file, scripts_dir)
    with tempfile.TemporaryDirectory(prefix="huashu-sim-") as tmp:
        store = make_store(Path(tmp))
        _scratch(store)
        try:
            customers = copy_customers(source, store)
            return _run(store, camp, start, days, seed, tick, threads, progress, customers, scripts_dir)
        finally:
            store.close()


def _run(store: SqlStore, camp: RunCampaign, start: datetime, days: float, seed: int, tick: timedelta, threads: int,
         progress: Callable[[float], None] | None, customers: int, scripts_dir: Path) -> SimResult:
    clock = SimClock(start)
    world = SimWorld(seed, clock, store)
    provider = _Provider(world)
    touches = Touches.open(store)
    runner = Runner(touches, clock, sms=provider, wecom=provider, calls=provider,
                    pacer=Pacer(StubBackend(), "sim:", clock), facts=FactsCheck(store, scripts_dir), beat_s=1.0)
    touches.register(camp, start, source="simulate")
    broker = StubBroker()
    actor = declare(broker, lambda: runner, resend_paced=False)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    end = start + timedelta(days=days)
    ticks = 0
    try:
        now = start
        while now <= end:
            clock.set(now)
            for ev in world.due_events(now):
                record(runner, ev)
            while True:  # more than one beat's worth of unpaced touches may be due at once
                send_batches(actor, runner.tick(now))
                broker.join(QUEUE)
                worker.join()
                if not runner.truncated:
                    break
            ticks += 1
            if progress:
                progress(min(1.0, (now - start) / (end - start)))
            following = _next(now, tick, [world.next_event_at(), touches.next_due_at(),
                                          *_step_times(touches, camp.name, start)])
            if "rate" in runner.held:  # the next second's bucket
                following = min(following, now + timedelta(seconds=1))
            if "trunk" in runner.held:  # a line frees when a call ends (its result event)
                soonest = world.next_event_at()
                if soonest is not None and now < soonest < following:
                    following = soonest
            now = following
    finally:
        worker.stop()
        broker.close()
    status = touches.status(camp.name, end)
    return SimResult(camp.name, start, end, ticks, status, touches.touch_lines(camp.name),
                     touches.attempts(camp.name), dict(world.delivered), customers)
