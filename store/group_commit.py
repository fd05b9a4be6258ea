"""Group commit for SQLite: concurrent writers share one transaction.

SQLite has one writer at a time, and every commit is a durable sync (synchronous=FULL). With
many calls ending at once (a campaign's calls hang up together, the server's turn threads each
writing one result) the writes queue behind each other one commit at a time. Here a writer puts
its work in a queue and takes the process's write lock; whoever holds the lock runs everything
queued so far in ONE transaction and hands each waiter its own result. Callers still return
only after their write is committed, so nothing that was durable before is less durable now.

One bad write never fails the others: when the shared transaction fails, each piece of work is
run again in a transaction of its own and gets its own result or error. An unreachable or locked
database is everyone's error at once: each caller gets it (and queues its write in the outbox)
without the batch waiting out the same outage once per writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection


@dataclass(slots=True)
class _Work:
    fn: Callable[[Connection], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """`run(fn)` → fn(conn)'s result, committed; concurrent calls are merged (see module doc)."""

    def __init__(self, begin: Callable[[], AbstractContextManager[Connection]], lock: threading.Lock,
                 shared: Callable[[BaseException], bool] = lambda _: False) -> None:
        self._begin = begin
        self._shared = shared  # errors that are nobody's fault (database unreachable): no retry alone
        self._lock = lock  # the process's write lock (also taken by other writers of the store)
        self._queue: list[_Work] = []
        self._queue_lock = threading.Lock()
        self.batches = 0
        self.merged = 0

    def run(self, fn: Callable[[Connection], Any]) -> Any:
        work = _Work(fn)
        with self._queue_lock:
            self._queue.append(work)
        with self._lock:
            if not work.done:  # nobody took it along: lead a batch of everything queued
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch)
        if work.error is not None:
            raise work.error
        return work.result

    def _run(self, batch: list[_Work]) -> None:
        self.batches += 1
        self.merged += len(batch)
        try:
            with self._begin() as conn:
                results = [w.fn(conn) for w in batch]
        except BaseException as err:
            if len(batch) == 1 or self._shared(err):  # retrying each would wait out the same outage N times
                for w in batch:
                    w.error, w.done = err, True
                return
            for w in batch:  # isolate: every piece of work on its own
                try:
                    with self._begin() as conn:
                        w.result = w.fn(conn)
                except BaseException as own:  # handed to its caller, who raises it
                    w.error = own
                w.done = True
            return
        for w, r in zip(batch, results, strict=True):
            w.result, w.done = r, True
