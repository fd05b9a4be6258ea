"""The outbox drains itself: store writes queued while the database was unreachable (results,
opt-outs, attempts) are replayed by a background task of the server, every
HUASHU_OUTBOX_DRAIN_INTERVAL_MS, with no traffic needed, so they reach the database within about
one interval of its return (the write path's own retry backs off up to 15 s and only runs when
another write comes). Replays are idempotent, so workers sharing one outbox file may both drain it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from server.metrics import Metrics

log = logging.getLogger("huashu.server.drain")


class Drainable(Protocol):
    def outbox_pending(self) -> int: ...

    def outbox_parked(self) -> int: ...

    def flush_outbox(self, wait_s: float = 0.0) -> int: ...


def drainable(store: object) -> Drainable | None:
    """The store when it has an outbox (store.sql.SqlStore), else None."""
    needed = ("outbox_pending", "outbox_parked", "flush_outbox")
    return store if all(hasattr(store, name) for name in needed) else None  # type: ignore[return-value]


async def drain_forever(store: Drainable, metrics: Metrics, interval_s: float) -> None:
    """Until cancelled: one replay attempt whenever the outbox holds something."""
    # Its own thread: a connection attempt to a dead database may block for the connect timeout.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huashu-drain")
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                pending = await loop.run_in_executor(executor, store.outbox_pending)
                if pending:
                    flushed = await loop.run_in_executor(executor, store.flush_outbox, 0.0)
                    pending = await loop.run_in_executor(executor, store.outbox_pending)
                    if flushed:
                        log.info("outbox: %d queued write(s) reached the database, %d left", flushed, pending)
                metrics.set_backlog(pending)
            except Exception:  # never let the drain die; the next round tries again
                log.exception("outbox drain failed")
            await asyncio.sleep(interval_s)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
