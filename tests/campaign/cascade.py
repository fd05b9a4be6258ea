"""A 3-step cascade (WeCom → SMS → call) on PostgreSQL dispatched by `huashu worker` processes,
shared by the worker tests (SIGKILL) and the fault tests (broker restart, database outage).

The SMS/WeCom provider and the call gateway are a local HTTP test double (a carrier cannot run
here) shaped like our webhook contract: it records every request with its idempotency key, drops a
repeated key as real providers do, and reports call results as `call_result` events. The test's
own store (the events and results it records, the checks) talks to PostgreSQL directly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from campaign import tables as ct
from campaign.events import CALL_RESULT, Event, record
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import load
from core.customers import CustomerRecord
from store.gate import CallingWindow
from tests.campaign.conftest import make_settings
from tests.conftest import SCRIPTS

HUASHU = Path(sys.executable).parent / "huashu"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE_KEY = "tests-phone-key"
LATER_STEPS = ("remind", "call")


def cascade_yaml(name: str, *, sms_per_second: int = 200, calls_per_second: int = 200, remind_after_h: float = 0.006,
                 call_after_h: float = 0.003) -> str:
    """Invite on WeCom now, remind unpaid by SMS, then call the still unpaid (offsets add up)."""
    return f"""\
name: {name}
crowd: deposit_unpaid
pacing: {{calls_per_second: {calls_per_second}, sms_per_second: {sms_per_second}, trunk_concurrency: 1000}}
vars: {{deadline: "2099-12-10", balance_start: "2099-12-11", balance_end: "2099-12-13"}}  # the facts check
steps:
  - id: invite
    channel: wecom
    text: "{{name}}您好，预售开始了"
  - id: remind
    channel: sms
    after_hours: {remind_after_h}
    when: {{deposit_paid: false}}
    text: "【小店】{{name}}，定金今晚截止，回T退订"
  - id: call
    channel: call
    after_hours: {call_after_h}
    when: {{deposit_paid: false}}
    track: presale_deposit
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request the provider/gateway got: what a customer would receive (unless `repeat`)."""

    channel: str
    key: str
    at: float  # time.monotonic()
    repeat: bool  # the key was accepted before: the provider drops it, the customer sees nothing

    @property
    def step_customer(self) -> tuple[str, str]:
        _, step, customer = self.key.split("#", 1)[0].split(":", 2)
        return step, customer


class Gateway:
    """The provider / gateway double: POST /sms, /wecom (our provider webhook body) and /originate.
    A payer pays right after their invitation (between the first and the second step)."""

    def __init__(self, runner: Runner, groups: dict[str, set[str]]) -> None:
        self.runner = runner
        self.groups = groups
        self.outcomes: list[str] = []
        self.log: list[Delivery] = []
        self.paid_at: dict[str, float] = {}  # customer → time.monotonic() of the payment
        self.accepted: set[str] = set()
        self.before_reply: Callable[[str], None] | None = None  # a fault to inject while a request is in flight
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = gateway.handle(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a worker SIGKILLed mid-request
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(d.channel, d.key) for d in self.log]

    def _note(self, channel: str, keys: list[str]) -> list[str]:
        """Log the requests; the keys seen for the first time."""
        now = time.monotonic()
        with self.lock:
            fresh = []
            for key in keys:
                self.log.append(Delivery(channel, key, now, key in self.accepted))
                if key not in self.accepted:
                    fresh.append(key)
                    self.accepted.add(key)
            return fresh

    def handle(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.01)  # a provider takes a moment: workers are often inside a send when a fault hits
        if path == "/originate":
            key = body["call_id"]
            if self._note("call", [key]):
                threading.Thread(target=self.result, args=(key, body["customer_id"]), daemon=True).start()
            self._before_reply("call")
            return {"accepted": True}
        messages = body["messages"]
        fresh = set(self._note(body["channel"], [m["task_id"] for m in messages]))
        for m in messages:
            cid = m["customer_id"]
            if body["channel"] == "wecom" and m["task_id"] in fresh and cid in self.groups["payer"]:
                record(self.runner, Event(f"pay-{cid}", "deposit_paid", cid, datetime.now(UTC), {}))
                with self.lock:
                    self.paid_at[cid] = time.monotonic()
        self._before_reply(body["channel"])
        return {"accepted": [m["task_id"] for m in messages]}

    def _before_reply(self, channel: str) -> None:
        hook = self.before_reply
        if hook is not None:
            hook(channel)

    def result(self, key: str, customer_id: str) -> None:
        time.sleep(0.05)
        result, reason = ("busy", "") if customer_id in self.groups["busy"] else \
            ("unreachable", "invalid_number") if customer_id in self.groups["invalid"] else ("answered", "")
        try:
            out = record(self.runner, Event(f"{key}:result", CALL_RESULT, customer_id, datetime.now(UTC),
                                            {"call_id": key, "result": result, "reason": reason}))
            self.outcomes.append(f"{key}:{out.get('touch')}")
        except Exception as exc:
            self.outcomes.append(f"{key}:error:{exc!r}")

    def violations(self, since: float = 0.0) -> list[str]:
        """What a customer would have noticed, from the requests at or after `since`: a second
        delivery of one step under a new key, a message to an opted-out customer, a later step
        after paying, a call in a zone whose calling window is closed."""
        with self.lock:
            log, paid = list(self.log), dict(self.paid_at)
        out: list[str] = []
        keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        for d in log:
            step, cid = d.step_customer
            keys[(step, cid)].add(d.key)
            if d.at < since:
                continue
            if cid in self.groups["opted_out"]:
                out.append(f"opted-out {cid} got {d.key}")
            if cid in self.groups["closed"] and d.channel == "call":
                out.append(f"{cid} called outside the window ({d.key})")
            if step in LATER_STEPS and cid in paid and d.at > paid[cid]:
                out.append(f"payer {cid} got {d.key} {d.at - paid[cid]:.1f} s after paying")
        out += [f"{k} delivered under {sorted(v)}" for k, v in keys.items() if len(v) > 1]
        return out

    def repeats(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.log if d.repeat]


def window_now() -> tuple[str, str]:
    """A calling window open now in Shanghai, and a zone where it is closed now."""
    hour = datetime.now(SHANGHAI).hour
    window = f"{(hour - 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"
    parsed = CallingWindow.parse(window)
    for name in ("America/New_York", "America/Los_Angeles", "Europe/London", "Pacific/Auckland"):
        if not parsed.allows(datetime.now(ZoneInfo(name))) and not parsed.allows(
                datetime.now(ZoneInfo(name)) + timedelta(minutes=10)):
            return window, name
    raise AssertionError("no closed zone found")


def make_customers(n: int, closed_tz: str) -> tuple[list[CustomerRecord], dict[str, set[str]]]:
    """n customers: 8 % opted out, 12 % pay after the invitation, 10 % busy, 6 % invalid numbers,
    4 % in a zone where the calling window is closed, the rest plain."""
    groups: dict[str, set[str]] = {k: set() for k in ("opted_out", "payer", "busy", "invalid", "closed", "plain")}
    out = []
    for i in range(n):
        cid = f"w{i:04d}"
        share = i / n
        kind = "opted_out" if share < 0.08 else "payer" if share < 0.2 else "busy" if share < 0.3 else \
            "invalid" if share < 0.36 else "closed" if share < 0.4 else "plain"
        groups[kind].add(cid)
        out.append(CustomerRecord(customer_id=cid, phone=f"1390000{i:04d}", name=f"客户{i}",
                                  timezone=closed_tz if kind == "closed" else None))
    return out, groups


def wait_for(what: str, fn: Any, timeout_s: float = 120, touches: Touches | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not fn():
        if time.monotonic() > deadline:
            detail = "" if touches is None else breakdown(touches)
            raise AssertionError(f"timed out waiting for {what} {detail}")
        time.sleep(0.25)


def breakdown(touches: Touches) -> str:
    t = ct.touches.c
    q = sa.select(t.step, t.state, t.status, t.reason, sa.func.count()).group_by(t.step, t.state, t.status, t.reason)
    return str(touches.store._tx(lambda conn: conn.execute(q).all()))


class Cascade:
    """One run: customers and the campaign registered in `pg_url`, the gateway double, and
    `huashu worker` processes started on `broker_url` (their database URL may differ: a proxy)."""

    def __init__(self, tmp_path: Path, pg_url: str, broker_url: str, redis_url: str, *, customers: int = 500,
                 name: str = "push500", worker_db_url: str | None = None, lease_s: float = 3,
                 resend_s: float = 4, result_timeout_s: float = 1800, pacing: dict[str, Any] | None = None) -> None:
        from store import open_store

        self.tmp_path, self.name = tmp_path, name
        self.window, self.closed_tz = window_now()
        self.store = open_store(make_settings(tmp_path, pg_url, calling_window=self.window))
        people, self.groups = make_customers(customers, self.closed_tz)
        self.store.upsert_customers(people)
        for cid in self.groups["opted_out"]:
            self.store.mark_do_not_contact(cid, "opt_out", "test", datetime.now(UTC) - timedelta(days=1))
        self.touches = Touches.open(self.store)
        self.runner = Runner(self.touches, lambda: datetime.now(UTC))
        self.gateway = Gateway(self.runner, self.groups)
        path = tmp_path / f"{name}.yml"
        path.write_text(cascade_yaml(name, **(pacing or {})), encoding="utf-8")
        self.campaign = load(path, SCRIPTS)
        gw = self.gateway.url
        self.env = {**os.environ, "HUASHU_DATABASE_URL": worker_db_url or pg_url,
                    "HUASHU_DATA_DIR": str(tmp_path / "data"), "HUASHU_PHONE_KEY": PHONE_KEY,
                    "HUASHU_CALLING_WINDOW": self.window, "HUASHU_BROKER_URL": broker_url,
                    "HUASHU_REDIS_URL": redis_url, "HUASHU_REDIS_PREFIX": f"huashu-test-{uuid.uuid4().hex[:8]}:",
                    "HUASHU_CALL_GATEWAY": "webhook", "HUASHU_ORIGINATE_URL": f"{gw}/originate",
                    "HUASHU_SMS_WEBHOOK_URL": f"{gw}/sms", "HUASHU_WECOM_WEBHOOK_URL": f"{gw}/wecom",
                    "HUASHU_CAMPAIGN_LEASE_S": str(lease_s), "HUASHU_CAMPAIGN_TICK_S": "0.5",
                    "HUASHU_CAMPAIGN_RESEND_S": str(resend_s), "HUASHU_CAMPAIGN_RESULT_TIMEOUT_S": str(result_timeout_s),
                    "HUASHU_GATEWAY_SECRET": "s3cret"}
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[str]] = []

    def start(self) -> None:
        """Register the run (its first step is due now)."""
        self.touches.register(self.campaign, datetime.now(UTC))

    def start_workers(self, n: int = 2, threads: int = 4) -> None:
        for _ in range(n):
            log = (self.tmp_path / f"worker{len(self.workers)}.log").open("w")
            self._logs.append(log)
            self.workers.append(subprocess.Popen([str(HUASHU), "worker", "--threads", str(threads)], env=self.env,
                                                 cwd=self.tmp_path, stdout=subprocess.DEVNULL, stderr=log))

    def wait_workers_ready(self, timeout_s: float = 90) -> None:
        """Until every worker said it runs (so step offsets do not include their start-up)."""
        wait_for("the workers to start", lambda: self.worker_logs().count("campaign worker: broker") >= len(
            self.workers) or any(w.poll() is not None for w in self.workers), timeout_s)
        assert all(w.poll() is None for w in self.workers), self.worker_logs()[-3000:]

    def worker_logs(self) -> str:
        return "\n".join((self.tmp_path / f"worker{i}.log").read_text(errors="replace")
                         for i in range(len(self.workers)))

    def expected_open(self) -> int:
        """Touches that stay pending: busy calls (retried in 30 min), the closed zone's three steps."""
        return len(self.groups["busy"]) + 3 * len(self.groups["closed"])

    def unplaced(self) -> list[Any]:
        """Calls whose `sending` commit the database took but the worker never heard of (the line
        was cut in the COMMIT): the call was never placed, and no worker may know that, so none
        dials it; it fails `no_result` after the result timeout and is retried by the `failed`
        rule (30 minutes later)."""
        t = ct.touches.c
        with self.store.engine.connect() as conn:
            return list(conn.execute(sa.select(t.step, t.customer_id, t.state, t.reason, t.attempts).where(
                t.campaign == self.name, t.state == "pending", t.reason == "no_result")).all())

    def settled(self) -> bool:
        states = self.touches.counts_by_state(self.name)
        open_ = self.expected_open() + len([r for r in self.unplaced() if r.customer_id not in self.groups["busy"]])
        return states.get("pending", 0) == open_ and sum(states.values()) - states.get("done", 0) == open_ and \
            "call" in {r["step"] for r in self.touches.touch_lines(self.name)} and not self._busy_unplaced()

    def _busy_unplaced(self) -> bool:
        """A busy callee's call still pending without an attempt (held back by pacing, e.g. while the
        pacing backend restarts) counts as open like a busy retry: the run has not settled yet."""
        t = ct.touches.c
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(
                t.campaign == self.name, t.step == "call", t.state == "pending", t.attempts == 0,
                t.customer_id.in_(sorted(self.groups["busy"])))).scalar_one() > 0

    def wait_settled(self, timeout_s: float = 120) -> None:
        try:
            wait_for("the cascade to settle", self.settled, timeout_s, self.touches)
        except AssertionError as exc:
            odd = [o for o in self.gateway.outcomes if o.rsplit(":", 1)[1] not in ("answered", "retry", "unreachable")]
            raise AssertionError(f"{exc} {odd[:20]} {self._stuck()}") from None

    def _stuck(self) -> list[str]:
        """Touches still in flight, with what the gateway got and answered for them."""
        t = ct.touches.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.id, t.step, t.customer_id, t.state, t.attempts, t.at).where(
                t.campaign == self.name, t.state.not_in(("done", "pending")))).all()
        out = []
        for r in rows[:5]:
            seen = [(d.key, round(d.at, 2), d.repeat) for d in self.gateway.log if d.step_customer == (r.step,
                                                                                                      r.customer_id)]
            answers = [o for o in self.gateway.outcomes if f":{r.step}:{r.customer_id}" in o]
            out.append(f"{tuple(r)} requests {seen} results {answers}")
        return out

    def stop_workers(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(10)
        for log in self._logs:
            log.close()
        self._logs = []

    def __enter__(self) -> Cascade:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_workers()
        self.gateway.server.shutdown()
        self.store.close()

    def store_violations(self) -> list[str]:
        """The store's side of at-most-once, read while dispatch runs: one touch per (campaign,
        step, customer), one provider attempt per touch (the busy retry comes 30 minutes later)."""
        t, a = ct.touches.c, ct.touch_attempts.c
        with self.store.engine.connect() as conn:
            dup = conn.execute(sa.select(t.step, t.customer_id).where(t.campaign == self.name)
                               .group_by(t.step, t.customer_id).having(sa.func.count() > 1)).all()
            twice = conn.execute(sa.select(a.touch_id).group_by(a.touch_id).having(sa.func.count() > 1)).all()
        return [f"two touches of {tuple(r)}" for r in dup] + [f"touch {r[0]} attempted twice" for r in twice]

    def check_invariants(self) -> None:
        """Every invariant, from the touches and from what the gateway received."""
        store, touches, groups = self.store, self.touches, self.groups
        assert not self.store_violations()
        assert not self.gateway.violations()
        t = ct.touches.c
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(ct.touches).where(t.campaign == self.name)).all()
        by = {(r.step, r.customer_id): r for r in rows}
        assert not [k for k in by if k[1] in groups["opted_out"]]  # opted out before: never touched
        e = ct.campaign_events.c
        with store.engine.connect() as conn:
            paid = dict(conn.execute(sa.select(e.customer_id, e.at).where(e.type == "deposit_paid")).tuples().all())
        assert set(paid) == groups["payer"]
        for cid in groups["payer"]:  # paid between steps: no later step reached them after they paid
            assert ("invite", cid) in by and by[("invite", cid)].status == "sent"
            for step in LATER_STEPS:
                r = by.get((step, cid))
                assert r is None or r.status == "skipped" or r.at < paid[cid], (step, cid)
        unplaced = {r.customer_id for r in self.unplaced()}
        for cid in groups["busy"] - unplaced:  # busy: retried per the rules (30 minutes later), not yet
            r = by[("call", cid)]
            assert (r.state, r.reason, r.attempts) == ("pending", "busy", 1), (cid, r.state, r.reason, r.attempts)
            assert r.due_at - r.at >= timedelta(minutes=30)
        for cid in groups["invalid"] - unplaced:  # invalid number: never retried
            r = by[("call", cid)]
            assert (r.state, r.status, r.reason, r.attempts) == ("done", "unreachable", "invalid_number", 1)
        placed = {d.step_customer for d in self.gateway.log}
        for cid in unplaced:  # never placed, never dialled by a takeover, to be retried
            assert ("call", cid) not in placed and (by[("call", cid)].attempts, by[("call", cid)].step) == (1, "call")
        for cid in groups["plain"]:  # the store's results are complete
            assert by[("invite", cid)].status == "sent" and by[("remind", cid)].status == "sent"
            assert by[("call", cid)].status == "answered" or cid in unplaced
        parsed = CallingWindow.parse(self.window)
        attempts = touches.attempts(self.name)
        closed = ZoneInfo(self.closed_tz)
        for at in attempts:  # nothing outside the calling window of the customer's zone
            tz = closed if at["customer_id"] in groups["closed"] else SHANGHAI
            assert parsed.allows(at["at"].astimezone(tz)), at
        assert not [at for at in attempts if at["customer_id"] in groups["closed"]]
        per_customer_channel = Counter((at["customer_id"], at["channel"]) for at in attempts)
        assert max(per_customer_channel.values()) == 1  # frequency caps (1 a day per channel) and carrier rules held
        # Deliveries: each (step, customer) reached the provider under one key; a repeat is the same key.
        requests = self.gateway.requests
        keys = {k for _, k in requests}
        assert len({tuple(k.split("#")[0].split(":")[1:]) for k in keys}) == len(keys)
        print(f"\n{len(rows)} touches, {len(requests)} provider requests, {len(keys)} keys, "
              f"{len(self.gateway.repeats())} repeats of a key, {len(unplaced)} calls unplaced after a cut commit")


class Watch:
    """Samples the customer-visible invariants every `every_s` while a fault is on (in a thread):
    violations are collected, not raised, so the test can report them after cleaning up."""

    def __init__(self, cascade: Cascade, every_s: float = 0.25) -> None:
        self.cascade, self.every_s = cascade, every_s
        self.found: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sample()

    def _sample(self) -> None:
        self.samples += 1
        for v in self.cascade.gateway.violations() + self.cascade.store_violations():
            if v not in self.found:
                self.found.append(v)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()
