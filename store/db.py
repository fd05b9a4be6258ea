"""Engine creation, programmatic Alembic migrations, and the few dialect differences we need."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from store.errors import StoreError, StoreUnavailableError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x6875617368  # "huash": serialises concurrent first opens on PostgreSQL

# Errors that mean "the database cannot be reached right now" (the outbox takes over), as opposed
# to errors in our data or SQL, which must surface.
CONNECTIVITY_ERRORS: tuple[type[BaseException], ...] = (exc.OperationalError, exc.InterfaceError)


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparseable URL>"


def is_connectivity_error(err: BaseException) -> bool:
    if isinstance(err, CONNECTIVITY_ERRORS):
        return True
    return isinstance(err, exc.DBAPIError) and bool(err.connection_invalidated)


def create_engine(url: str, timeout_s: float) -> Engine:
    """An engine for a SQLite file (directory created) or PostgreSQL via psycopg 3."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise StoreError(f"HUASHU_DATABASE_URL is not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "future": True}
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": timeout_s, "check_same_thread": False}
    elif backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", ""):
            raise StoreError(f"{safe_url(url)}: use the psycopg 3 driver (postgresql+psycopg://…) "
                             "in HUASHU_DATABASE_URL")
        parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs["connect_args"] = {"connect_timeout": max(1, int(timeout_s))}
        kwargs["pool_size"] = 8
    else:
        raise StoreError(f"{safe_url(url)}: only sqlite and postgresql are supported "
                         "(HUASHU_DATABASE_URL)")
    engine = sa.create_engine(parsed, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cur.execute("PRAGMA synchronous=FULL")  # an opt-out is on disk when the commit returns
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # We emit BEGIN ourselves (below): the sqlite3 module's own implicit BEGIN is deferred and
    # comes only before DML, which lets DDL run outside transactions.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    """Write transactions take SQLite's write lock up front (BEGIN IMMEDIATE): a deferred one that
    reads first and writes later fails at once with "database is locked" when another process
    wrote in between, where an immediate one waits its turn in the busy handler."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("huashu_write") else "BEGIN")


_REVISION = re.compile(r'^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$', re.M)


def script_heads() -> frozenset[str]:
    """The newest migration id(s), read from the migration files' `revision` / `down_revision`
    lines: importing alembic costs more than a whole refused `huashu simulate`."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for key, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            ids = set(re.findall(r'"([^"]+)"|\'([^\']+)\'', value))
            found = {a or b for a, b in ids}
            (revisions if key == "revision" else parents).update(found)
    return frozenset(revisions - parents)


def at_head(engine: Engine) -> bool:
    """True when the database already carries the newest migration (the common open)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return False  # a new database
        current = frozenset(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    return bool(current) and current == script_heads()


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest migration (idempotent, safe with concurrent openers)."""
    if at_head(engine):
        return
    upgrade_to_head(engine, MIGRATIONS_DIR, _MIGRATION_LOCK_ID)


def upgrade_to_head(engine: Engine, script_location: Path, lock_id: int) -> None:
    """Run one Alembic history to head inside a transaction; on PostgreSQL an advisory lock
    (`lock_id`) serialises processes that open the same database at once."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def open_lock(data_dir: Path) -> Iterator[None]:
    """Serialise first opens on this host (`huashu serve --workers N` forks N openers at once):
    SQLite runs DDL outside a transaction, so two concurrent migrations would both create the
    tables, and two processes could race to create the phone key file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / ".open.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def insert(conn: Connection, table: sa.Table) -> Any:
    """A dialect INSERT that supports ON CONFLICT DO NOTHING (both backends speak it)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Connectivity errors become StoreUnavailableError naming the (masked) URL and the setting."""
    try:
        yield
    except BaseException as err:
        if isinstance(err, exc.SQLAlchemyError) and is_connectivity_error(err):
            orig = getattr(err, "orig", None) or err
            raise StoreUnavailableError(
                f"cannot reach the database at {safe_url(url)} (HUASHU_DATABASE_URL): "
                f"{str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__}"
            ) from err
        raise
