"""Store fixtures: the same tests run on SQLite and on PostgreSQL (a database per test session).

PostgreSQL is the local server (127.0.0.1:5432, user postgres, trust auth). Unreachable → the
PostgreSQL half is skipped, or fails when HUASHU_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.settings import Settings
from tests.conftest import skip_or_fail
from tests.store.proxy import TcpProxy

PG_HOST = os.environ.get("HUASHU_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HUASHU_TEST_PG_PORT", "5432"))
PG_ADMIN = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
PHONE_KEY = "tests-phone-key"
TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 6, 1)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=TZ)  # the frozen clock of the store tests
TABLES = ("contact_attempts", "do_not_contact", "conversations", "tags", "orders", "customers")


def _pg_reachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} unreachable: {str(exc).strip().splitlines()[0]}"


@contextmanager
def temporary_pg_database(prefix: str) -> Iterator[str]:
    """A new, uniquely named PostgreSQL database (skip, or fail in CI, when the server is away);
    dropped afterwards."""
    problem = _pg_reachable()
    if problem:
        skip_or_fail(problem)
    import sqlalchemy as sa

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this test session."""
    with temporary_pg_database("huashu_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _clean_pg(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass('public.customers')")).scalar()
        if exists:
            conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The database of this test: a fresh SQLite file, or the session's PostgreSQL emptied."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'huashu.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    _clean_pg(url)
    return url


def make_settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "cache_dir": tmp_path / "cache",
                                 "database_url": url, "phone_key": PHONE_KEY, "database_timeout_s": 1.0}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def store_settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def store(store_settings: Settings) -> Iterator[object]:
    from store import open_store

    st = open_store(store_settings)
    yield st
    st.close()


@dataclass
class Cuttable:
    """A store whose database connection the test can cut and restore."""

    store: object
    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture
def cuttable(backend: str, tmp_path: Path, db_url: str) -> Iterator[Cuttable]:
    """PostgreSQL: the store talks through a TcpProxy that the test cuts. SQLite: another
    connection holds an exclusive lock, so every write fails as with an unreachable database."""
    from store import open_store

    if backend == "postgresql":
        from sqlalchemy.engine import make_url

        url = make_url(db_url)
        proxy = TcpProxy(url.host or PG_HOST, url.port or PG_PORT)
        st = open_store(make_settings(tmp_path, url.set(port=proxy.port).render_as_string(False)))
        yield Cuttable(st, proxy.cut, proxy.resume)
        st.close()
        proxy.close()
        return
    st = open_store(make_settings(tmp_path, db_url))
    path = db_url.removeprefix("sqlite:///")
    holder: dict[str, sqlite3.Connection] = {}

    def cut() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        holder["conn"] = conn

    def restore() -> None:
        conn = holder.pop("conn", None)
        if conn is not None:
            conn.execute("ROLLBACK")
            conn.close()

    yield Cuttable(st, cut, restore)
    restore()
    st.close()
