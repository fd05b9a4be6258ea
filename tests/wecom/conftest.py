"""WeCom fixtures: the shipped reply library, a real SQLite store with known customers, an app.

Customers (all 孕妇 unless said, product DHA藻油软胶囊 by group):
- c_high / c_low / c_medium: price sensitivity high / low / medium, two purchases, active.
- c_promised: promised in a call to pay at 2026-07-09 20:00 (balance_reminder result).
- c_dnc: opted out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.conversation import ConversationResult, TurnRecord
from core.customers import CustomerRecord
from core.parse import IntentClassifier
from core.settings import Settings
from core.vocab import grade_for
from dialogue.assembly import Runtime
from dialogue.loader import Bundle, load_bundle
from huashu.runtime import build_runtime
from store.sql import SqlStore
from tests.conftest import SCRIPTS
from tests.dialogue.keywords import KeywordClassifier
from wecom.library import Library
from wecom.service import library_for

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 7, 8, 10, 0, tzinfo=TZ)  # 8 July: not in a promo period of library.yml
TOKEN = "QDG6eK-test-token"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "ww-test-corp"
AGENT_KEY = "agent-key-for-tests"


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return load_bundle(SCRIPTS)


@pytest.fixture(scope="session")
def library(bundle: Bundle) -> Library:
    return library_for(Settings(scripts_dir=str(SCRIPTS)), bundle)


@pytest.fixture(scope="session")
def persona_vars(bundle: Bundle) -> dict[str, str]:
    p = bundle.personas["xiaomei"]
    return {"agent_name": p.name, "brand": p.brand, **p.variables}


@pytest.fixture
def wsettings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", phone_key="wecom-tests",
                    wecom_token=TOKEN, wecom_aes_key=AES_KEY, wecom_corp_id=CORP_ID, agent_keys=AGENT_KEY)


def customers() -> list[CustomerRecord]:
    base = {"persona_group": "孕妇", "purchase_count": 2, "last_purchase_at": date(2026, 6, 25),
            "total_spent": 536.0}
    return [
        CustomerRecord("c_high", "13800000001", name="王秀芳", price_sensitivity="high", **base),  # type: ignore[arg-type]
        CustomerRecord("c_low", "13800000002", name="李静", price_sensitivity="low", **base),  # type: ignore[arg-type]
        CustomerRecord("c_medium", "13800000003", name="张敏", price_sensitivity="medium", **base),  # type: ignore[arg-type]
        CustomerRecord("c_promised", "13800000004", name="刘娟", price_sensitivity="medium",
                       persona_group="白领女性", deposit_paid=True, deposit_product="玻尿酸水光精华",
                       deposit_amount=50.0, purchase_count=1, last_purchase_at=date(2026, 6, 1)),
        CustomerRecord("c_dnc", "13800000005", name="陈艳", price_sensitivity="high", **base),  # type: ignore[arg-type]
    ]


def call_result(conversation_id: str, customer_id: str, outcome: str, ended_at: datetime,
                slots: dict[str, object] | None = None, track: str = "balance_reminder") -> ConversationResult:
    tags = (outcome,)
    return ConversationResult(
        conversation_id=conversation_id, customer_id=customer_id, track=track, persona="xiaomei",
        channel="call", variant="", started_at=ended_at - timedelta(minutes=1), ended_at=ended_at,
        outcome=outcome, grade=grade_for(outcome, set(tags)), tags=tags, slots=slots or {},
        node_path=("opening",), turns=(TurnRecord(None, "start", None, None, "opening", (), ()),), ended_by="bot")


def seed_store(store: SqlStore) -> None:
    store.upsert_customers(customers())
    store.write_result(call_result("call-promised", "c_promised", "promised_to_pay", NOW - timedelta(hours=20),
                                   {"promised_pay_time": "2026-07-09T20:00:00+08:00"}))
    store.write_result(call_result("call-dnc", "c_dnc", "do_not_contact", NOW - timedelta(days=2)))


@pytest.fixture
def store(wsettings: Settings) -> Iterator[SqlStore]:
    from store import open_store

    st = open_store(wsettings)
    seed_store(st)
    yield st
    st.close()


def _runtime(settings: Settings, classifier: IntentClassifier) -> Iterator[Runtime]:
    rt = build_runtime(settings, classifier=classifier)
    yield rt
    if rt.store is not None:
        rt.store.close()


@pytest.fixture
def kw_runtime(wsettings: Settings, store: SqlStore) -> Iterator[Runtime]:
    """Runtime (own store on the seeded database) with the keyword stand-in classifier: plumbing tests."""
    yield from _runtime(wsettings, KeywordClassifier())


@pytest.fixture
def real_runtime(wsettings: Settings, store: SqlStore, classifier: IntentClassifier) -> Iterator[Runtime]:
    """Runtime with the real NLU model (tests/conftest.py trains it once per session)."""
    yield from _runtime(wsettings, classifier)
