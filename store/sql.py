"""SqlStore: the CustomerStore on SQLAlchemy 2 (SQLite file by default, PostgreSQL in production)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.conversation import ConversationResult
from core.customers import Customer, CustomerRecord
from core.settings import Settings
from store import bulk, writer
from store import schema as t
from store.codec import as_aware, result_to_payload, row_to_result
from store.db import create_engine, insert, is_connectivity_error, migrate, open_lock, safe_url, translate_errors
from store.durable import DurableWrites, jsonable
from store.errors import ExternalIdConflictError, StoreError
from store.gate import (
    DO_NOT_CONTACT,
    FREQUENCY_CAP,
    GATED_CHANNELS,
    INVALID_NUMBER,
    OUTSIDE_CALLING_WINDOW,
    POWERED_OFF,
    CallingWindow,
    Caps,
    line_reason,
    zone,
)
from store.group_commit import GroupCommit
from store.outbox import OUTBOX_FILE_NAME, Outbox
from store.phones import PhoneKeys, load_keys, mask_id
from store.profiles import customer_from_row, profile_dict

log = logging.getLogger("huashu.store")
T = TypeVar("T")


class SqlStore(DurableWrites):
    """Implements core.customers.CustomerStore plus import, profiles, analytics rows and the outbox."""

    def __init__(self, settings: Settings, engine: Engine, keys: PhoneKeys, outbox: Outbox) -> None:
        self.settings = settings
        self.engine = engine
        self.keys = keys
        self.url = settings.effective_database_url
        self.tz = zone(settings.timezone)
        self.window = CallingWindow.parse(settings.calling_window)
        self.caps = Caps(settings.max_calls_per_day, settings.max_calls_per_week)
        super().__init__(outbox)
        # SQLite has one writer at a time. Threads of this process queue on a lock (woken the
        # moment it is free) instead of in SQLite's busy handler, which sleeps in growing steps
        # of up to 100 ms and, past the timeout, fails the write over to the outbox. Other
        # processes still wait in the busy handler (writes BEGIN IMMEDIATE, see store.db).
        self._sqlite = engine.dialect.name == "sqlite"
        self._writer_lock = threading.Lock()
        self._write_engine = engine.execution_options(huashu_write=True)
        self._group = GroupCommit(self._write_engine.begin, self._writer_lock, is_connectivity_error)

    # ---- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction (serialised per process on SQLite)."""
        with self._writer_lock if self._sqlite else nullcontext(), self._write_engine.begin() as conn:
            yield conn

    def _tx(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        with translate_errors(self.url), (self._writing() if write else self.engine.begin()) as conn:
            return fn(conn)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _aware(self, at: datetime) -> datetime:
        return as_aware(at, self.tz)

    def close(self) -> None:
        self.engine.dispose()
        self._outbox.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- customers ------------------------------------------------------------------------
    def get_customer(self, customer_id: str) -> Customer | None:
        return self._tx(lambda conn: self._load_customer(conn, customer_id))

    def customer_id_for_external(self, external_userid: str) -> str | None:
        """The customer whose WeCom external contact id this is (imported `external_userid`)."""
        c = t.customers.c
        return self._tx(lambda conn: conn.execute(
            sa.select(c.customer_id).where(c.external_userid == external_userid)).scalar())

    def customers_by_external(self, external_userids: Iterable[str]) -> dict[str, str]:
        """external_userid → the customer holding it, for those of these ids the store knows."""
        ids = sorted(set(external_userids))
        return self._tx(lambda conn: _external_holders(conn, ids))

    def _load_customer(self, conn: Connection, customer_id: str) -> Customer | None:
        row = self._customer_row(conn, customer_id)
        return None if row is None else self._customer_from(conn, row)

    def _customer_row(self, conn: Connection, customer_id: str) -> Any:
        return conn.execute(
            sa.select(t.customers, t.orders.c.deposit_paid, t.orders.c.deposit_product,
                      t.orders.c.deposit_amount, t.orders.c.balance_paid, t.orders.c.purchase_count,
                      t.orders.c.last_purchase_at, t.orders.c.total_spent, t.orders.c.cycle_days,
                      t.orders.c.last_product, t.orders.c.balance_amount)
            .select_from(t.customers.outerjoin(t.orders))
            .where(t.customers.c.customer_id == customer_id)
        ).first()

    def _customer_from(self, conn: Connection, row: Any) -> Customer:
        tags = frozenset(conn.execute(
            sa.select(t.tags.c.tag).where(t.tags.c.customer_id == row.customer_id).distinct()).scalars())
        return customer_from_row(row, tags, self._dnc_reason(conn, row.customer_id, row.phone_hash) is not None)

    def customers_by_id(self, customer_ids: Sequence[str], chunk: int = 500) -> dict[str, Customer]:
        """Many customers at once, for their facts (no tags, no do-not-contact lookup)."""
        out: dict[str, Customer] = {}

        def run(conn: Connection) -> None:
            o = t.orders.c
            for i in range(0, len(customer_ids), chunk):
                rows = conn.execute(
                    sa.select(t.customers, o.deposit_paid, o.deposit_product, o.deposit_amount, o.balance_paid,
                              o.purchase_count, o.last_purchase_at, o.total_spent, o.cycle_days,
                              o.last_product, o.balance_amount)
                    .select_from(t.customers.outerjoin(t.orders))
                    .where(t.customers.c.customer_id.in_(list(customer_ids[i:i + chunk]))))
                for row in rows:
                    out[row.customer_id] = customer_from_row(row, frozenset(), False)
        self._tx(run)
        return out

    def ensure_customer(self, customer_id: str) -> Customer:
        # Known customers (every imported one) are only read: no write lock on a call's start.
        known = self.get_customer(customer_id)
        if known is not None:
            return known

        def run(conn: Connection) -> Customer:
            writer.ensure_customers(conn, {customer_id}, self._now())
            customer = self._load_customer(conn, customer_id)
            assert customer is not None
            return customer
        return self._tx(run, write=True)

    def upsert_customers(self, records: Iterable[CustomerRecord], batch: int = 2000,
                         progress: Callable[[int], None] | None = None) -> int:
        """Insert or replace customers with their order summary, all in ONE transaction."""
        latest: dict[str, CustomerRecord] = {}
        for rec in records:
            latest[rec.customer_id] = rec
        items = list(latest.values())

        def run(conn: Connection) -> int:
            now = self._now()
            _no_external_conflicts(conn, items)
            for i in range(0, len(items), batch):
                writer.upsert_customers(conn, items[i:i + batch], self.keys, now)
                if progress:
                    progress(min(batch, len(items) - i))
            return len(items)
        return self._tx(run, write=True)

    def customer_profile(self, customer_id: str) -> dict[str, Any] | None:
        """What `GET /v1/customers/{id}` returns (masked phone only); None for an unknown id."""
        def run(conn: Connection) -> dict[str, Any] | None:
            customer = self._load_customer(conn, customer_id)
            if customer is None:
                return None
            row = conn.execute(sa.select(t.customers.c.last_result_at, t.customers.c.phone_hash)
                               .where(t.customers.c.customer_id == customer_id)).one()
            dnc = self._dnc_reason(conn, customer_id, row.phone_hash)
            return profile_dict(customer, row.last_result_at, dnc, self.tz)
        return self._tx(run)

    # ---- compliance gate --------------------------------------------------------------------
    def _dnc_reason(self, conn: Connection, customer_id: str, phone_hash: str | None) -> str | None:
        d = t.do_not_contact.c
        cond = d.customer_id == customer_id
        if phone_hash:
            cond = sa.or_(cond, d.phone_hash == phone_hash)
        return conn.execute(sa.select(d.reason).where(cond).limit(1)).scalar()

    def check_contact(self, customer_id: str, at: datetime, channel: str = "call",
                      conversation_id: str | None = None) -> str | None:
        """None when the contact may start at `at`, else the contract's reason code (logged).
        The attempt recorded for `conversation_id` itself (a retried start) is not counted."""
        if channel not in GATED_CHANNELS:
            return None
        at = self._aware(at)
        if self._outbox_blocks(customer_id):
            return self._refuse(customer_id, "", channel, at, DO_NOT_CONTACT)

        def run(conn: Connection) -> tuple[str | None, str]:
            c = t.customers.c
            cust = conn.execute(sa.select(c.phone_hash, c.phone_masked, c.timezone)
                                .where(c.customer_id == customer_id)).first()
            masked = cust.phone_masked if cust else ""
            dnc = self._dnc_reason(conn, customer_id, cust.phone_hash if cust else None) is not None
            return self._gate(conn, customer_id, at, channel, conversation_id, dnc,
                              cust.timezone if cust else None), masked

        reason, masked = self._tx(run)
        return None if reason is None else self._refuse(customer_id, masked, channel, at, reason)

    def check_contacts(self, contacts: Sequence[tuple[str, str | None]], at: datetime,
                       channel: str = "call") -> dict[str, str]:
        """`check_contact` for many (customer id, conversation id) at once, in one read transaction
        of a few queries (a campaign batch): customer id → reason, for those refused."""
        if channel not in GATED_CHANNELS or not contacts:
            return {}
        at = self._aware(at)
        own = dict(contacts)
        ids = sorted(own)
        out = {cid: DO_NOT_CONTACT for cid in ids if self._outbox_blocks(cid)}

        def run(conn: Connection) -> None:
            c, d, g, a = t.customers.c, t.do_not_contact.c, t.tags.c, t.contact_attempts.c
            cust = {r.customer_id: r for r in conn.execute(
                sa.select(c.customer_id, c.phone_hash, c.timezone).where(c.customer_id.in_(ids)))}
            hashes = [r.phone_hash for r in cust.values() if r.phone_hash]
            dnc_rows = conn.execute(sa.select(d.customer_id, d.phone_hash).where(
                sa.or_(d.customer_id.in_(ids), d.phone_hash.in_(hashes) if hashes else sa.false()))).all()
            dnc_ids = {r.customer_id for r in dnc_rows}
            dnc_hashes = {r.phone_hash for r in dnc_rows if r.phone_hash}
            seen: dict[str, dict[str, datetime]] = {}
            for cid, tag, last in conn.execute(
                    sa.select(g.customer_id, g.tag, sa.func.max(g.at)).where(
                        g.customer_id.in_(ids), g.tag.in_((INVALID_NUMBER, POWERED_OFF))).group_by(g.customer_id, g.tag)):
                seen.setdefault(cid, {})[tag] = last
            day, week = self.caps.windows(at)
            counts: dict[str, list[int]] = {}
            for cid, conv, n24, n7 in conn.execute(
                    sa.select(a.customer_id, a.conversation_id, sa.func.count().filter(a.at > day), sa.func.count())
                    .where(a.customer_id.in_(ids), a.channel == channel, a.at > week, a.at <= at)
                    .group_by(a.customer_id, a.conversation_id)):
                if own.get(cid) and conv == own[cid]:
                    continue  # the attempt of this contact itself (a retried start) is not counted
                n = counts.setdefault(cid, [0, 0])
                n[0] += n24
                n[1] += n7
            for cid in ids:
                if cid in out:
                    continue
                row = cust.get(cid)
                if cid in dnc_ids or (row is not None and row.phone_hash in dnc_hashes):
                    out[cid] = DO_NOT_CONTACT
                    continue
                tz = zone(row.timezone, "customer timezone") if row is not None and row.timezone else self.tz
                if not self.window.allows(at.astimezone(tz)):
                    out[cid] = OUTSIDE_CALLING_WINDOW
                    continue
                tags = seen.get(cid, {})
                line = line_reason(channel, at.astimezone(tz), tags.get(INVALID_NUMBER),
                                   as_aware(tags[POWERED_OFF], UTC) if tags.get(POWERED_OFF) else None, tz)
                if line is not None:
                    out[cid] = line
                elif self.caps.exceeded(*counts.get(cid, [0, 0])):
                    out[cid] = FREQUENCY_CAP
        self._tx(run)
        return out

    def open_contact(self, customer_id: str, at: datetime, channel: str = "call",
                     conversation_id: str | None = None) -> tuple[Customer, str | None]:
        """`ensure_customer` + `check_contact` for a contact about to start, in one read
        transaction for a known customer (the hot path of every call start)."""
        if channel not in GATED_CHANNELS or self._outbox_blocks(customer_id):
            return self.ensure_customer(customer_id), self.check_contact(customer_id, at, channel, conversation_id)
        at = self._aware(at)

        def run(conn: Connection) -> tuple[Customer | None, str | None, str | None]:
            row = self._customer_row(conn, customer_id)
            if row is None:
                return None, None, None
            customer = self._customer_from(conn, row)
            return customer, self._gate(conn, customer_id, at, channel, conversation_id,
                                        customer.do_not_contact, row.timezone), row.phone_masked

        customer, reason, masked = self._tx(run)
        if customer is None:  # not imported yet: created as a test customer (a write), then gated
            return self.ensure_customer(customer_id), self.check_contact(customer_id, at, channel, conversation_id)
        return customer, None if reason is None else self._refuse(customer_id, masked or "", channel, at, reason)

    def _outbox_blocks(self, customer_id: str) -> bool:
        """An opt-out still queued in the outbox (database was down) blocks at once."""
        if not self._pending:
            return False
        self._outbox_first()
        return self._outbox.blocks_contact(customer_id)

    def _gate(self, conn: Connection, customer_id: str, at: datetime, channel: str,
              conversation_id: str | None, dnc: bool, tz_name: str | None) -> str | None:
        """The gate's reason (None: allowed): do-not-contact, calling window, frequency caps."""
        if dnc:
            return DO_NOT_CONTACT
        tz = zone(tz_name, "customer timezone") if tz_name else self.tz
        if not self.window.allows(at.astimezone(tz)):
            return OUTSIDE_CALLING_WINDOW
        g = t.tags.c
        seen = dict(conn.execute(
            sa.select(g.tag, sa.func.max(g.at)).where(g.customer_id == customer_id, g.tag.in_((INVALID_NUMBER, POWERED_OFF)))
            .group_by(g.tag)).tuples().all())
        line = line_reason(channel, at.astimezone(tz), seen.get(INVALID_NUMBER),
                           as_aware(seen[POWERED_OFF], UTC) if seen.get(POWERED_OFF) else None, tz)
        if line is not None:
            return line
        day, week = self.caps.windows(at)
        a = t.contact_attempts.c
        same = [a.conversation_id != conversation_id] if conversation_id else []
        n24, n7 = conn.execute(
            sa.select(sa.func.count().filter(a.at > day), sa.func.count())
            .where(a.customer_id == customer_id, a.channel == channel, a.at > week, a.at <= at, *same)
        ).one()
        return FREQUENCY_CAP if self.caps.exceeded(n24, n7) else None

    def _refuse(self, customer_id: str, masked: str, channel: str, at: datetime, reason: str) -> str:
        log.info("contact refused: reason=%s customer=%s phone=%s channel=%s at=%s",
                 reason, mask_id(customer_id), masked or "-", channel, at.isoformat())
        return reason

    def record_attempt(self, customer_id: str, conversation_id: str, at: datetime,
                       channel: str = "call") -> None:
        """Counts towards the caps; idempotent on conversation_id."""
        row = {"customer_id": customer_id, "conversation_id": conversation_id, "channel": channel,
               "at": self._aware(at)}
        self._write_or_queue(lambda conn: writer.write_attempts(conn, [row]),
                             [("attempt", conversation_id, customer_id, jsonable(row), False)])

    def record_attempts(self, attempts: Sequence[tuple[str, str, datetime, str]]) -> None:
        """Many (customer_id, conversation_id, at, channel) attempts in one transaction."""
        rows: list[dict[str, Any]] = [
            {"customer_id": c, "conversation_id": k, "channel": ch, "at": self._aware(a)} for c, k, a, ch in attempts]
        if rows:
            self._write_or_queue(lambda conn: writer.write_attempts(conn, rows),
                                 [("attempt", str(r["conversation_id"]), str(r["customer_id"]), jsonable(r), False)
                                  for r in rows])

    def mark_do_not_contact(self, customer_id: str, reason: str, source: str, at: datetime) -> None:
        """Committed (to the database, or fsync'd to the outbox) before it returns."""
        row = {"customer_id": customer_id, "reason": reason[:64], "source": source[:64],
               "at": self._aware(at)}
        self._write_or_queue(lambda conn: writer.write_dnc(conn, [row]),
                             [("dnc", customer_id, customer_id, jsonable(row), True)])
        log.info("do-not-contact: customer=%s reason=%s source=%s", mask_id(customer_id), reason, source)

    def attempted(self, conversation_ids: set[str]) -> set[str]:
        """Which of these conversation/task ids already have a contact attempt."""
        return self._tx(lambda conn: bulk.attempted(conn, conversation_ids))

    def contact_blockers(self, customer_ids: list[str], at: datetime, channel: str = "call") -> dict[str, str]:
        """check_contact for many customers at once: id → reason for those that would be refused."""
        at = self._aware(at)
        return self._tx(lambda conn: bulk.contact_blockers(conn, customer_ids, at, channel, self.window,
                                                           self.caps, self.tz))

    # ---- results and outbox -------------------------------------------------------------------
    def write_result(self, result: ConversationResult) -> bool:
        """True when newly written (or newly queued while the database is down); False on a replay."""
        return self.write_results([result]) == 1

    def write_results(self, results: Sequence[ConversationResult]) -> int:
        """Write a batch in one transaction; returns how many were new. Never loses a result."""
        payloads = [result_to_payload(r, self.tz) for r in results]  # bad values raise here
        items = [("result", p["conversation_id"], p["customer_id"], p, writer.is_opt_out(p))
                 for p in payloads]
        return self._write_or_queue(lambda conn: len(writer.write_results(conn, payloads, self._now())),
                                    items)

    # ---- analytics ------------------------------------------------------------------------------
    def list_conversations(self, track: str | None = None, since: datetime | None = None,
                           customer_id: str | None = None,
                           limit: int | None = None) -> list[ConversationResult]:
        """Finished conversations, oldest first (times in HUASHU_TIMEZONE)."""
        c = t.conversations.c
        q = sa.select(t.conversations).order_by(c.ended_at, c.conversation_id)
        if track is not None:
            q = q.where(c.track == track)
        if since is not None:
            q = q.where(c.ended_at >= self._aware(since))
        if customer_id is not None:
            q = q.where(c.customer_id == customer_id)
        if limit is not None:
            q = q.limit(limit)
        return self._tx(lambda conn: [row_to_result(r, self.tz) for r in conn.execute(q)])


def open_store(settings: Settings) -> SqlStore:
    """Open (and migrate to head) the store at settings.effective_database_url; flushes the outbox."""
    url = settings.effective_database_url
    engine = create_engine(url, settings.database_timeout_s)
    try:
        with translate_errors(url), open_lock(settings.data_dir):
            migrate(engine)
            keys = load_keys(settings.phone_key, settings.data_dir)
            _check_key(engine, keys, url)
    except BaseException:
        engine.dispose()
        raise
    store = SqlStore(settings, engine, keys, Outbox(settings.data_dir / OUTBOX_FILE_NAME))
    if store._pending:
        store.flush_outbox()
    return store


def _check_key(engine: Engine, keys: PhoneKeys, url: str) -> None:
    """Refuse a phone key other than the one the database was written with (dedupe would break)."""
    m = t.store_meta.c
    with engine.begin() as conn:
        conn.execute(insert(conn, t.store_meta).on_conflict_do_nothing(index_elements=["key"]),
                     {"key": "phone_key_fingerprint", "value": keys.fingerprint})
        stored = conn.execute(sa.select(m.value).where(m.key == "phone_key_fingerprint")).scalar()
    if stored != keys.fingerprint:
        raise StoreError(
            f"the database at {safe_url(url)} was written with another phone key: set HUASHU_PHONE_KEY "
            "to the key used before (or restore <data_dir>/phone.key)")


def _external_holders(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    c = t.customers.c
    out: dict[str, str] = {}
    for i in range(0, len(ids), 2000):
        q = sa.select(c.external_userid, c.customer_id).where(c.external_userid.in_(ids[i:i + 2000]))
        out.update({str(e): str(cid) for e, cid in conn.execute(q)})
    return out


def _no_external_conflicts(conn: Connection, items: Sequence[CustomerRecord]) -> None:
    """Before any write, refuse an import that gives an external_userid another customer holds
    (the unique constraint would otherwise stop it half-way with a raw IntegrityError), unless
    that customer is in the same import with another value: the file is the truth for the
    customers it names, so a WeCom contact moves (holders cleared first, in this transaction).
    Two customers never share one."""
    wanted: dict[str, str] = {}
    conflicts: list[tuple[str, str, str]] = []
    for r in items:
        if r.external_userid:
            if r.external_userid in wanted:  # (parse_csv reports these by line; callers of the API)
                conflicts.append((r.external_userid, r.customer_id, wanted[r.external_userid]))
            wanted.setdefault(r.external_userid, r.customer_id)
    if not wanted:
        return
    named = {r.customer_id: r.external_userid for r in items}
    holders = _external_holders(conn, sorted(wanted))
    moving: list[str] = []
    for ext, cid in wanted.items():
        holder = holders.get(ext)
        if holder is None or holder == cid:
            continue
        if holder in named and named[holder] != ext:
            moving.append(holder)
        else:
            conflicts.append((ext, cid, holder))
    if conflicts:
        raise ExternalIdConflictError(sorted(conflicts))
    if moving:
        c = t.customers.c
        conn.execute(sa.update(t.customers).where(c.customer_id.in_(moving)).values(external_userid=None))
