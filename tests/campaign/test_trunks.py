"""Trunks are first-class and shared: two campaigns on one trunk never have more calls in flight on
it than its limit, at any instant (checked from the attempts' start and end), on SQLite and
PostgreSQL with several runners racing in threads; a file naming an unknown trunk fails at load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from campaign.channels import CallRequest
from campaign.events import CALL_RESULT, Event, record
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import Trunk, from_json, load, load_trunks
from store.errors import StoreError
from tests.campaign.conftest import customers, make_settings
from tests.conftest import SCRIPTS

ONE_CALL = """\
name: {name}
crowd: deposit_unpaid
pacing: {{calls_per_second: 1000, trunk: shared}}
vars: {{deadline: "2099-12-10", balance_start: "2099-12-11", balance_end: "2099-12-13"}}
steps:
  - id: call
    channel: call
    track: presale_deposit
"""


def scripts_with_trunks(root: Path, trunks: str) -> Path:
    """A scripts folder with the shipped segments and tracks and its own trunks.yml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("segments", "tracks", "personas", "nlu", "replies"):
        (root / name).symlink_to(SCRIPTS / name)
    (root / "trunks.yml").write_text(trunks, encoding="utf-8")
    return root


def max_in_flight(attempts: Iterable[dict[str, Any]], trunk: str) -> int:
    """The most calls in flight on `trunk` at any instant: a sweep over [at, ended_at) of the
    attempts (an attempt that ends at the instant another starts does not overlap it)."""
    edges: list[tuple[datetime, int]] = []
    for a in attempts:
        if a["channel"] != "call" or a["trunk"] != trunk:
            continue
        assert a["ended_at"] is not None, a  # every call came back
        edges += [(a["at"], 1), (a["ended_at"], -1)]
    busy = peak = 0
    for _, step in sorted(edges):  # at equal times -1 sorts first: an end frees its line first
        busy += step
        peak = max(peak, busy)
    return peak


def test_trunks_file_and_unknown_trunk_named_with_file_and_line(tmp_path: Path) -> None:
    scripts = scripts_with_trunks(tmp_path / "scripts", "trunks:\n  shared:\n    concurrency: 3\n"
                                  "    caller_ids: ['02150001111', '02150002222']\n    sip_trunk: carrier-a\n")
    trunks = load_trunks(scripts)
    assert trunks["shared"] == Trunk("shared", 3, ("02150001111", "02150002222"), "carrier-a")
    assert trunks["default"].concurrency == 20  # built in when the file does not redefine it
    assert trunks["shared"].caller_for("c1") == trunks["shared"].caller_for("c1")  # a callee sees one number
    assert {trunks["shared"].caller_for(f"c{i}") for i in range(20)} == {"02150001111", "02150002222"}
    good = tmp_path / "a.yml"
    good.write_text(ONE_CALL.format(name="camp_a"), encoding="utf-8")
    camp = load(good, scripts)
    assert camp.trunk.name == "shared" and camp.trunk.concurrency == 3
    assert from_json(camp.to_json()).trunk == camp.trunk  # workers read it from the store, not the file
    bad = tmp_path / "bad.yml"
    bad.write_text(ONE_CALL.format(name="camp_b").replace("trunk: shared", "trunk: nowhere"), encoding="utf-8")
    with pytest.raises(StoreError) as err:
        load(bad, scripts)
    assert str(err.value).startswith(f"{bad}:3: pacing.trunk: unknown trunk 'nowhere'")
    assert "shared" in str(err.value) and "trunks.yml" in str(err.value)
    broken = scripts_with_trunks(tmp_path / "broken", "trunks:\n  shared:\n    concurrency: 0\n")
    with pytest.raises(StoreError, match=r"trunks.yml:3: trunks.shared.concurrency"):
        load_trunks(broken)
    shipped = load_trunks(SCRIPTS)["default"]
    assert load(SCRIPTS / "campaigns" / "presale_deposit_push.yml", SCRIPTS).trunk == shipped


class SlowGateway:
    """A call gateway double: every call ends `seconds` after it was placed (a timer thread reports
    the result as our gateways do, through the result event)."""

    def __init__(self, runner: Runner, seconds: float) -> None:
        self.runner = runner
        self.seconds = seconds
        self.include_phone = False
        self.placed: list[CallRequest] = []
        self.lock = threading.Lock()
        self.timers: list[threading.Timer] = []

    def place(self, call: CallRequest) -> None:
        with self.lock:
            self.placed.append(call)
        timer = threading.Timer(self.seconds, self.end, args=(call,))
        self.timers.append(timer)
        timer.start()

    def end(self, call: CallRequest) -> None:
        record(self.runner, Event(f"{call.call_id}:result", CALL_RESULT, call.customer_id, datetime.now(UTC),
                                  {"call_id": call.call_id, "result": "answered", "reason": ""}))


def test_two_campaigns_share_one_trunk_in_process(tmp_path: Path, db_url: str) -> None:
    from store import open_store

    store = open_store(make_settings(tmp_path, db_url, calling_window="00:00-24:00", max_calls_per_day=10,
                                     max_calls_per_week=10))
    try:
        store.upsert_customers(customers(12))
        touches = Touches.open(store)
        runners: list[Runner] = []
        gateway: SlowGateway | None = None
        for _ in range(3):  # three runners (three workers' worth) racing for the same trunk
            runner = Runner(Touches(store), lambda: datetime.now(UTC))
            gateway = gateway or SlowGateway(runner, 0.15)
            runner.calls = gateway
            runners.append(runner)
        assert gateway is not None
        trunk = Trunk("shared", 3, ("02150001111",))
        for name in ("camp_a", "camp_b"):
            path = tmp_path / f"{name}.yml"
            path.write_text(ONE_CALL.format(name=name).replace("trunk: shared", "trunk: default"), encoding="utf-8")
            touches.register(replace(load(path, SCRIPTS), trunk=trunk), datetime.now(UTC))
        deadline = time.monotonic() + 60
        while True:
            handed = runners[0].tick()
            assert len(handed) <= 3  # a beat hands out no more calls than the trunk has free lines…
            states = touches.counts_by_state("camp_a") + touches.counts_by_state("camp_b")
            if states.get("done", 0) == 24:
                break
            assert time.monotonic() < deadline, states
            # …but workers may hold older messages: every runner races for every due touch here, so
            # only the store's admission keeps the trunk within its limit.
            ids = touches.due_ids(datetime.now(UTC))
            threads = [threading.Thread(target=r.execute_batch, args=(ids[i % 2::2],)) for i, r in enumerate(runners)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            time.sleep(0.02)
        for timer in gateway.timers:
            timer.join()
        attempts = touches.attempts()
        assert len(attempts) == 24 and {a["trunk"] for a in attempts} == {"shared"}
        assert max_in_flight(attempts, "shared") == 3  # full, never over
        assert {c.caller_id for c in gateway.placed} == {"02150001111"}
        assert touches.in_flight("shared") == 0
    finally:
        store.close()


def test_a_full_trunk_refuses_admission_even_without_the_scheduler(tmp_path: Path, db_url: str) -> None:
    """Workers handed more ids than free lines (an old message, a second scheduler) still admit
    only as many calls as the trunk has lines: the rest go back to pending, paced."""
    from store import open_store

    store = open_store(make_settings(tmp_path, db_url, calling_window="00:00-24:00"))
    try:
        store.upsert_customers(customers(5))
        touches = Touches.open(store)
        runner = Runner(touches, lambda: datetime.now(UTC))
        gateway = SlowGateway(runner, 3600)  # nobody hangs up during the test
        runner.calls = gateway
        path = tmp_path / "camp.yml"
        path.write_text(ONE_CALL.format(name="camp_a").replace("trunk: shared", "trunk: default"), encoding="utf-8")
        touches.register(replace(load(path, SCRIPTS), trunk=Trunk("shared", 2)), datetime.now(UTC))
        runner.tick()
        ids = touches.due_pending(datetime.now(UTC), "camp_a", "call", 100)
        out, paced = runner.execute_batch(ids)
        assert out.count("placed") == 2 and len(paced) == 3
        assert touches.in_flight("shared") == 2 and touches.counts_by_state("camp_a")["pending"] == 3
        later = datetime.now(UTC) + timedelta(seconds=2)  # the paced ones are due again a second later
        assert runner.tick(later) == [] and runner.held == {"trunk"}  # …but the trunk has no free line
    finally:
        for timer in gateway.timers:
            timer.cancel()
        store.close()


class HttpGateway:
    """An originate webhook double on a real port: every call ends `seconds` after it was placed,
    its result reported as a `call_result` event (a carrier cannot run here)."""

    def __init__(self, runner: Runner, seconds: float) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.runner = runner
        self.seconds = seconds
        self.caller_ids: list[str] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.caller_ids.append(str(body.get("caller_id", "")))
                threading.Thread(target=gateway.end, args=(body["call_id"], body["customer_id"]), daemon=True).start()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/originate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def end(self, call_id: str, customer_id: str) -> None:
        time.sleep(self.seconds)
        record(self.runner, Event(f"{call_id}:result", CALL_RESULT, customer_id, datetime.now(UTC),
                                  {"call_id": call_id, "result": "answered", "reason": ""}))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_campaigns_share_one_trunk_on_redis_workers(tmp_path: Path, fresh_pg: str) -> None:
    """Two `huashu worker` processes on real Redis and PostgreSQL, two campaigns on a trunk of 4
    lines: at no instant more than 4 calls in flight on it (from the attempts)."""
    import os
    import signal
    import subprocess
    import sys
    import uuid

    import redis

    from store import open_store
    from tests.campaign.conftest import REDIS_URL
    from tests.conftest import skip_or_fail

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis unreachable: {exc}")
    settings = make_settings(tmp_path, fresh_pg, calling_window="00:00-24:00", max_calls_per_day=10,
                             max_calls_per_week=10)
    store = open_store(settings)
    store.upsert_customers(customers(30))
    touches = Touches.open(store)
    gateway = HttpGateway(Runner(touches, lambda: datetime.now(UTC)), 0.4)
    trunk = Trunk("shared", 4, ("02150001111", "02150002222"))
    for name in ("camp_a", "camp_b"):
        path = tmp_path / f"{name}.yml"
        path.write_text(ONE_CALL.format(name=name).replace("trunk: shared", "trunk: default"), encoding="utf-8")
        touches.register(replace(load(path, SCRIPTS), trunk=trunk), datetime.now(UTC))
    env = {**os.environ, "HUASHU_DATABASE_URL": fresh_pg, "HUASHU_DATA_DIR": str(tmp_path / "data"),
           "HUASHU_PHONE_KEY": "tests-phone-key", "HUASHU_CALLING_WINDOW": "00:00-24:00",
           "HUASHU_MAX_CALLS_PER_DAY": "10", "HUASHU_MAX_CALLS_PER_WEEK": "10", "HUASHU_BROKER_URL": REDIS_URL,
           "HUASHU_REDIS_URL": REDIS_URL, "HUASHU_REDIS_PREFIX": f"huashu-test-{uuid.uuid4().hex[:8]}:",
           "HUASHU_CALL_GATEWAY": "webhook", "HUASHU_ORIGINATE_URL": gateway.url, "HUASHU_CAMPAIGN_TICK_S": "0.3",
           "HUASHU_CAMPAIGN_RESEND_S": "3", "HUASHU_GATEWAY_SECRET": "s3cret"}
    huashu = Path(sys.executable).parent / "huashu"
    logs = [(tmp_path / f"worker{i}.log").open("w") for i in range(2)]
    workers = [subprocess.Popen([str(huashu), "worker", "--threads", "4"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=log) for log in logs]
    try:
        deadline = time.monotonic() + 180
        while sum(touches.counts_by_state(n).get("done", 0) for n in ("camp_a", "camp_b")) < 60:
            assert time.monotonic() < deadline, [touches.counts_by_state(n) for n in ("camp_a", "camp_b")]
            assert all(w.poll() is None for w in workers), (tmp_path / "worker0.log").read_text()
            time.sleep(0.3)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        gateway.server.shutdown()
        for log in logs:
            log.close()
    attempts = touches.attempts()
    assert len(attempts) == 60, [(x["status"], x["reason"]) for x in touches.touch_lines()[:3]]
    assert {a["campaign"] for a in attempts} == {"camp_a", "camp_b"}
    assert max_in_flight(attempts, "shared") == 4
    assert set(gateway.caller_ids) == {"02150001111", "02150002222"}  # from the trunk's pool
    assert touches.in_flight("shared") == 0
    store.close()
