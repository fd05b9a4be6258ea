"""The gateway protocol (CONTRACT.md "HTTP"), on in-process sessions and on real Redis."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from core.settings import Settings
from tests.server.conftest import NOW, TRACK, SlowClassifier, client_for, context, record

START = {"call_id": "c-1", "customer_id": "cust-1", "track": TRACK}
HANGUP = {"actions": [{"type": "hangup"}], "ended": True}


def _event(client, call_id: str, seq: int, type_: str = "speech", **kw):
    return client.post(f"/v1/calls/{call_id}/events", json={"seq": seq, "type": type_, **kw})


def test_call_roundtrip_and_replays_are_byte_identical(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with client_for(settings) as client:
        first = client.post("/v1/calls", json=START)
        assert first.status_code == 200
        assert first.json()["call_id"] == "c-1"
        assert [a["type"] for a in first.json()["actions"]][-1] == "listen"
        again = client.post("/v1/calls", json=START)
        assert again.content == first.content
        bodies = {}
        for seq, text in enumerate(["喂，你好", "多少钱", "好的"], 1):
            r = _event(client, "c-1", seq, text=text)
            assert r.status_code == 200, r.text
            bodies[seq] = r.content
        before = record(client, "c-1")
        for seq, body in bodies.items():
            assert _event(client, "c-1", seq, text="完全不同的话").content == body
        assert record(client, "c-1") == before  # no second effect
        assert client.post("/v1/calls", json={**START, "track": "presale_deposit"}).status_code == 409


def test_replayed_final_event_writes_no_duplicate_tag(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with client_for(settings) as client:
        client.post("/v1/calls", json=START)
        _event(client, "c-1", 1, text="你是机器人吗")
        final = _event(client, "c-1", 2, "hangup")
        assert final.json()["ended"] is True
        store = context(client).runtime.store
        assert store is not None
        profile = client.get("/v1/customers/cust-1").json()
        for _ in range(3):
            assert _event(client, "c-1", 2, "hangup").content == final.content
        assert client.get("/v1/customers/cust-1").json() == profile
        tags = profile["tags"]
        assert "asked_robot" in tags and len(tags) == len(set(tags))
        assert len(store.list_conversations()) == 1


def test_concurrent_duplicates_cause_one_state_change(make_settings: Callable[..., Settings]) -> None:
    slow = SlowClassifier(delay_s=0.2)
    with client_for(make_settings(), classifier=slow) as client:
        client.post("/v1/calls", json=START)
        results: list[bytes] = []

        def send() -> None:
            results.append(_event(client, "c-1", 1, text="多少钱").content)

        threads = [threading.Thread(target=send) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(results)) == 1
        assert slow.calls == 1
        rec = record(client, "c-1")
        assert rec.last_seq == 1 and rec.version == 2


def test_older_seq_after_newer_has_no_effect(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json=START)
        assert _event(client, "c-1", 1, text="喂").status_code == 200
        assert _event(client, "c-1", 3, text="多少钱").status_code == 200
        before = record(client, "c-1")
        late = _event(client, "c-1", 2, text="你是机器人吗")  # (a late opt-out is the exception: test_optout)
        assert late.status_code == 200
        assert late.json() == {"actions": [], "ended": False}
        assert record(client, "c-1") == before
        assert _event(client, "c-1", 4, text="好的").status_code == 200
        assert record(client, "c-1").last_seq == 4


def test_after_hangup_every_callback_gets_hangup_and_writes_nothing(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json=START)
        assert _event(client, "c-1", 1, "hangup").json()["ended"] is True
        before = record(client, "c-1")
        for seq, kind in [(2, "speech"), (3, "dtmf"), (4, "silence"), (5, "playback_done"), (6, "hangup")]:
            extra = {"digits": "1"} if kind == "dtmf" else {"text": "好的"} if kind == "speech" else {}
            r = _event(client, "c-1", seq, kind, **extra)
            assert r.status_code == 200 and r.json() == HANGUP
        assert record(client, "c-1") == before
        assert client.portal.call(context(client).sessions.response, "c-1", "e6") is None  # type: ignore[union-attr]


def test_unknown_call_gets_harmless_hangup_and_nothing_is_created(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        r = _event(client, "nobody", 1, text="喂")
        assert r.status_code == 200 and r.json() == HANGUP
        assert record(client, "nobody") is None
        assert client.get("/v1/customers/nobody").status_code == 404


@pytest.mark.parametrize("body, status", [
    (b"", 422), (b"{", 400), (b"\xff\xfe{}", 400), (b'{"seq": 1, "type": "speech", "text": "\xe5\xa5"}', 400),
    (b"[]", 422), (b"null", 422), (b'{"seq": -1, "type": "speech"}', 422), (b'{"seq": 1.5, "type": "speech"}', 422),
    (b'{"seq": "1", "type": "speech"}', 422), (b'{"seq": true, "type": "speech"}', 422),
    (b'{"seq": 1, "type": "dance"}', 422), (b'{"seq": 1, "type": "dtmf"}', 422),
    (b'{"seq": 1, "type": "dtmf", "digits": "x"}', 422), (b'{"seq": 1, "type": "speech", "text": 5}', 422),
    (b'{"seq": 1, "type": "speech", "confidence": 7}', 422), (b"[" * 5000 + b"]" * 5000, 400),
])
def test_malformed_event_bodies_are_4xx_with_a_message(make_settings: Callable[..., Settings], body: bytes,
                                                       status: int) -> None:
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json=START)
        r = client.post("/v1/calls/c-1/events", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["detail"]
        assert record(client, "c-1").version == 1


@pytest.mark.parametrize("body", [
    {"call_id": "c-2", "customer_id": "x", "track": "no_such_track"},
    {"call_id": "c-2", "customer_id": "x", "track": TRACK, "vars": {"not_a_var": "1"}},
    {"call_id": "", "customer_id": "x", "track": TRACK},
    {"call_id": "a/b", "customer_id": "x", "track": TRACK},
    {"call_id": "c-2", "customer_id": "x", "track": TRACK, "vars": {"gift": 3}},
    {"customer_id": "x", "track": TRACK},
])
def test_bad_start_bodies_are_422_and_create_nothing(make_settings: Callable[..., Settings], body: dict) -> None:
    with client_for(make_settings()) as client:
        r = client.post("/v1/calls", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"]
        assert record(client, "c-2") is None


def test_bodies_over_the_limit_are_413(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings(max_body_bytes=1000)) as client:
        big = json.dumps({"seq": 1, "type": "speech", "text": "好" * 2000}).encode()
        assert client.post("/v1/calls/c-1/events", content=big).status_code == 413

        def chunks():  # no Content-Length: counted while reading
            for _ in range(100):
                yield b"x" * 100

        r = client.post("/v1/calls/c-1/events", content=chunks())
        assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_refusals_are_409_with_the_reason_and_counted(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with client_for(settings) as client:
        client.post("/v1/calls", json=START)
        r = _event(client, "c-1", 1, text="别再给我打电话了")
        assert r.json()["ended"] is True
        again = client.post("/v1/calls", json={**START, "call_id": "c-2"})
        assert again.status_code == 409 and again.json() == {"refused": "do_not_contact", "code": "refused"}
        assert record(client, "c-2") is None
        metrics = client.get("/metrics").text
        assert 'huashu_call_refusals_total{reason="do_not_contact"} 1.0' in metrics
        assert "huashu_call_outcomes_total" in metrics and 'outcome="do_not_contact"' in metrics
    late = NOW.replace(hour=22)
    with client_for(settings, clock=lambda: late) as client:
        r = client.post("/v1/calls", json={**START, "call_id": "c-3", "customer_id": "cust-9"})
        assert r.status_code == 409 and r.json() == {"refused": "outside_calling_window", "code": "refused"}


def test_ops_endpoints(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        parse = client.post("/model/parse", json={"text": "这个多少钱"}).json()
        assert parse["intent"]["name"] == "ask_price"
        assert set(parse) == {"text", "intent", "intent_ranking", "entities"}
        client.post("/v1/calls", json=START)
        _event(client, "c-1", 1, text="喂")
        text = client.get("/metrics").text
        for name in ("huashu_calls_active 1.0", "huashu_events_total", "huashu_callback_latency_seconds_bucket",
                     "huashu_calls_started_total"):
            assert name in text
        spec = client.get("/openapi.json").json()
        assert "/v1/calls/{call_id}/events" in spec["paths"]


def test_admin_reload_needs_the_key(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        assert client.post("/admin/tracks/reload").status_code == 403
    with client_for(make_settings(admin_key="adm")) as client:
        assert client.post("/admin/tracks/reload").status_code == 401
        assert client.post("/admin/tracks/reload", headers={"X-Admin-Key": "nope"}).status_code == 401
        r = client.post("/admin/tracks/reload", headers={"Authorization": "Bearer adm"})
        assert r.status_code == 200 and TRACK in r.json()["tracks"]
        assert r.json()["generation"] == 1


def test_a_start_retried_after_a_session_store_failure_is_not_capped_by_itself(
        make_settings: Callable[..., Settings]) -> None:
    """The gate recorded the attempt, then the session commit failed (Redis blip) → 503; the
    gateway's retry of the same call must go through, even with one call a day allowed."""
    from core.shared_kv import SessionsUnavailable

    settings = make_settings(max_calls_per_day=1)
    with client_for(settings) as client:
        sessions = context(client).calls.sessions
        real_commit = sessions.commit
        failures = [1]

        async def flaky_commit(*args: Any, **kwargs: Any) -> bool:
            if failures:
                failures.pop()
                raise SessionsUnavailable("Redis at HUASHU_REDIS_URL failed during commit: test")
            return await real_commit(*args, **kwargs)

        sessions.commit = flaky_commit  # type: ignore[method-assign]
        first = client.post("/v1/calls", json=START)
        assert first.status_code == 503
        retry = client.post("/v1/calls", json=START)
        assert retry.status_code == 200, retry.text
        assert client.post("/v1/calls", json={**START, "call_id": "c-2"}).json() == {"refused": "frequency_cap", "code": "refused"}
