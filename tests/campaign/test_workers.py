"""A 3-step cascade over 500 customers on PostgreSQL, dispatched by two `huashu worker` processes
on a real broker (Redis, RabbitMQ), one of them SIGKILLed mid-dispatch; then every invariant is
checked from the touches. The SMS/WeCom provider and the call gateway are a local HTTP test double
(a carrier cannot run here) shaped like our webhook contract; it drops a repeated idempotency key
as real providers do and reports call results as `call_result` events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from campaign import tables as ct
from campaign.events import CALL_RESULT, Event, record
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import load
from core.customers import CustomerRecord
from store.gate import CallingWindow
from tests.campaign.conftest import AMQP_URL, REDIS_URL, make_settings
from tests.conftest import SCRIPTS, skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
HUASHU = Path(sys.executable).parent / "huashu"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE_KEY = "tests-phone-key"

CASCADE = """\
name: push500
crowd: deposit_unpaid
pacing: {calls_per_second: 200, sms_per_second: 200, trunk_concurrency: 1000}
vars: {deadline: "2099-12-10", balance_start: "2099-12-11", balance_end: "2099-12-13"}  # the facts check
steps:
  - id: invite
    channel: wecom
    text: "{name}您好，预售开始了"
  - id: remind
    channel: sms
    after_hours: 0.006
    when: {deposit_paid: false}
    text: "【小店】{name}，定金今晚截止，回T退订"
  - id: call
    channel: call
    after_hours: 0.003
    when: {deposit_paid: false}
    track: presale_deposit
"""


class Gateway:
    """The provider / gateway double: POST /sms, /wecom (our provider webhook body) and /originate."""

    def __init__(self, runner: Runner, busy: set[str], invalid: set[str], payers: set[str]) -> None:
        self.runner = runner
        self.busy, self.invalid, self.payers = busy, invalid, payers
        self.outcomes: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.accepted: set[str] = set()
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
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.01)  # a provider takes a moment: workers are often inside a send when killed
        if path == "/originate":
            key = body["call_id"]
            with self.lock:
                self.requests.append(("call", key))
                first = key not in self.accepted
                self.accepted.add(key)
            if first:
                threading.Thread(target=self.result, args=(key, body["customer_id"]), daemon=True).start()
            return {"accepted": True}
        keys = [m["task_id"] for m in body["messages"]]
        with self.lock:
            self.requests.extend((body["channel"], k) for k in keys)
            fresh = [m["customer_id"] for m in body["messages"] if m["task_id"] not in self.accepted]
            self.accepted.update(keys)
        for cid in fresh:  # a payer pays right after the invitation (between the first and second step)
            if body["channel"] == "wecom" and cid in self.payers:
                record(self.runner, Event(f"pay-{cid}", "deposit_paid", cid, datetime.now(UTC), {}))
        return {"accepted": keys}

    def result(self, key: str, customer_id: str) -> None:
        time.sleep(0.05)
        result, reason = ("busy", "") if customer_id in self.busy else \
            ("unreachable", "invalid_number") if customer_id in self.invalid else ("answered", "")
        try:
            out = record(self.runner, Event(f"{key}:result", CALL_RESULT, customer_id, datetime.now(UTC),
                                            {"call_id": key, "result": result, "reason": reason}))
            self.outcomes.append(f"{key}:{out.get('touch')}")
        except Exception as exc:
            self.outcomes.append(f"{key}:error:{exc!r}")


def _window_now() -> tuple[str, str]:
    """A calling window open now in Shanghai, and a zone where it is closed now."""
    hour = datetime.now(SHANGHAI).hour
    window = f"{(hour - 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"
    parsed = CallingWindow.parse(window)
    for name in ("America/New_York", "America/Los_Angeles", "Europe/London", "Pacific/Auckland"):
        if not parsed.allows(datetime.now(ZoneInfo(name))) and not parsed.allows(
                datetime.now(ZoneInfo(name)) + timedelta(minutes=10)):
            return window, name
    raise AssertionError("no closed zone found")


def _customers(closed_tz: str) -> tuple[list[CustomerRecord], dict[str, set[str]]]:
    groups: dict[str, set[str]] = defaultdict(set)
    out = []
    for i in range(500):
        cid = f"w{i:04d}"
        kind = "opted_out" if i < 40 else "payer" if i < 100 else "busy" if i < 150 else \
            "invalid" if i < 180 else "closed" if i < 200 else "plain"
        groups[kind].add(cid)
        out.append(CustomerRecord(customer_id=cid, phone=f"1390000{i:04d}", name=f"客户{i}",
                                  timezone=closed_tz if kind == "closed" else None))
    return out, groups


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


def _breakdown(touches: Touches) -> str:
    t = ct.touches.c
    q = sa.select(t.step, t.state, t.status, t.reason, sa.func.count()).group_by(t.step, t.state, t.status, t.reason)
    return str(touches.store._tx(lambda conn: conn.execute(q).all()))


def _wait(what: str, fn: Any, timeout_s: float = 120, touches: Touches | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not fn():
        if time.monotonic() > deadline:
            detail = "" if touches is None else _breakdown(touches)
            raise AssertionError(f"timed out waiting for {what} {detail}")
        time.sleep(0.25)


def test_cascade_on_two_workers_one_killed(tmp_path: Path, fresh_pg: str, broker_url: str) -> None:
    from store import open_store

    window, closed_tz = _window_now()
    prefix = f"huashu-test-{uuid.uuid4().hex[:8]}:"
    settings = make_settings(tmp_path, fresh_pg, calling_window=window)
    store = open_store(settings)
    people, groups = _customers(closed_tz)
    store.upsert_customers(people)
    for cid in groups["opted_out"]:
        store.mark_do_not_contact(cid, "opt_out", "test", datetime.now(UTC) - timedelta(days=1))
    touches = Touches.open(store)
    runner = Runner(touches, lambda: datetime.now(UTC))
    gateway = Gateway(runner, groups["busy"], groups["invalid"], groups["payer"])
    path = tmp_path / "push500.yml"
    path.write_text(CASCADE, encoding="utf-8")
    touches.register(load(path, SCRIPTS), datetime.now(UTC))
    env = {**os.environ, "HUASHU_DATABASE_URL": fresh_pg, "HUASHU_DATA_DIR": str(tmp_path / "data"),
           "HUASHU_PHONE_KEY": PHONE_KEY, "HUASHU_CALLING_WINDOW": window, "HUASHU_BROKER_URL": broker_url,
           "HUASHU_REDIS_URL": REDIS_URL, "HUASHU_REDIS_PREFIX": prefix, "HUASHU_CALL_GATEWAY": "webhook",
           "HUASHU_ORIGINATE_URL": f"{gateway.url}/originate", "HUASHU_SMS_WEBHOOK_URL": f"{gateway.url}/sms",
           "HUASHU_WECOM_WEBHOOK_URL": f"{gateway.url}/wecom", "HUASHU_CAMPAIGN_LEASE_S": "3",
           "HUASHU_CAMPAIGN_TICK_S": "0.5", "HUASHU_CAMPAIGN_RESEND_S": "4", "HUASHU_GATEWAY_SECRET": "s3cret"}
    logs = [(tmp_path / f"worker{i}.log").open("w") for i in range(2)]
    workers = [subprocess.Popen([str(HUASHU), "worker", "--threads", "4"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=log) for log in logs]
    try:
        _wait("first deliveries", lambda: len(gateway.requests) >= 80, 60)
        workers[0].send_signal(signal.SIGKILL)  # mid-dispatch: its claims must be taken over
        assert workers[0].wait(10) == -signal.SIGKILL
        _wait("the invitations", lambda: touches.counts_by_state("push500").get("done", 0) >= 440, 90, touches)
        expected_open = len(groups["busy"]) + 3 * len(groups["closed"])  # busy: retry in 30 min; closed: waiting

        def settled() -> bool:
            states = touches.counts_by_state("push500")
            return states.get("pending", 0) == expected_open and sum(states.values()) - states.get("done", 0) \
                == expected_open and "call" in {r["step"] for r in touches.touch_lines("push500")}
        try:
            _wait("the cascade to settle", settled, 120, touches)
        except AssertionError:
            odd = [o for o in gateway.outcomes if o.rsplit(':', 1)[1] not in ('answered', 'retry', 'unreachable')]
            raise AssertionError(f"{odd[:20]} {touches.counts_by_state('push500')}") from None
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        gateway.server.shutdown()
        for log in logs:
            log.close()
    _check_invariants(store, touches, gateway, groups, window, closed_tz)
    store.close()


def _check_invariants(store: Any, touches: Touches, gateway: Gateway, groups: dict[str, set[str]], window: str,
                      closed_tz: str) -> None:
    t = ct.touches.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(ct.touches)).all()
        dup = conn.execute(sa.select(t.campaign, t.step, t.customer_id).group_by(t.campaign, t.step, t.customer_id)
                           .having(sa.func.count() > 1)).all()
    assert not dup  # at most one touch per (campaign, step, customer)
    by = {(r.step, r.customer_id): r for r in rows}
    assert not [k for k in by if k[1] in groups["opted_out"]]  # opted out before: never touched
    e = ct.campaign_events.c
    with store.engine.connect() as conn:
        paid = dict(conn.execute(sa.select(e.customer_id, e.at).where(e.type == "deposit_paid")).tuples().all())
    assert set(paid) == groups["payer"]
    for cid in groups["payer"]:  # paid between steps: no later step reached them after they paid
        assert ("invite", cid) in by and by[("invite", cid)].status == "sent"
        for step in ("remind", "call"):
            r = by.get((step, cid))
            assert r is None or r.status == "skipped" or r.at < paid[cid], (step, cid)
    for cid in groups["busy"]:  # busy: retried per the rules (30 minutes later), not yet
        r = by[("call", cid)]
        assert (r.state, r.reason, r.attempts) == ("pending", "busy", 1)
        assert r.due_at - r.at >= timedelta(minutes=30)
    for cid in groups["invalid"]:  # invalid number: never retried
        r = by[("call", cid)]
        assert (r.state, r.status, r.reason, r.attempts) == ("done", "unreachable", "invalid_number", 1)
    for cid in groups["plain"]:
        assert by[("invite", cid)].status == "sent" and by[("remind", cid)].status == "sent"
        assert by[("call", cid)].status == "answered"
    parsed = CallingWindow.parse(window)
    attempts = touches.attempts("push500")
    closed = ZoneInfo(closed_tz)
    for a in attempts:  # nothing outside the calling window of the customer's zone
        tz = closed if a["customer_id"] in groups["closed"] else SHANGHAI
        assert parsed.allows(a["at"].astimezone(tz)), a
    assert not [a for a in attempts if a["customer_id"] in groups["closed"]]
    per_customer_channel = Counter((a["customer_id"], a["channel"]) for a in attempts)
    assert max(per_customer_channel.values()) == 1  # frequency caps (1 a day per channel) and carrier rules held
    # Deliveries: each (step, customer) reached the provider under one key; a repeat is the same key.
    keys = {k for _, k in gateway.requests}
    assert len({tuple(k.split("#")[0].split(":")[1:]) for k in keys}) == len(keys)
    repeats = sum(n - 1 for n in Counter(gateway.requests).values())
    print(f"\n{len(gateway.requests)} provider requests, {len(keys)} keys, {repeats} repeats of a key")
