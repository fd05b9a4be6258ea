"""Touches in the store: registering runs, planning steps into touch rows, claiming a touch with a
conditional UPDATE (the exactly-once point), finishing it, and the per-step status counts.

Every write is one transaction; two runners planning the same step race on the campaign_steps
row (only the one that inserts it plans), two workers claiming the same touch race on the
UPDATE's WHERE (only one sees a row change).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign import tables as ct
from campaign.db import migrate
from campaign.spec import PAID_EVENTS, RunCampaign, from_json
from store.db import insert, open_lock, translate_errors
from store.errors import StoreError
from store.writer import write_attempts

if TYPE_CHECKING:
    from store.sql import SqlStore

T = TypeVar("T")
TOUCH = ct.touches.c
RUN = ct.campaign_runs.c
RUN_STATUSES = ("running", "paused", "stopped")
DONE = "done"
CHUNK = 2000
TOUCH_COLUMNS = (TOUCH.id, TOUCH.campaign, TOUCH.step, TOUCH.customer_id, TOUCH.channel, TOUCH.branch, TOUCH.state,
                 TOUCH.status, TOUCH.reason, TOUCH.attempts, TOUCH.due_at, TOUCH.claim, TOUCH.at)
SPEC_TTL_S = 5.0  # a run's spec is re-read at most this often per process (status is checked on every claim)
IN_FLIGHT = ("sending", "waiting")  # a call placed (or being placed) whose result has not come back


class TrunkFull(Exception):
    """The trunk (or the campaign's share of it) has as many calls in flight as it allows."""


@dataclass(frozen=True, slots=True)
class TrunkLimit:
    """Admission for one call: at most `limit` calls in flight on trunk `name` (all campaigns), and
    at most `campaign_limit` of this campaign's own, when set."""

    name: str
    limit: int
    campaign_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Touch:
    id: int
    campaign: str
    step: str
    customer_id: str
    channel: str
    branch: str
    state: str
    status: str | None
    reason: str
    attempts: int
    due_at: datetime
    claim: str | None
    at: datetime | None

    @property
    def key(self) -> str:
        """The idempotency key: the touch's task id (+ #n for the n-th attempt of a call; a message
        resent after its worker died keeps its key, so the provider drops the copy)."""
        base = self.task_id
        return base if self.attempts <= 1 or self.channel != "call" else f"{base}#{self.attempts}"

    @property
    def task_id(self) -> str:
        return f"{self.campaign}:{self.step}:{self.customer_id}"


class Touches:
    """The campaign tables over the store's engine."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._specs: dict[tuple[str, Any], RunCampaign] = {}
        self._recent: dict[str, tuple[float, tuple[RunCampaign, str, datetime]]] = {}

    @classmethod
    def open(cls, store: SqlStore) -> Touches:
        with translate_errors(store.url), open_lock(store.settings.data_dir):
            migrate(store.engine)
        return cls(store)

    def _tx(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        return self.store._tx(fn, write=write)

    # ---- runs ----------------------------------------------------------------------------------
    def register(self, campaign: RunCampaign, now: datetime, source: str = "") -> None:
        """A new run starting at `now` (a stopped run of the same name is replaced)."""
        def run(conn: Connection) -> None:
            status = conn.execute(sa.select(RUN.status).where(RUN.name == campaign.name)).scalar()
            if status in ("running", "paused"):
                raise StoreError(f"campaign {campaign.name} is already {status} "
                                 f"(huashu campaign stop {campaign.name} first)")
            if status is not None:
                for table in (ct.touches, ct.campaign_steps):
                    conn.execute(table.delete().where(table.c.campaign == campaign.name))
                conn.execute(ct.campaign_runs.delete().where(RUN.name == campaign.name))
            conn.execute(ct.campaign_runs.insert().values(
                name=campaign.name, status="running", spec=campaign.to_json(), source=source,
                started_at=now, updated_at=now))
        self._tx(run, write=True)

    def set_status(self, name: str, status: str, now: datetime) -> str:
        """running/paused/stopped; returns the previous status. A stopped run stays stopped."""
        if status not in RUN_STATUSES:
            raise StoreError(f"status must be one of {RUN_STATUSES}")

        def run(conn: Connection) -> str:
            old = conn.execute(sa.select(RUN.status).where(RUN.name == name)).scalar()
            if old is None:
                raise StoreError(f"no campaign run named {name!r} (huashu campaign start FILE)")
            if old == "stopped" and status != "stopped":
                raise StoreError(f"campaign {name} was stopped; start it again with huashu campaign start")
            conn.execute(ct.campaign_runs.update().where(RUN.name == name).values(status=status, updated_at=now))
            return str(old)
        return self._tx(run, write=True)

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(RUN.name, RUN.status, RUN.started_at, RUN.updated_at).order_by(RUN.name)
        if status is not None:
            q = q.where(RUN.status == status)
        return self._tx(lambda conn: [dict(r._mapping) for r in conn.execute(q)])

    def campaign(self, name: str, fresh: bool = True) -> tuple[RunCampaign, str, datetime]:
        """The run's campaign, its status and start; `fresh=False` may answer from a cache a few
        seconds old (the worker's path: a claim already checked that the run is running)."""
        cached = self._recent.get(name)
        if not fresh and cached is not None and time.monotonic() - cached[0] < SPEC_TTL_S:
            return cached[1]
        row = self._tx(lambda conn: conn.execute(
            sa.select(RUN.spec, RUN.status, RUN.started_at).where(RUN.name == name)).first())
        if row is None:
            raise StoreError(f"no campaign run named {name!r} (huashu campaign start FILE)")
        key = (name, row.started_at)
        if key not in self._specs:
            self._specs[key] = from_json(row.spec)
        out = (self._specs[key], str(row.status), row.started_at)
        self._recent[name] = (time.monotonic(), out)
        return out

    # ---- planning --------------------------------------------------------------------------------
    def claim_step(self, campaign: str, step: str, now: datetime, skipped: dict[str, int],
                   rows: Sequence[dict[str, Any]]) -> bool:
        """Plan a step once: insert its marker row and its touches in one transaction. False when
        another runner planned it first (nothing written)."""
        def run(conn: Connection) -> bool:
            # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT through SQLAlchemy
            ins = (insert(conn, ct.campaign_steps).on_conflict_do_nothing(index_elements=["campaign", "step"])
                   .returning(ct.campaign_steps.c.step))
            if conn.execute(ins, {"campaign": campaign, "step": step, "planned_at": now,
                                  "skipped": skipped}).first() is None:
                return False
            self._insert_touches(conn, rows)
            return True
        return self._tx(run, write=True)

    def planned_steps(self, campaign: str) -> set[str]:
        c = ct.campaign_steps.c
        return set(self._tx(lambda conn: conn.execute(
            sa.select(c.step).where(c.campaign == campaign)).scalars().all()))

    def add_touches(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert touches that do not exist yet (event-triggered steps); returns how many were new."""
        return self._tx(lambda conn: self._insert_touches(conn, rows), write=True)

    @staticmethod
    def _insert_touches(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        n = 0
        stmt = (insert(conn, ct.touches).on_conflict_do_nothing(index_elements=["campaign", "step", "customer_id"])
                .returning(TOUCH.id))
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i:i + CHUNK]
            if chunk:
                n += len(conn.execute(stmt, list(chunk)).all())
        return n

    def sent_customers(self, campaign: str, step: str, customer_ids: Iterable[str]) -> set[str]:
        """Of these customers, those whose touch of `step` reached them (sent or answered)."""
        ids = sorted(set(customer_ids))
        out: set[str] = set()

        def run(conn: Connection) -> None:
            for i in range(0, len(ids), CHUNK):
                out.update(conn.execute(sa.select(TOUCH.customer_id).where(
                    TOUCH.campaign == campaign, TOUCH.step == step, TOUCH.status.in_(("sent", "answered")),
                    TOUCH.customer_id.in_(ids[i:i + CHUNK]))).scalars())
        self._tx(run)
        return out

    # ---- dispatch ----------------------------------------------------------------------------------
    def due_ids(self, now: datetime, limit: int = 10_000, skip_pending: Sequence[str] = ()) -> list[int]:
        """Touches of running campaigns that a worker may claim now: pending and due, or claimed by
        a worker whose lease ran out (killed mid-dispatch). Pending touches of the `skip_pending`
        channels are left to `due_pending` (the scheduler hands those out by budget)."""
        live = sa.select(RUN.name).where(RUN.status == "running")
        pending = TOUCH.state == "pending"
        if skip_pending:
            pending = sa.and_(pending, TOUCH.channel.not_in(list(skip_pending)))
        q = (sa.select(TOUCH.id).where(TOUCH.campaign.in_(live), TOUCH.due_at <= now, sa.or_(
            pending, sa.and_(TOUCH.state.in_(("claimed", "sending")), TOUCH.claimed_until < now)))
            .order_by(TOUCH.due_at, TOUCH.id).limit(limit))
        return list(self._tx(lambda conn: conn.execute(q).scalars().all()))

    def due_pending(self, now: datetime, campaign: str, channel: str, limit: int) -> list[int]:
        """The first `limit` pending touches of one campaign and channel that are due."""
        q = (sa.select(TOUCH.id).where(TOUCH.campaign == campaign, TOUCH.channel == channel,
                                       TOUCH.state == "pending", TOUCH.due_at <= now)
             .order_by(TOUCH.due_at, TOUCH.id).limit(limit))
        return list(self._tx(lambda conn: conn.execute(q).scalars().all()))

    def claim(self, touch_id: int, now: datetime, lease: timedelta) -> Touch | None:
        """The conditional UPDATE that makes dispatch exactly-once: a touch is ours only if this
        statement changed its row. A lease that ran out (its worker died) may be taken over."""
        token = uuid.uuid4().hex
        live = sa.select(RUN.name).where(RUN.status == "running")

        def run(conn: Connection) -> Touch | None:
            row = conn.execute(ct.touches.update().where(
                TOUCH.id == touch_id, TOUCH.due_at <= now, TOUCH.campaign.in_(live),
                sa.or_(TOUCH.state == "pending",
                       sa.and_(TOUCH.state.in_(("claimed", "sending")), TOUCH.claimed_until < now)))
                .values(state=sa.case((TOUCH.state == "sending", "sending"), else_="claimed"),
                        claim=token, claimed_until=now + lease)
                .returning(*TOUCH_COLUMNS)).first()
            return None if row is None else Touch(*row)
        return self._tx(run, write=True)

    def claim_many(self, touch_ids: Sequence[int], now: datetime, lease: timedelta) -> list[Touch]:
        """`claim` for a batch in one statement (one token): the touches whose row this changed."""
        token = uuid.uuid4().hex
        live = sa.select(RUN.name).where(RUN.status == "running")

        def run(conn: Connection) -> list[Touch]:
            rows = conn.execute(ct.touches.update().where(
                TOUCH.id.in_(list(touch_ids)), TOUCH.due_at <= now, TOUCH.campaign.in_(live),
                sa.or_(TOUCH.state == "pending",
                       sa.and_(TOUCH.state.in_(("claimed", "sending")), TOUCH.claimed_until < now)))
                .values(state=sa.case((TOUCH.state == "sending", "sending"), else_="claimed"),
                        claim=token, claimed_until=now + lease)
                .returning(*TOUCH_COLUMNS)).all()
            return [Touch(*r) for r in rows]
        return self._tx(run, write=True)

    def begin_send_many(self, touches: Sequence[Touch], now: datetime) -> list[Touch]:
        """`begin_send` for claimed touches of one claim, with their attempt rows, in one commit."""
        if not touches:
            return []
        token = touches[0].claim

        def run(conn: Connection) -> list[Touch]:
            rows = conn.execute(ct.touches.update().where(
                TOUCH.id.in_([x.id for x in touches]), TOUCH.claim == token, TOUCH.state == "claimed")
                .values(state="sending", attempts=TOUCH.attempts + 1, at=now).returning(*TOUCH_COLUMNS)).all()
            fresh = [Touch(*r) for r in rows]
            if fresh:
                conn.execute(ct.touch_attempts.insert(), [
                    {"touch_id": x.id, "attempt": x.attempts, "customer_id": x.customer_id, "channel": x.channel,
                     "at": now} for x in fresh])
            return fresh
        return self._tx(run, write=True)

    def release_many(self, touches: Sequence[Touch], reason: str, due_at: datetime) -> int:
        """Claimed touches of one claim back to pending, due at `due_at` (a pacing limit was full:
        its next bucket), in one commit."""
        if not touches:
            return 0
        return self._tx(lambda conn: len(conn.execute(ct.touches.update().where(
            TOUCH.id.in_([x.id for x in touches]), TOUCH.claim == touches[0].claim, TOUCH.state == "claimed")
            .values(state="pending", status=None, reason=reason[:80], claim=None, claimed_until=None, due_at=due_at)
            .returning(TOUCH.id)).all()), write=True)

    def sent_many(self, touches: Sequence[Touch], now: datetime) -> int:
        """Messages the provider accepted: done/sent, attempt results and contact attempts, one commit."""
        if not touches:
            return 0
        a = ct.touch_attempts.c

        def run(conn: Connection) -> int:
            ids = [x.id for x in touches]
            done = conn.execute(ct.touches.update().where(
                TOUCH.id.in_(ids), TOUCH.claim == touches[0].claim, TOUCH.state == "sending")
                .values(state=DONE, status="sent", reason="", claim=None, claimed_until=None, at=now)
                .returning(TOUCH.id)).scalars().all()
            mine = set(done)
            if mine:  # one executemany for the batch
                conn.execute(ct.touch_attempts.update().where(
                    a.touch_id == sa.bindparam("tid"), a.attempt == sa.bindparam("n")).values(result="sent"),
                    [{"tid": x.id, "n": x.attempts} for x in touches if x.id in mine])
            rows = [{"customer_id": x.customer_id, "conversation_id": x.task_id, "channel": x.channel, "at": now}
                    for x in touches if x.id in mine]
            if rows:
                write_attempts(conn, rows)
            return len(mine)
        return self._tx(run, write=True)

    def get(self, touch_id: int) -> Touch | None:
        return self._tx(lambda conn: self._load(conn, touch_id))

    @staticmethod
    def _load(conn: Connection, touch_id: int) -> Touch | None:
        r = conn.execute(sa.select(*TOUCH_COLUMNS).where(TOUCH.id == touch_id)).first()
        return None if r is None else Touch(*r)  # type: ignore[call-arg]

    def begin_send(self, touch: Touch, now: datetime, trunk: TrunkLimit | None = None,
                   clock: Callable[[], datetime] | None = None) -> Touch | None:
        """Mark the attempt as being sent (committed before the provider hears of it). A touch
        that was already `sending` (its worker died) keeps its attempt number and key.

        With `trunk` (calls), admission and the move to `sending` are one transaction serialised
        per trunk (an advisory lock on PostgreSQL, SQLite's single writer): the calls in flight on
        the trunk, all campaigns and workers together, never exceed its limit. Raises TrunkFull.
        The attempt's time is read from `clock` once admitted (the invariant is checked on it)."""
        def run(conn: Connection) -> Touch | None:
            if touch.state == "sending":
                return touch
            at = now
            if trunk is not None:
                _lock_trunk(conn, trunk.name)
                at = clock() if clock is not None else now
                busy = conn.execute(sa.select(sa.func.count()).where(
                    TOUCH.trunk == trunk.name, TOUCH.state.in_(IN_FLIGHT))).scalar() or 0
                if busy >= trunk.limit:
                    raise TrunkFull(f"trunk {trunk.name}: {busy} calls in flight")
                if trunk.campaign_limit is not None and (conn.execute(sa.select(sa.func.count()).where(
                        TOUCH.trunk == trunk.name, TOUCH.campaign == touch.campaign,
                        TOUCH.state.in_(IN_FLIGHT))).scalar() or 0) >= trunk.campaign_limit:
                    raise TrunkFull(f"trunk {trunk.name}: campaign {touch.campaign} has its share in flight")
            name = trunk.name if trunk is not None else None
            n = conn.execute(ct.touches.update().where(TOUCH.id == touch.id, TOUCH.claim == touch.claim,
                                                       TOUCH.state == "claimed")
                             .values(state="sending", attempts=TOUCH.attempts + 1, at=at, trunk=name)).rowcount
            if n != 1:
                return None
            fresh = self._load(conn, touch.id)
            assert fresh is not None
            conn.execute(ct.touch_attempts.insert().values(
                touch_id=touch.id, attempt=fresh.attempts, customer_id=touch.customer_id,
                channel=touch.channel, at=at, trunk=name))
            return fresh
        return self._tx(run, write=True)

    def in_flight(self, trunk: str, campaign: str | None = None) -> int:
        """Calls in flight on a trunk (of one campaign, or all)."""
        q = sa.select(sa.func.count()).where(TOUCH.trunk == trunk, TOUCH.state.in_(IN_FLIGHT))
        if campaign is not None:
            q = q.where(TOUCH.campaign == campaign)
        return int(self._tx(lambda conn: conn.execute(q).scalar()) or 0)

    def finish(self, touch: Touch, *, state: str = DONE, status: str | None, reason: str = "",
               at: datetime | None = None, due_at: datetime | None = None, answered: bool | None = None,
               result: str | None = None, any_claim: bool = False,
               contact: dict[str, Any] | None = None) -> bool:
        """Move a touch on (done, waiting for a call result, or pending again for a retry or the
        next calling window). Only the claim holder may, unless `any_claim` (a result event).
        Leaving `sending`/`waiting` ends the open attempt (`ended_at`: `at`, else the wall clock)."""
        values: dict[str, Any] = {"state": state, "status": status, "reason": reason[:80]}
        if state != "claimed":
            values.update(claim=None, claimed_until=None)
        if at is not None:
            values["at"] = at
        if due_at is not None:
            values["due_at"] = due_at
        if answered is not None:
            values["answered"] = answered

        def run(conn: Connection) -> bool:
            cond = [TOUCH.id == touch.id]
            if any_claim:  # a call result: whether its worker has marked the call placed yet or not
                cond += [TOUCH.state.in_(("sending", "waiting")), TOUCH.attempts == touch.attempts]
            else:
                cond.append(TOUCH.claim == touch.claim)
            n = conn.execute(ct.touches.update().where(*cond).values(**values)).rowcount
            if n == 1 and state not in IN_FLIGHT:
                a = ct.touch_attempts.c
                conn.execute(ct.touch_attempts.update().where(a.touch_id == touch.id, a.ended_at.is_(None))
                             .values(ended_at=at or datetime.now(UTC)))
            if n == 1 and contact is not None:  # counts towards the frequency caps, in the same commit
                write_attempts(conn, [contact])
            if n == 1 and result is not None:
                a = ct.touch_attempts.c
                conn.execute(ct.touch_attempts.update().where(a.touch_id == touch.id, a.attempt == touch.attempts)
                             .values(result=result, reason=reason[:80]))
            return n == 1
        return self._tx(run, write=True)

    def by_key(self, key: str) -> Touch | None:
        """The touch of an idempotency key / call id (`campaign:step:customer[#n]`)."""
        base = key.split("#", 1)[0]
        parts = base.split(":")
        if len(parts) < 3:
            return None
        campaign, step, customer = parts[0], parts[1], ":".join(parts[2:])
        row = self._tx(lambda conn: conn.execute(sa.select(*TOUCH_COLUMNS).where(
            TOUCH.campaign == campaign, TOUCH.step == step, TOUCH.customer_id == customer)).first())
        return None if row is None else Touch(*row)  # type: ignore[call-arg]

    def call_attempts(self, customer_id: str, since: datetime) -> list[datetime]:
        """Times of call attempts to this callee since `since` (carrier rules count attempts)."""
        a = ct.touch_attempts.c
        return list(self._tx(lambda conn: conn.execute(
            sa.select(a.at).where(a.customer_id == customer_id, a.channel == "call", a.at > since)
            .order_by(a.at)).scalars().all()))

    def next_due_at(self) -> datetime | None:
        """The earliest due time of a pending touch of a running campaign."""
        live = sa.select(RUN.name).where(RUN.status == "running")
        return self._tx(lambda conn: conn.execute(sa.select(sa.func.min(TOUCH.due_at)).where(
            TOUCH.campaign.in_(live), TOUCH.state == "pending")).scalar())

    def stale_waiting(self, before: datetime) -> list[int]:
        """Calls placed before `before` whose result never came back."""
        return list(self._tx(lambda conn: conn.execute(sa.select(TOUCH.id).where(
            TOUCH.state == "waiting", TOUCH.at < before)).scalars().all()))

    # ---- status ------------------------------------------------------------------------------------
    def status(self, name: str, now: datetime) -> dict[str, Any]:
        """Per step: due (not done yet, due by now), scheduled (later), sent, answered, converted,
        failed, skipped by reason; per branch the same counts."""
        camp, run_status, started = self.campaign(name)
        e = ct.campaign_events.c
        paid_after = sa.exists().where(e.customer_id == TOUCH.customer_id, e.type.in_(PAID_EVENTS),
                                       e.at >= TOUCH.at)
        inner = (sa.select(TOUCH.step, TOUCH.branch, TOUCH.state, TOUCH.status, TOUCH.reason,
                           sa.case((TOUCH.due_at <= now, 1), else_=0).label("is_due"),
                           sa.case((paid_after, 1), else_=0).label("converted"))
                 .where(TOUCH.campaign == name).subquery())
        cols = [inner.c.step, inner.c.branch, inner.c.state, inner.c.status, inner.c.reason, inner.c.is_due,
                inner.c.converted]
        q = sa.select(*cols, sa.func.count()).group_by(*cols)
        c = ct.campaign_steps.c
        rows, planned = self._tx(lambda conn: (conn.execute(q).all(), {
            r.step: (r.planned_at, r.skipped) for r in conn.execute(
                sa.select(c.step, c.planned_at, c.skipped).where(c.campaign == name))}))
        steps: dict[str, dict[str, Any]] = {}
        for step in camp.steps:
            at, skipped = planned.get(step.id, (None, {}))
            steps[step.id] = _empty(step.spec.channel, at.astimezone(self.store.tz) if at else None,
                                    step.spec.trigger, dict(skipped))
        for row in rows:
            step_id, branch, state, status, reason, is_due, converted, n = tuple(row)
            doc = steps.setdefault(step_id, _empty("sms", None, None, {}))
            _count(doc, state, status, reason, bool(is_due), bool(converted), n)
            if branch:
                b = doc["branches"].setdefault(branch, _empty(doc["channel"], None, None, {}))
                _count(b, state, status, reason, bool(is_due), bool(converted), n)
                for k in ("channel", "planned_at", "trigger", "branches"):
                    b.pop(k, None)
        return {"campaign": name, "title": camp.file.title, "status": run_status,
                "started_at": started.astimezone(self.store.tz).isoformat(),
                "at": now.astimezone(self.store.tz).isoformat(), "steps": [
                    {"step": k, **v} for k, v in steps.items()]}

    def touch_lines(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every finished touch as a CONTRACT touch line (campaign, step, customer_id, channel, at, status,
        reason); touches still pending or in flight have no line yet (`status` counts them)."""
        q = sa.select(TOUCH.campaign, TOUCH.step, TOUCH.customer_id, TOUCH.channel, TOUCH.at, TOUCH.due_at,
                      TOUCH.status, TOUCH.state, TOUCH.reason).where(TOUCH.state == DONE).order_by(TOUCH.id)
        if name is not None:
            q = q.where(TOUCH.campaign == name)
        tz = self.store.tz
        return [{"campaign": r.campaign, "step": r.step, "customer_id": r.customer_id, "channel": r.channel,
                 "at": (r.at or r.due_at).astimezone(tz).isoformat(),
                 "status": r.status, "reason": r.reason}
                for r in self._tx(lambda conn: conn.execute(q).all())]

    def attempts(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every provider attempt (for invariant checks and carrier rules)."""
        a = ct.touch_attempts.c
        q = (sa.select(a.touch_id, a.attempt, a.customer_id, a.channel, a.at, a.result, a.reason, a.trunk,
                       a.ended_at, TOUCH.campaign, TOUCH.step)
             .select_from(ct.touch_attempts.join(ct.touches, TOUCH.id == a.touch_id)).order_by(a.id))
        if name is not None:
            q = q.where(TOUCH.campaign == name)
        return [dict(r._mapping) for r in self._tx(lambda conn: conn.execute(q).all())]

    def counts_by_state(self, name: str) -> Counter[str]:
        rows = self._tx(lambda conn: conn.execute(sa.select(TOUCH.state, sa.func.count()).where(
            TOUCH.campaign == name).group_by(TOUCH.state)).all())
        return Counter({str(s): int(n) for s, n in rows})


def _lock_trunk(conn: Connection, trunk: str) -> None:
    """Serialise admissions on one trunk until the transaction ends. SQLite needs nothing: a write
    transaction already holds the database's only write lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(f"huashu-trunk:{trunk}".encode(), digest_size=8).digest(), "big",
                             signed=True)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def _empty(channel: str, planned_at: datetime | None, trigger: str | None, skipped: dict[str, int]) -> dict[str, Any]:
    return {"channel": channel, "planned_at": planned_at.isoformat() if planned_at else None, "trigger": trigger,
            "touches": 0, "due": 0, "scheduled": 0, "in_flight": 0, "sent": 0, "answered": 0, "converted": 0,
            "failed": 0, "unreachable": 0, "skipped": dict(skipped), "branches": {}}


def _count(doc: dict[str, Any], state: str, status: str | None, reason: str, is_due: bool, converted: bool,
           n: int) -> None:
    doc["touches"] += n
    if state == "pending":
        doc["due" if is_due else "scheduled"] += n
    elif state != DONE:
        doc["in_flight"] += n
    elif status == "skipped":
        doc["skipped"][reason or "unknown"] = doc["skipped"].get(reason or "unknown", 0) + n
    elif status in ("sent", "answered"):
        doc["sent"] += n
        doc["answered"] += n if status == "answered" else 0
        doc["converted"] += n if converted else 0
    elif status == "unreachable":
        doc["unreachable"] += n
    else:  # failed, busy, no_answer after the last retry
        doc["failed"] += n
