"""Fault injection for the crash tests (HUASHU_FAILPOINT; empty in production: a no-op).

`<point>:park` stops an opt-out turn at that point for good (the test then kills the worker with
SIGKILL while it holds the turn); `<point>:sleep=<s>` delays it (a Redis cut lands inside the turn).
`…@<text>` limits it to calls whose id contains <text>, so one worker can hold turns stopped at
every point at once.
Points, in turn order: `receipt` (nothing durable yet), `journaled` (the event is in the call's
journal, the do-not-contact list not yet written), `dnc` (both written, no lock taken), `locked`
(the call's lock held, no engine step yet), `stepped` (the engine ran and wrote the call's result
to the store; the session is not committed). Only opt-out turns stop, so the
rest of the worker's traffic runs as usual. Several specs: comma-separated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from store.phones import mask_id

log = logging.getLogger("huashu.server.failpoints")
POINTS = ("receipt", "journaled", "dnc", "locked", "stepped")
Failpoint = Callable[[str, str, bool], Awaitable[None]]


async def _none(point: str, call_id: str, opt_out: bool) -> None:
    return None


def parse(spec: str) -> Failpoint:
    """The hook for a HUASHU_FAILPOINT value (ValueError naming the problem when malformed)."""
    if not spec.strip():
        return _none
    actions: list[tuple[str, str, float | None]] = []  # (point, call id part, seconds to sleep; None: park)
    for part in spec.split(","):
        head, _, only = part.strip().partition("@")
        point, _, action = head.partition(":")
        if point not in POINTS:
            raise ValueError(f"HUASHU_FAILPOINT: unknown point {point!r} (known: {', '.join(POINTS)})")
        if action == "park":
            actions.append((point, only, None))
        elif action.startswith("sleep="):
            actions.append((point, only, float(action[len("sleep="):])))
        else:
            raise ValueError(f"HUASHU_FAILPOINT: {part!r}: the action is 'park' or 'sleep=<seconds>'")

    async def hit(point: str, call_id: str, opt_out: bool) -> None:
        if not opt_out:
            return
        found = [pause for p, only, pause in actions if p == point and only in call_id]
        if not found:
            return
        pause = found[0]
        log.warning("failpoint %s %s call %s", point, "parked" if pause is None else f"sleeps {pause}s in",
                    mask_id(call_id))
        if pause is None:
            await asyncio.Event().wait()  # until the test kills this process
        else:
            await asyncio.sleep(pause)
    return hit
