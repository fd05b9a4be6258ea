"""Opt-outs under faults, with real processes (issue 13): two `huashu serve` workers on one Redis
(behind a TCP proxy the test can cut) and one PostgreSQL, the real NLU.

- kill -9 of the worker holding opt-out turns stopped at every point of the turn (server.failpoints
  parks them there: before anything is durable, journaled, on the do-not-contact list, holding the
  call's lock, after the engine step): every customer is on the do-not-contact list and every call
  ends `do_not_contact`, whether the gateway retries the lost callback or goes on with the next one;
- Redis cut for 3 s while opt-out turns run, and while opt-outs arrive: the same.

The facts are checked where the customer would see them: the do-not-contact row and the result's
outcome and tags in PostgreSQL right after the call's first answer after the fault, and a new call
to the customer refused.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from server.security import sign
from store import schema as t
from tests.server.conftest import TRACK
from tests.server.test_processes import SECRET, Server, nlu_model_dir  # noqa: F401 (fixture)
from tests.store.conftest import pg_url  # noqa: F401 (fixture)
from tests.store.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

OPT_OUT = "别再给我打电话了，把我的号码删掉"
BEFORE = ["喂，你好", "你是机器人吗？"]  # seq 1 and 2, then the opt-out at seq 3
POINTS = ("receipt", "journaled", "dnc", "locked", "stepped")
MAX_SEQ = 20  # fillers (1.5 s each) a gateway sits through before the test gives up: ~25 s, far below the lease
CUT_SLEEP_S = 2.0
CUT = f"locked:sleep={CUT_SLEEP_S}@-cut-"  # opt-out turns of `…-cut-…` calls hold their call this long
RUN = uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "ghijklmnop"))  # no digit runs (log masking)


class Workers:
    """Two `huashu serve` processes sharing Redis (through `proxy`), PostgreSQL and a data dir."""

    def __init__(self, env: dict[str, str], logs: Path, proxy: TcpProxy) -> None:
        self.proxy, self.env, self.logs = proxy, env, logs
        with ThreadPoolExecutor(2) as pool:  # start both at once (each loads the NLU model)
            a = pool.submit(self._a)
            b = pool.submit(Server, {**env, "HUASHU_FAILPOINT": CUT}, logs / "b.log")
            self.a, self.b = a.result(), b.result()

    def _a(self) -> Server:
        """Worker A: opt-out turns of `…-<point>-…` calls park at that point; `…-cut-…` ones sleep."""
        parked = ",".join(f"{p}:park@-{p}-" for p in POINTS)
        return Server({**self.env, "HUASHU_FAILPOINT": f"{parked},{CUT}"}, self.logs / "a.log")

    def alive_a(self) -> Server:
        if self.a.proc.poll() is not None:  # killed by an earlier test: a fresh one
            self.a = self._a()
        return self.a

    def slept(self, call_ids: list[str]) -> int:
        text = "".join(p.read_text(errors="replace") for p in (self.logs / "a.log", self.logs / "b.log"))
        return sum(f"sleeps {CUT_SLEEP_S}s in call {c}\n" in text for c in call_ids)

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, nlu_model_dir: Path, pg_url: str,  # noqa: F811
            redis_url: str) -> Iterator[Workers]:
    tmp = tmp_path_factory.mktemp("crash")
    redis = httpx.URL(redis_url)
    proxy = TcpProxy(redis.host, redis.port or 6379)
    prefix = f"huashu-test:crash-{RUN}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUASHU_")}
    env.update(HUASHU_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", HUASHU_REDIS_PREFIX=prefix,
               HUASHU_DATABASE_URL=pg_url, HUASHU_DATA_DIR=str(tmp / "data"), HUASHU_CACHE_DIR=str(tmp / "cache"),
               HUASHU_NLU_MODEL_DIR=str(nlu_model_dir), HUASHU_GATEWAY_SECRET=SECRET,
               HUASHU_CALLING_WINDOW="00:00-24:00", HUASHU_MAX_CALLS_PER_DAY="1000",
               HUASHU_MAX_CALLS_PER_WEEK="1000",
               HUASHU_AGENT_KEYS="crash-agent-key",
               HUASHU_LOCK_TTL_MS="120000")  # a lease far past the test: only owner liveness frees a call
    w = Workers(env, tmp, proxy)
    try:
        yield w
    finally:
        w.stop()
        proxy.close()
        from tests.server.conftest import clear_prefix

        clear_prefix(redis_url, prefix)


def _post(server: Server, path: str, payload: dict[str, Any], timeout: float = 30) -> httpx.Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return httpx.post(server.url + path, content=body, timeout=timeout, headers={
        "X-Huashu-Signature": sign(SECRET, body), "Content-Type": "application/json", "Connection": "close"})


def _event(server: Server, call_id: str, seq: int, text: str | None = None, kind: str = "speech") -> httpx.Response:
    """One callback, as a gateway sends it: retried after Retry-After while the answer is 503."""
    payload: dict[str, Any] = {"seq": seq, "type": kind, **({"text": text} if text is not None else {})}
    for _ in range(30):
        r = _post(server, f"/v1/calls/{call_id}/events", payload)
        if r.status_code != 503:
            assert r.status_code == 200, r.text
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))
    raise AssertionError(f"{call_id} seq {seq}: 503 for 30 tries")


def _filler(r: httpx.Response) -> bool:
    return any(a.get("clip") == "filler" for a in r.json()["actions"])


def _begin(w: Workers, call_id: str, customer: str) -> None:
    r = _post(w.b, "/v1/calls", {"call_id": call_id, "customer_id": customer, "track": TRACK})
    assert r.status_code == 200, r.text
    for seq, text in enumerate(BEFORE, 1):  # both workers see the call (and learn its customer)
        assert not _filler(_event(w.a if seq == 1 else w.b, call_id, seq, text))


def _go_on(server: Server, call_id: str, seq: int, retry: bool) -> tuple[httpx.Response, int]:
    """After a fault: the gateway retries the opt-out (`retry`) or goes on with the next callback;
    fillers (the call still held) are followed by playback-done, words by more words. Returns the
    first answer that is not a filler, and its seq."""
    r = _event(server, call_id, 3, OPT_OUT) if retry else _event(server, call_id, seq := seq + 1, "喂？还在吗")
    while _filler(r) and seq < MAX_SEQ:
        seq += 1
        r = _event(server, call_id, seq, kind="playback_done")
    return r, seq


class Db:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def dnc(self, customers: list[str]) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(t.do_not_contact.c.customer_id)
                                    .where(t.do_not_contact.c.customer_id.in_(customers))).scalars())

    def result(self, call_id: str) -> tuple[list[str], list[str]]:
        """(outcomes, tags) written for the call (a list: exactly once means one item)."""
        with self.engine.connect() as conn:
            outcomes = list(conn.execute(sa.select(t.conversations.c.outcome)
                                         .where(t.conversations.c.conversation_id == call_id)).scalars())
            tags = list(conn.execute(sa.select(t.tags.c.tag).where(t.tags.c.source_id == call_id)).scalars())
        return outcomes, tags


def _assert_ended_opted_out(db: Db, r: httpx.Response, call_id: str, customer: str) -> None:
    body = r.json()
    assert body["ended"] is True and body["actions"][-1]["type"] == "hangup", (call_id, body)
    assert "bye_opt_out" in [a.get("clip") for a in body["actions"]], (call_id, body)
    outcomes, tags = db.result(call_id)
    assert outcomes == ["do_not_contact"], (call_id, outcomes)
    assert "do_not_contact" in tags and len(tags) == len(set(tags)), (call_id, tags)
    assert db.dnc([customer]) == {customer}, call_id


def _refused(server: Server, customer: str) -> None:
    again = _post(server, "/v1/calls", {"call_id": f"again-{customer}", "customer_id": customer, "track": TRACK})
    assert again.status_code == 409 and again.json()["refused"] == "do_not_contact", (customer, again.text)


def test_redis_cut_for_3_s_during_opt_out_turns(workers: Workers, pg_url: str) -> None:  # noqa: F811
    """Group `t`: the opt-outs are inside their turns (each holding its call's lock) when Redis goes
    away for 3 s; group `a`: the opt-outs arrive while it is away. Both workers serve both."""
    w, db = workers, Db(pg_url)
    a = w.alive_a()
    in_turn = [(f"{RUN}-cut-t{i}", f"cc-{RUN}-t{i}") for i in range(6)]
    arriving = [(f"{RUN}-cut-a{i}", f"cc-{RUN}-a{i}") for i in range(6)]
    customers = [c for _, c in in_turn + arriving]
    for call_id, customer in in_turn + arriving:
        _begin(w, call_id, customer)
    answers: dict[str, httpx.Response] = {}

    def say(call_id: str, worker: Server) -> None:
        answers[call_id] = _event(worker, call_id, 3, OPT_OUT)  # retried while 503

    with ThreadPoolExecutor(len(customers)) as pool:
        futures = [pool.submit(say, c, a if i % 2 else w.b) for i, (c, _) in enumerate(in_turn)]
        deadline = time.monotonic() + 30
        while w.slept([c for c, _ in in_turn]) < len(in_turn) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.slept([c for c, _ in in_turn]) == len(in_turn), "the opt-out turns never started"
        w.proxy.cut()
        cut_at = time.monotonic()
        futures += [pool.submit(say, c, a if i % 2 else w.b) for i, (c, _) in enumerate(arriving)]
        # while Redis is away, every customer is already on the list (written before any lock)
        while db.dnc(customers) != set(customers) and time.monotonic() < cut_at + 2.9:
            time.sleep(0.05)
        assert db.dnc(customers) == set(customers) and time.monotonic() < cut_at + 3
        time.sleep(max(0.0, cut_at + 3 - time.monotonic()))
        w.proxy.resume()
        for f in futures:
            f.result()
    for call_id, customer in in_turn + arriving:
        r, seq = answers[call_id], 3
        while _filler(r) and seq < MAX_SEQ:
            seq += 1
            r = _event(w.b, call_id, seq, kind="playback_done")
        _assert_ended_opted_out(db, r, call_id, customer)
        _refused(a, customer)


def test_kill_9_of_the_worker_holding_opt_out_turns_at_every_point(workers: Workers, pg_url: str) -> None:  # noqa: F811
    """Worker A holds opt-out turns stopped at every point; SIGKILL; worker B carries every call."""
    w, db = workers, Db(pg_url)
    w.alive_a()
    calls = [(f"kill-{RUN}-{p}-{i}", f"kc-{RUN}-{p}-{i}", p, i == 0 or p == "receipt") for p in POINTS
             for i in range(2)]  # (call, customer, point, the gateway retries seq 3)
    for call_id, customer, _, _ in calls:
        _begin(w, call_id, customer)
    lost: list[BaseException] = []

    def say(call_id: str) -> None:
        try:
            _post(w.a, f"/v1/calls/{call_id}/events", {"seq": 3, "type": "speech", "text": OPT_OUT}, timeout=120)
        except httpx.HTTPError as exc:  # the worker dies under it
            lost.append(exc)

    threads = [threading.Thread(target=say, args=(c[0],)) for c in calls]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (w.a.log).read_text(errors="replace")
        if text.count(" parked call ") >= len(calls):
            break
        time.sleep(0.1)
    assert (w.a.log).read_text(errors="replace").count(" parked call ") == len(calls), "turns never parked"
    os.killpg(w.a.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    w.a.proc.wait(10)
    for th in threads:
        th.join(30)
    assert len(lost) == len(calls)  # no opt-out turn was answered by the killed worker
    # Durable on receipt: from the point where the do-not-contact write is done, the rows are there
    # before any other worker has touched these calls.
    on_list = db.dnc([c[1] for c in calls])
    assert {c[1] for c in calls if POINTS.index(c[2]) >= POINTS.index("dnc")} <= on_list
    ended_after: list[float] = []
    for call_id, customer, _, retry in calls:
        r, _ = _go_on(w.b, call_id, 3, retry)
        ended_after.append(time.monotonic() - killed_at)
        _assert_ended_opted_out(db, r, call_id, customer)
        _refused(w.b, customer)
    print(f"\n{len(calls)} opt-out calls killed at {len(POINTS)} points: all do_not_contact; the first ended "
          f"{ended_after[0]:.1f} s, the last {ended_after[-1]:.1f} s after the kill")


