"""An opt-out is durable on receipt (issue 13): the do-not-contact row is written before any lock
or model, every speech/DTMF event is journaled before its turn, and whoever next holds the call
(a dead worker's lock is taken over) answers the journal in seq order.

The crash and outage versions of these, with real processes, are in test_crash.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from core.conversation import CustomerEvent, EventKind
from core.settings import Settings
from server.calls import journal_entry, plan_steps
from server.redis_sessions import RedisSessions
from tests.server.conftest import NOW, TRACK, SlowClassifier, client_for, context, record

START = {"call_id": "c-1", "customer_id": "cust-1", "track": TRACK}
OPT_OUT = "别再给我打电话了，把我的号码删掉"


def _event(client: Any, seq: int, type_: str = "speech", **kw: Any) -> Any:
    return client.post("/v1/calls/c-1/events", json={"seq": seq, "type": type_, **kw})


def _speech(text: str) -> CustomerEvent:
    return CustomerEvent(EventKind.SPEECH, text=text)


def _dnc(client: Any) -> bool:
    return bool(client.get("/v1/customers/cust-1").json()["do_not_contact"])


def _wait_idle(client: Any) -> None:
    """Until no slow turn runs in the background."""
    for _ in range(200):
        if not context(client).calls.background:
            return
        time.sleep(0.02)


# -- the order of steps ------------------------------------------------------------------------
def test_plan_keeps_seq_order_and_never_merges_an_opt_out() -> None:
    dtmf = CustomerEvent(EventKind.DTMF, digits="1")
    backlog = [(_speech("你说"), False), (_speech("嗯"), False), (dtmf, False), (_speech(OPT_OUT), True)]
    steps = plan_steps(backlog, _speech("多少钱"), False, owed=False)
    assert [(s.kind, s.text or s.digits) for s in steps] == [
        (EventKind.SPEECH, "你说，嗯"), (EventKind.DTMF, "1"), (EventKind.SPEECH, OPT_OUT),
        (EventKind.SPEECH, "多少钱")]
    # queued words and new words are one utterance, unless the new words are an opt-out
    assert [s.text for s in plan_steps([(_speech("你说"), False)], _speech("多少钱"), False, False)] == ["你说，多少钱"]
    assert [s.text for s in plan_steps([(_speech("你说"), False)], _speech(OPT_OUT), True, False)] == ["你说", OPT_OUT]
    # a hangup comes after everything said before it; a playback-done after journaled words is not a step
    hangup = CustomerEvent(EventKind.HANGUP)
    assert [s.kind for s in plan_steps([(_speech(OPT_OUT), True)], hangup, False, False)] == [
        EventKind.SPEECH, EventKind.HANGUP]
    done = CustomerEvent(EventKind.PLAYBACK_DONE)
    assert plan_steps([(_speech(OPT_OUT), True)], done, False, False) == [_speech(OPT_OUT)]
    assert plan_steps([], done, False, owed=False) == [done]
    assert plan_steps([], done, False, owed=True) == []


def test_only_words_and_keys_are_journaled() -> None:
    assert journal_entry(CustomerEvent(EventKind.SILENCE), False) is None
    assert journal_entry(CustomerEvent(EventKind.HANGUP), False) is None
    assert journal_entry(_speech("  "), False) is None
    assert journal_entry(CustomerEvent(EventKind.DTMF, digits="0"), False) is not None
    assert b'"opt_out":true' in (journal_entry(_speech(OPT_OUT), True) or b"")


# -- in the app ------------------------------------------------------------------------------------
def test_the_opt_out_is_on_the_list_while_its_turn_still_waits(make_settings: Callable[..., Settings]) -> None:
    """Another request holds the call (a slow turn): the opt-out gets a filler, yet the customer is
    already on the do-not-contact list; the next event answers the journaled opt-out."""
    slow = SlowClassifier(delay_s=1.5)
    with client_for(make_settings(callback_budget_ms=150), classifier=slow) as client:
        client.post("/v1/calls", json=START)
        first = _event(client, 1, text="你是机器人吗")  # over the budget: the slow turn holds the call
        assert first.json()["actions"][0]["clip"] == "filler"
        busy = _event(client, 2, text=OPT_OUT)
        assert busy.json()["actions"][0]["clip"] == "filler"  # the turn has not run…
        assert _dnc(client)  # …and the opt-out is durable already
        assert context(client).runtime.store.check_contact("cust-1", NOW) == "do_not_contact"  # type: ignore[union-attr]
        slow.delay_s = 0.0
        _wait_idle(client)
        done = _event(client, 3, "playback_done")
        assert done.json()["ended"] is True and done.json()["actions"][-1]["type"] == "hangup"
        state = record(client, "c-1").state
        assert state["outcome"] == "do_not_contact" and "do_not_contact" in state["tags"]


def test_keys_and_words_said_while_busy_are_answered_in_order(make_settings: Callable[..., Settings]) -> None:
    slow = SlowClassifier(delay_s=1.0)
    with client_for(make_settings(callback_budget_ms=150), classifier=slow) as client:
        client.post("/v1/calls", json=START)
        _event(client, 1, text="喂")  # slow: holds the call
        slow.delay_s = 0.0
        _event(client, 2, "dtmf", digits="9")
        _event(client, 3, text="你是机器人吗")
        _wait_idle(client)
        _event(client, 4, "playback_done")
        users = [t["user"] for t in record(client, "c-1").state["turns"]]
        assert users[-3:] == ["喂", "<dtmf:9>", "你是机器人吗"]


def test_an_opt_out_that_lost_the_race_to_a_later_event_still_ends_the_call(
        make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json=START)
        _event(client, 1, text="喂")
        _event(client, 3, text="多少钱")  # seq 3 overtook seq 2
        late = _event(client, 2, text=OPT_OUT)
        assert late.json()["ended"] is True
        assert record(client, "c-1").state["outcome"] == "do_not_contact"
        assert _dnc(client)
        assert _event(client, 4, text="喂").json() == {"actions": [{"type": "hangup"}], "ended": True}


# -- a dead worker's lock (Redis) -----------------------------------------------------------------
@pytest.mark.redis
@pytest.mark.parametrize("backend", ["redis"])
def test_a_dead_workers_lock_is_taken_over_and_its_journal_answered(make_settings: Callable[..., Settings]) -> None:
    """Another worker journaled the opt-out, took the call's lock and died (its heartbeat key is gone):
    the next event takes the lock at once (not after the 10 s lease) and answers the opt-out first."""
    settings = make_settings(callback_budget_ms=300, lock_ttl_ms=10_000)
    with client_for(settings) as client:
        client.post("/v1/calls", json=START)
        _event(client, 1, text="喂")

        async def die_holding_the_call(alive: bool) -> str | None:
            other = RedisSessions(settings.redis_url, prefix=settings.redis_prefix, ttl_s=60, lock_ttl_ms=10_000)
            try:
                begun = await other.begin("c-1", "e2", 0, (2, journal_entry(_speech(OPT_OUT), True) or b""))
                if not alive:
                    await other.r.delete(other._alive)  # killed: no more heartbeats
                return begun.token
            finally:
                await other.r.aclose()

        assert asyncio.run(die_holding_the_call(alive=False)) is not None
        after = _event(client, 3, text="喂？还在吗")
        assert after.json()["ended"] is True and after.json()["actions"][-1]["type"] == "hangup"
        state = record(client, "c-1").state
        assert state["outcome"] == "do_not_contact" and "do_not_contact" in state["tags"]
        assert [t["user"] for t in state["turns"]][-1] == OPT_OUT  # the later words never ran
        assert _dnc(client)
        assert "huashu_lock_takeovers_total 1.0" in client.get("/metrics").text


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["redis"])
def test_a_live_workers_lock_is_not_taken(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(callback_budget_ms=200, lock_ttl_ms=10_000)
    with client_for(settings) as client:
        client.post("/v1/calls", json=START)

        async def hold() -> None:
            other = RedisSessions(settings.redis_url, prefix=settings.redis_prefix, ttl_s=60, lock_ttl_ms=10_000,
                                  heartbeat_ms=30_000)
            try:
                assert await other.lock("c-1", 0) is not None
            finally:
                await other.r.aclose()

        asyncio.run(hold())
        busy = _event(client, 1, text="多少钱")
        assert busy.json()["actions"][0]["clip"] == "filler"
        assert "huashu_lock_takeovers_total 0.0" in client.get("/metrics").text

