"""The outbox drains itself (issue 13): results written while PostgreSQL is cut reach it after it
returns, with no further request to the server; /readyz and huashu_outbox_backlog report the backlog.

The server is the real app (in-process, its lifespan running the drain task) on the real
PostgreSQL through a TCP proxy that the test cuts.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from core.settings import Settings
from store import schema as t
from tests.server.conftest import TRACK, client_for, record
from tests.store.conftest import pg_url  # noqa: F401 (fixture)
from tests.store.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
N = 200
OPT_OUT = "别再给我打电话了"


def test_200_results_queued_during_a_database_cut_reach_it_within_10_s_with_no_traffic(
        tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", database_timeout_s=1.0,
                        database_url=url.set(port=proxy.port).render_as_string(hide_password=False))
    run = uuid.uuid4().hex[:8]
    calls = [(f"drain-{run}-{i}", f"dc-{run}-{i}") for i in range(N)]
    opted_out = {customer for i, (_, customer) in enumerate(calls) if i % 10 == 0}
    direct = sa.create_engine(pg_url)  # the test's own view of the database, not through the proxy
    try:
        with client_for(settings) as client:
            for call_id, customer in calls:
                assert client.post("/v1/calls", json={"call_id": call_id, "customer_id": customer,
                                                      "track": TRACK}).status_code == 200
                client.post(f"/v1/calls/{call_id}/events", json={"seq": 1, "type": "speech", "text": "你是机器人吗"})
            proxy.cut()
            for call_id, customer in calls:  # every call ends while the database is away
                event = {"seq": 2, "type": "speech", "text": OPT_OUT} if customer in opted_out else \
                    {"seq": 2, "type": "hangup"}
                r = client.post(f"/v1/calls/{call_id}/events", json=event)
                assert r.status_code == 200 and r.json()["ended"] is True, r.text
            expected = {c: record(client, c).state for c, _ in calls}
            ready = client.get("/readyz").json()
            assert ready["status"] == "ready" and ready["outbox_backlog"] >= N, ready
            metric = next(line for line in client.get("/metrics").text.splitlines()
                          if line.startswith("huashu_outbox_backlog "))
            assert float(metric.split()[1]) == ready["outbox_backlog"]
            with direct.connect() as conn:
                assert _count(conn, run) == 0  # nothing reached the database during the cut
            proxy.resume()
            back = time.monotonic()
            while time.monotonic() - back < 10:  # no request to the server meanwhile
                with direct.connect() as conn:
                    if _count(conn, run) == N and _dnc(conn, run) == opted_out:
                        break
                time.sleep(0.1)
            took = time.monotonic() - back
            with direct.connect() as conn:
                ids = Counter(conn.execute(sa.select(t.conversations.c.conversation_id, t.conversations.c.outcome)
                                           .where(t.conversations.c.conversation_id.like(f"drain-{run}-%"))).all())
                tags = Counter(conn.execute(sa.select(t.tags.c.source_id, t.tags.c.tag)
                                            .where(t.tags.c.source_id.like(f"drain-{run}-%"))).all())
                dnc = _dnc(conn, run)
            assert took < 10, f"{_count_direct(direct, run)} of {N} results after 10 s"
            print(f"\n{N} results and {len(opted_out)} opt-outs in PostgreSQL {took:.2f} s after it returned")
            assert ids == Counter((c, expected[c]["outcome"]) for c, _ in calls)  # each once, its outcome
            assert tags == Counter((c, tag) for c, _ in calls for tag in dict.fromkeys(
                (expected[c]["outcome"], *expected[c]["tags"])))  # every tag, once
            assert all("asked_robot" in expected[c]["tags"] for c, _ in calls)
            assert dnc == opted_out
            assert client.get("/readyz").json()["outbox_backlog"] == 0
    finally:
        proxy.close()
        direct.dispose()


def _count(conn: sa.Connection, run: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(t.conversations)
                            .where(t.conversations.c.conversation_id.like(f"drain-{run}-%"))).scalar_one())


def _count_direct(engine: sa.Engine, run: str) -> int:
    with engine.connect() as conn:
        return _count(conn, run)


def _dnc(conn: sa.Connection, run: str) -> set[str]:
    return set(conn.execute(sa.select(t.do_not_contact.c.customer_id)
                            .where(t.do_not_contact.c.customer_id.like(f"dc-{run}-%"))).scalars())
