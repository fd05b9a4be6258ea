"""Group commit (SQLite): concurrent writers share a transaction, each still gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.db import create_engine
from store.group_commit import GroupCommit

from .conftest import make_settings
from .factories import result


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'g.sqlite3'}", 5.0)
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    yield eng
    eng.dispose()


def _held_first(engine: sa.Engine, waiting: int) -> tuple[GroupCommit, threading.Event]:
    """A GroupCommit whose first transaction waits until `waiting` more writers have queued."""
    queued = threading.Event()
    first = [True]

    @contextmanager
    def begin() -> Iterator[Connection]:
        with engine.begin() as conn:
            if first[0]:
                first[0] = False
                assert queued.wait(10)
            yield conn

    return GroupCommit(begin, threading.Lock()), queued


def _insert(k: str, v: int) -> Any:
    def fn(conn: Connection) -> str:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES (:k, :v)"), {"k": k, "v": v})
        return k
    return fn


def _run_concurrently(group: GroupCommit, queued: threading.Event, fns: list[Any], n_waiting: int) -> list[Any]:
    out: list[Any] = [None] * len(fns)

    def go(i: int) -> None:
        try:
            out[i] = group.run(fns[i])
        except Exception as exc:  # the caller's own error comes back to it
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(fns))]
    threads[0].start()
    while group.batches == 0:  # the first writer leads and is inside its transaction
        threading.Event().wait(0.005)
    for th in threads[1:]:
        th.start()
    while len(group._queue) < n_waiting:  # everyone else queued behind it
        threading.Event().wait(0.005)
    queued.set()
    for th in threads:
        th.join(10)
    return out


def test_writers_that_queue_behind_a_transaction_commit_together(engine: sa.Engine) -> None:
    group, queued = _held_first(engine, 7)
    out = _run_concurrently(group, queued, [_insert(f"k{i}", i) for i in range(8)], 7)
    assert out == [f"k{i}" for i in range(8)]
    assert group.batches == 2 and group.merged == 8  # the first alone, then the 7 waiting ones in one
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 8


def test_one_bad_write_in_a_batch_fails_alone(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES ('dup', 0)"))
    group, queued = _held_first(engine, 4)
    fns = [_insert("a", 1), _insert("b", 2), _insert("dup", 3), _insert("c", 4), _insert("d", 5)]
    out = _run_concurrently(group, queued, fns, 4)
    assert isinstance(out[2], sa.exc.IntegrityError)
    assert [out[i] for i in (0, 1, 3, 4)] == ["a", "b", "c", "d"]
    with engine.connect() as conn:
        rows: dict[str, int] = {k: v for k, v in conn.execute(sa.text("SELECT k, v FROM t"))}
    assert rows == {"dup": 0, "a": 1, "b": 2, "c": 4, "d": 5}


def test_concurrent_results_are_each_written_exactly_once(tmp_path: Path) -> None:
    from store import open_store

    store = open_store(make_settings(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite3'}"))
    try:
        results = [result(f"call-{i}", f"cust-{i % 5}", tags=("asked_price",)) for i in range(40)]
        news: list[int] = []
        lock = threading.Lock()

        def write(r: Any) -> None:
            n = store.write_results([r])
            with lock:
                news.append(n)

        threads = [threading.Thread(target=write, args=(r,)) for r in results * 2]  # every result twice
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert sorted(news) == [0] * 40 + [1] * 40  # the second copy of each is a replay
        assert {r.conversation_id for r in store.list_conversations()} == {f"call-{i}" for i in range(40)}
        assert store._group.batches < 80  # writes were merged
    finally:
        store.close()
