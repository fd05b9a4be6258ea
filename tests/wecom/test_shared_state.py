"""WeCom with `--workers N` on Redis: every worker sees the same inbox, and a callback that WeCom
redelivers to another worker is still processed once (real Redis, two apps on one database)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from core.shared_kv import RedisOnce, RedisRecent, SessionsUnavailable
from huashu.app import create_app
from huashu.runtime import build_runtime
from store.sql import SqlStore
from tests.dialogue.keywords import KeywordClassifier
from tests.server.conftest import redis_prefix, redis_url  # noqa: F401  (fixtures)
from tests.wecom.test_api import AUTH, signed_post, text_message


@pytest.fixture
def workers(wsettings: Settings, store: SqlStore, redis_url: str,  # noqa: F811
            redis_prefix: str) -> Iterator[list[TestClient]]:  # noqa: F811
    """Two server apps (as two uvicorn workers) on one SQLite database and one Redis prefix."""
    settings = wsettings.model_copy(update={"redis_url": redis_url, "redis_prefix": redis_prefix})
    with ExitStack() as stack:
        clients = []
        for _ in range(2):
            rt = build_runtime(settings, classifier=KeywordClassifier())
            stack.callback(rt.store.close)  # type: ignore[union-attr]
            clients.append(stack.enter_context(TestClient(create_app(settings, runtime=rt))))
        yield clients


def test_a_message_received_by_one_worker_is_in_every_workers_sidebar(workers: list[TestClient]) -> None:
    a, b = workers
    assert signed_post(a, text_message("c_medium", "这个多少钱", "9101")).status_code == 200
    assert signed_post(b, text_message("c_medium", "能便宜点吗", "9102")).status_code == 200
    for client in (a, b):
        messages = client.get("/v1/wecom/customers/c_medium", headers=AUTH).json()["messages"]
        assert [m["text"] for m in messages] == ["这个多少钱", "能便宜点吗"]
        assert messages[0]["intent"] == "ask_price" and messages[0]["role"] == "customer"


def test_a_redelivery_to_the_other_worker_is_processed_once(workers: list[TestClient], store: SqlStore) -> None:
    a, b = workers
    assert signed_post(a, text_message("c_low", "别再给我发了", "9201")).status_code == 200
    assert signed_post(b, text_message("c_low", "别再给我发了", "9201"), nonce="n2").status_code == 200
    messages = b.get("/v1/wecom/customers/c_low", headers=AUTH).json()["messages"]
    assert [m["text"] for m in messages] == ["别再给我发了"]  # once, not once per worker
    chats = store.list_conversations(track="wecom_chat", customer_id="c_low")
    assert len(chats) == 1 and chats[0].outcome == "do_not_contact"


def test_shared_state_primitives(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    recent = RedisRecent(redis_url, prefix=redis_prefix, size=3, ttl_s=60)
    for i in range(5):
        recent.append("k", {"i": i, "text": "你好"})
    assert [x["i"] for x in recent.items("k")] == [2, 3, 4]  # capped at the newest 3
    assert recent.items("nobody") == []
    once = RedisOnce(redis_url, prefix=redis_prefix, ttl_s=60)
    assert once.first_time("m1") and not once.first_time("m1")
    once.forget("m1")
    assert once.first_time("m1")


def test_redis_down_names_the_setting() -> None:
    once = RedisOnce("redis://127.0.0.1:1/0", prefix="x:", ttl_s=60)
    with pytest.raises(SessionsUnavailable, match="HUASHU_REDIS_URL"):
        once.first_time("m1")
    recent: Any = RedisRecent("redis://127.0.0.1:1/0", prefix="x:", size=3, ttl_s=60)
    with pytest.raises(SessionsUnavailable, match="HUASHU_REDIS_URL"):
        recent.items("k")
