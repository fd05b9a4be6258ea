"""Campaign fixtures: a store on SQLite or on a fresh PostgreSQL database, customers, test doubles
for the providers (a carrier and an SMS/WeCom provider cannot run here: shaped like our webhook
contract, they drop a repeated idempotency key as real providers do)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaign.channels import CallRequest
from core.customers import CustomerRecord
from core.settings import Settings
from store.providers import OutboundMessage
from tests.store.conftest import temporary_pg_database

TZ = ZoneInfo("Asia/Shanghai")
REDIS_URL = os.environ.get("HUASHU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HUASHU_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A new PostgreSQL database for one test (dropped afterwards)."""
    with temporary_pg_database("huashu_camp") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'huashu.sqlite3'}"
    return str(request.getfixturevalue("fresh_pg"))


def make_settings(tmp_path: Path, url: str, **extra: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "cache_dir": tmp_path / "cache",
                                 "database_url": url, "phone_key": "tests-phone-key", "database_timeout_s": 5.0}
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path, db_url: str) -> Iterator[object]:
    from store import open_store

    st = open_store(make_settings(tmp_path, db_url))
    yield st
    st.close()


def customers(n: int, **fields: object) -> list[CustomerRecord]:
    return [CustomerRecord(customer_id=f"c{i:04d}", phone=f"1380000{i:04d}", name=f"客户{i}",
                           **fields) for i in range(n)]  # type: ignore[arg-type]


@dataclass
class Recorder:
    """An SMS/WeCom provider and a call gateway in one: records every request, accepts a key once."""

    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # customer id → call (result, reason)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (channel, key), repeats included
    include_phone: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, messages: Sequence[OutboundMessage]) -> set[str]:
        with self._lock:
            self.requests.extend((m.channel, m.task_id) for m in messages)
        return {m.task_id for m in messages}

    def place(self, call: CallRequest) -> None:
        with self._lock:
            self.requests.append(("call", call.call_id))

    def delivered(self) -> set[tuple[str, str]]:
        return set(self.requests)
