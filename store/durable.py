"""Writes that are never lost: straight to the database, or to the outbox while it is down.

`DurableWrites` is the part of SqlStore that decides where a write goes. A write that fails
because the database is unreachable opens a circuit (exponential backoff up to 15 s) and goes,
with every write after it, to the on-disk outbox (store.outbox) until a replay in order has
emptied it; an entry the database rejects for its content is parked, never blocking the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection

from store import writer
from store.db import is_connectivity_error, safe_url
from store.group_commit import GroupCommit
from store.outbox import Outbox, OutboxEntry

log = logging.getLogger("huashu.store")
FLUSH_BATCH = 500
OutboxItem = tuple[str, str, str, dict[str, Any], bool]  # kind, id, customer id, payload, blocks contact


class DurableWrites:
    """Write-or-queue, the circuit breaker and the outbox replay (see module docstring)."""

    url: str
    _sqlite: bool
    _group: GroupCommit
    _writing: Callable[[], AbstractContextManager[Connection]]

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._state_lock = threading.Lock()  # orders outbox puts against "outbox is empty"
        self._flush_lock = threading.Lock()
        self._pending = outbox.count() > 0
        self._failures = 0
        self._retry_at = 0.0

    def _now(self) -> datetime:
        raise NotImplementedError

    def _write_or_queue(self, fn: Callable[[Connection], Any],
                        items: list[tuple[str, str, str, dict[str, Any], bool]]) -> Any:
        if not self._outbox_first():
            try:
                if self._sqlite:  # concurrent writers share one transaction (store.group_commit)
                    return self._group.run(fn)
                with self._writing() as conn:
                    return fn(conn)
            except exc.SQLAlchemyError as err:
                if not is_connectivity_error(err):
                    raise
                self._open_circuit(err)
        with self._state_lock:
            new = self._outbox.put_many(items)
            self._pending = True
        return new

    def _open_circuit(self, err: BaseException) -> None:
        with self._state_lock:
            now = time.monotonic()
            if now < self._retry_at:  # already open: another thread saw the same outage
                return
            self._failures += 1
            delay = min(15.0, 0.25 * 2 ** min(self._failures, 8))
            self._retry_at = now + delay
        orig = getattr(err, "orig", None) or err
        log.warning("database %s unreachable (%s); writes go to the outbox %s, retry in %.1fs",
                    safe_url(self.url), str(orig).strip().splitlines()[0] if str(orig).strip() else "",
                    self._outbox.path, delay)

    def _outbox_first(self) -> bool:
        """True when new writes must queue behind the outbox (it could not be emptied now)."""
        if not self._pending:
            return False
        if time.monotonic() < self._retry_at:
            return True
        return not self._flush(block=False)

    def _flush(self, block: bool) -> bool:
        """Replay the outbox in order; True when it is empty afterwards."""
        if not self._flush_lock.acquire(blocking=block):
            return False
        try:
            while True:
                entries = self._outbox.peek(FLUSH_BATCH)
                if not entries:
                    with self._state_lock:
                        if self._outbox.count() == 0:
                            self._pending = False
                            self._failures = 0
                            return True
                    continue
                try:
                    with self._writing() as conn:
                        _replay(conn, entries, self._now())
                except exc.SQLAlchemyError as err:
                    if not is_connectivity_error(err):
                        self._isolate_poison(entries)
                        continue
                    self._outbox.mark_failed([e.id for e in entries], str(err)[:500])
                    self._open_circuit(err)
                    return False
                except (KeyError, TypeError, ValueError):
                    self._isolate_poison(entries)
                    continue
                self._outbox.delete([e.id for e in entries])
        finally:
            self._flush_lock.release()

    def _isolate_poison(self, entries: list[OutboxEntry]) -> None:
        """A batch the database rejects for its content (not for being down): replay entry by entry
        and park the ones that still fail, so one bad entry never blocks the rest."""
        for entry in entries:
            try:
                with self._writing() as conn:
                    _replay(conn, [entry], self._now())
            except exc.SQLAlchemyError as err:
                if is_connectivity_error(err):
                    raise
                self._outbox.park(entry.id, str(err))
                log.error("outbox entry %s (%s) rejected by the database, parked in %s: %s", entry.id,
                          entry.kind, self._outbox.path, str(err).splitlines()[0][:200])
            except (KeyError, TypeError, ValueError) as err:
                self._outbox.park(entry.id, repr(err))
                log.error("outbox entry %s (%s) unreadable, parked in %s: %r", entry.id, entry.kind,
                          self._outbox.path, err)
            else:
                self._outbox.delete([entry.id])

    def flush_outbox(self, wait_s: float = 0.0) -> int:
        """Write queued results to the database, retrying with backoff for up to `wait_s` seconds.
        Returns how many entries were flushed; what could not be flushed stays queued."""
        before = self._outbox.count()
        self._pending = self._pending or before > 0
        deadline = time.monotonic() + wait_s
        while self._pending:
            if self._flush(block=True):
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(max(0.0, min(self._retry_at, deadline) - time.monotonic()))
        return before - self._outbox.count()

    def outbox_pending(self) -> int:
        return self._outbox.count()

    def outbox_parked(self) -> int:
        """Entries the database rejected for their content (kept in the outbox file, never replayed)."""
        return self._outbox.parked()


def _replay(conn: Connection, entries: list[OutboxEntry], now: datetime) -> None:
    results = [e.payload for e in entries if e.kind == "result"]
    if results:
        writer.write_results(conn, results, now)
    dnc = [from_jsonable(e.payload) for e in entries if e.kind == "dnc"]
    if dnc:
        writer.write_dnc(conn, dnc)
    attempts = [from_jsonable(e.payload) for e in entries if e.kind == "attempt"]
    if attempts:
        writer.write_attempts(conn, attempts)


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def from_jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v) if k == "at" else v for k, v in row.items()}
