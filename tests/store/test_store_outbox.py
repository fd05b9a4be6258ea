"""Nothing is lost while the database is unreachable, and nothing is written twice after.

PostgreSQL: the store talks through a TCP proxy the test cuts (and, separately, the test kills
the database's backends with pg_terminate_backend). SQLite: another connection holds the write
lock. Either way 500 conversations finish from 8 threads while the line is down.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.conversation import ConversationResult
from store import open_store
from store import schema as t
from store.errors import StoreUnavailableError
from store.sql import SqlStore

from .conftest import NOW, Cuttable, make_settings
from .factories import result

N = 500
OUTCOMES = ("high_intent", "no_response", "call_back_later", "do_not_contact", "promised_to_pay")


def _results() -> list[ConversationResult]:
    return [result(f"conv-{i:04d}", f"cust-{i % 170:03d}", OUTCOMES[i % len(OUTCOMES)],
                   tags=("price_sensitive",) if i % 3 == 0 else (), ended_at=NOW + timedelta(seconds=i))
            for i in range(N)]


def _assert_exactly_once(store: SqlStore, results: list[ConversationResult]) -> None:
    assert store.outbox_pending() == 0
    with store.engine.connect() as conn:
        ids = Counter(conn.execute(sa.select(t.conversations.c.conversation_id)).scalars())
        tag_rows = conn.execute(sa.select(t.tags.c.source_id, t.tags.c.tag)).all()
        dnc = set(conn.execute(sa.select(t.do_not_contact.c.customer_id)).scalars())
    assert ids == Counter(r.conversation_id for r in results)  # each exactly once
    expected_tags = sorted((r.conversation_id, tag) for r in results for tag in dict.fromkeys((r.outcome, *r.tags)))
    assert sorted(tag_rows) == expected_tags  # no tag twice, none missing
    assert dnc == {r.customer_id for r in results if r.outcome == "do_not_contact"}


def _write_through_an_outage(c: Cuttable, results: list[ConversationResult]) -> int:
    """Write from 8 threads; cut the line after 100 results and restore it after 400."""
    done = 0
    lock = threading.Lock()
    max_pending = 0

    def write(r: ConversationResult) -> None:
        nonlocal done, max_pending
        assert c.store.write_result(r) is True  # type: ignore[attr-defined]
        with lock:
            done += 1
            if done == 100:
                c.cut()
            elif done == 400:
                max_pending = c.store.outbox_pending()  # type: ignore[attr-defined]
                c.restore()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, results))
    return max_pending


def test_500_conversations_through_a_cut_connection_land_exactly_once(cuttable: Cuttable) -> None:
    store: SqlStore = cuttable.store  # type: ignore[assignment]
    results = _results()
    queued = _write_through_an_outage(cuttable, results)
    assert queued > 0, "the outage did not reach the outbox: the test tested nothing"
    store.flush_outbox(wait_s=60)
    _assert_exactly_once(store, results)
    assert store.write_results(results) == 0  # replays after the flush: no effect
    _assert_exactly_once(store, results)


PG_ONLY = pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])


@PG_ONLY
def test_killed_backends_mid_run(store: SqlStore, db_url: str) -> None:
    results = _results()
    dbname = sa.engine.make_url(db_url).database
    admin = sa.create_engine(db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    killed = 0

    def write(i: int) -> None:
        nonlocal killed
        store.write_result(results[i])
        if i in (120, 260, 380):
            with admin.connect() as conn:
                killed += len(conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": dbname}).all())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(N)))
    admin.dispose()
    assert killed > 0
    store.flush_outbox(wait_s=60)
    _assert_exactly_once(store, results)


def test_outbox_survives_a_restart_and_is_flushed_on_open(cuttable: Cuttable, tmp_path: Path,
                                                          backend: str, db_url: str) -> None:
    store: SqlStore = cuttable.store  # type: ignore[assignment]
    store.upsert_customers([])
    cuttable.cut()
    results = _results()[:40]
    store.write_results(results)
    store.mark_do_not_contact("late-opt-out", "opt_out", "chat:z", NOW)
    store.record_attempt("cust-001", "attempt-x", NOW)
    assert store.outbox_pending() == 42
    assert store.check_contact("late-opt-out", NOW) == "do_not_contact"  # honoured while queued
    store.close()
    cuttable.restore()
    again = open_store(make_settings(tmp_path, db_url))  # same data_dir: same outbox file
    try:
        assert again.outbox_pending() == 0
        _assert_exactly_once_subset(again, results)
        assert again.check_contact("late-opt-out", NOW) == "do_not_contact"
        assert again.attempted({"attempt-x"}) == {"attempt-x"}
    finally:
        again.close()


def _assert_exactly_once_subset(store: SqlStore, results: list[ConversationResult]) -> None:
    with store.engine.connect() as conn:
        ids = Counter(conn.execute(sa.select(t.conversations.c.conversation_id)).scalars())
    assert ids == Counter(r.conversation_id for r in results)


@PG_ONLY  # SQLite readers are not blocked by the writer's lock that simulates the outage there
def test_reads_while_down_name_the_url(cuttable: Cuttable) -> None:
    cuttable.cut()
    with pytest.raises(StoreUnavailableError, match="HUASHU_DATABASE_URL"):
        cuttable.store.get_customer("c1")  # type: ignore[attr-defined]


def test_a_poisoned_entry_is_parked_and_never_blocks_the_rest(cuttable: Cuttable) -> None:
    store: SqlStore = cuttable.store  # type: ignore[assignment]
    cuttable.cut()
    good = _results()[:5]
    store.write_results(good[:2])
    store._outbox.put("result", "broken", "cust-x", {"conversation_id": "broken"})  # a payload from nowhere
    store.write_results(good[2:])
    cuttable.restore()
    store.flush_outbox(wait_s=30)
    assert store.outbox_pending() == 0 and store._outbox.parked() == 1
    _assert_exactly_once_subset(store, good)
    assert store.write_result(result("after", "cust-y")) is True
