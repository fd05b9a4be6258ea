"""The callback budget: a slow turn answers filler + listen, and its answer comes with the next event."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.conversation import CustomerEvent, EventKind
from core.settings import Settings
from server.calls import event_to_json
from tests.server.conftest import NOW, TRACK, SlowClassifier, client_for, context, record

START = {"call_id": "c-1", "customer_id": "cust-1", "track": TRACK}


def _reference(make_settings: Callable[..., Settings], lines: list[str]) -> list[dict]:
    """What the same call answers when nothing is slow."""
    base = make_settings()
    with client_for(make_settings(data_dir=base.data_dir.parent / "ref", redis_prefix=base.redis_prefix + "ref:")) \
            as client:
        client.post("/v1/calls", json=START)
        return [client.post("/v1/calls/c-1/events", json={"seq": i, "type": "speech", "text": t}).json()
                for i, t in enumerate(lines, 1)]


def _wait_unlocked(client, call_id: str) -> None:
    calls = context(client).calls
    for _ in range(200):
        if not calls.background:
            return
        time.sleep(0.02)


def _speak_during_slow_turn(client: Any, slow: SlowClassifier, first: str, during: str) -> tuple[Any, Any]:
    """Start, speech seq 1 that overruns the budget, then speech seq 2 while it still runs:
    the answers to both (fillers)."""
    client.post("/v1/calls", json=START)
    answer = client.post("/v1/calls/c-1/events", json={"seq": 1, "type": "speech", "text": first})
    slow.delay_s = 0.0
    busy = client.post("/v1/calls/c-1/events", json={"seq": 2, "type": "speech", "text": during})
    return answer, busy


def test_slow_turn_gets_filler_then_the_answer_on_the_next_event(make_settings: Callable[..., Settings]) -> None:
    reference = _reference(make_settings, ["多少钱"])
    slow = SlowClassifier(delay_s=0.6)
    with client_for(make_settings(callback_budget_ms=150), classifier=slow) as client:
        client.post("/v1/calls", json=START)
        first = client.post("/v1/calls/c-1/events", json={"seq": 1, "type": "speech", "text": "多少钱"})
        actions = first.json()["actions"]
        assert [a["type"] for a in actions] == ["play", "listen"]
        assert actions[0]["clip"] == "filler"
        _wait_unlocked(client, "c-1")
        assert record(client, "c-1").deferred is not None
        done = client.post("/v1/calls/c-1/events", json={"seq": 2, "type": "playback_done"})
        assert done.json() == reference[0]
        assert slow.calls == 1
        # the retried slow callback still gets its (filler) answer byte for byte; no recomputation
        again = client.post("/v1/calls/c-1/events", json={"seq": 1, "type": "speech", "text": "多少钱"})
        assert again.content == first.content and slow.calls == 1
        rec = record(client, "c-1")
        assert rec.pending is None and rec.deferred is None and rec.last_seq == 2


def test_speech_during_a_slow_turn_is_answered_after_it(make_settings: Callable[..., Settings]) -> None:
    slow = SlowClassifier(delay_s=1.0)
    with client_for(make_settings(callback_budget_ms=150), classifier=slow) as client:
        _, busy = _speak_during_slow_turn(client, slow, "你是机器人吗", "多少钱")
        assert busy.json()["actions"][0]["clip"] == "filler"  # still thinking: another filler, not cached
        _wait_unlocked(client, "c-1")
        r = client.post("/v1/calls/c-1/events", json={"seq": 2, "type": "speech", "text": "多少钱"})
        clips = [a["clip"] for a in r.json()["actions"] if a["type"] == "play"]
        assert clips[0] == "answer_robot"  # what the slow turn owed comes first
        assert r.json()["actions"][-1]["type"] == "listen"
        assert [a["type"] for a in r.json()["actions"]].count("listen") == 1


def test_a_turn_whose_worker_died_is_redone_by_the_next_event(make_settings: Callable[..., Settings]) -> None:
    reference = _reference(make_settings, ["多少钱"])
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json=START)
        sessions = context(client).sessions
        rec = record(client, "c-1")
        pending = {"seq": 1, "event": event_to_json(CustomerEvent(EventKind.SPEECH, text="多少钱")),
                   "at": NOW.isoformat()}
        marked = rec.next(last_seq=1, pending=pending)  # as left by a worker killed mid-turn
        assert client.portal.call(sessions.commit, "c-1", marked, {}, rec.version)  # type: ignore[union-attr]
        r = client.post("/v1/calls/c-1/events", json={"seq": 2, "type": "silence"})
        assert r.json() == reference[0]


def test_fast_events_need_no_nlu(make_settings: Callable[..., Settings]) -> None:
    slow = SlowClassifier(delay_s=2.0)
    with client_for(make_settings(callback_budget_ms=1000), classifier=slow) as client:
        client.post("/v1/calls", json=START)
        for seq, kind in enumerate(["playback_done", "silence"], 1):
            r = client.post("/v1/calls/c-1/events", json={"seq": seq, "type": kind})
            assert r.status_code == 200
            assert all(a.get("clip") != "filler" for a in r.json()["actions"])
        assert slow.calls == 0


def test_a_turn_that_starts_after_its_budget_is_still_owed(make_settings: Callable[..., Settings]) -> None:
    """E.g. a cold ASR model ate the whole budget before the turn began: the event must not be lost."""

    from core.conversation import CustomerEvent, EventKind

    with client_for(make_settings(callback_budget_ms=200)) as client:
        client.post("/v1/calls", json=START)
        calls = context(client).calls

        async def late() -> bytes:
            spent = time.monotonic() - 1.0  # the budget is long gone when the turn begins
            return await calls.event("c-1", 1, CustomerEvent(EventKind.SPEECH, text="多少钱"), t0=spent)

        first = client.portal.call(late)  # type: ignore[union-attr]
        assert b'"clip":"filler"' in first
        _wait_unlocked(client, "c-1")
        done = client.post("/v1/calls/c-1/events", json={"seq": 2, "type": "playback_done"})
        assert next(a["clip"] for a in done.json()["actions"] if a["type"] == "play") == "wag_price"


def test_an_opt_out_said_during_a_filler_is_honoured_after_the_slow_turn(
        make_settings: Callable[..., Settings]) -> None:
    """The customer speaks while the bot is still thinking: the words are kept (not only a filler
    and gone) and answered with the slow turn's result on the next event, in order."""
    slow = SlowClassifier(delay_s=1.0)
    with client_for(make_settings(callback_budget_ms=150), classifier=slow) as client:
        first, busy = _speak_during_slow_turn(client, slow, "你是机器人吗", "别再给我打电话了")
        assert first.json()["actions"][0]["clip"] == "filler"
        assert busy.json()["actions"][0]["clip"] == "filler"
        _wait_unlocked(client, "c-1")
        done = client.post("/v1/calls/c-1/events", json={"seq": 3, "type": "playback_done"})
        body = done.json()
        clips = [a["clip"] for a in body["actions"] if a["type"] == "play"]
        assert clips[0] == "answer_robot"  # the slow turn's answer first, then the opt-out's
        assert body["ended"] is True and body["actions"][-1]["type"] == "hangup"
        profile = client.get("/v1/customers/cust-1").json()
        assert profile["do_not_contact"] is True, profile
        # a late gateway retry of the queued seq changes nothing (already answered)
        retry = client.post("/v1/calls/c-1/events", json={"seq": 2, "type": "speech", "text": "别再给我打电话了"})
        assert retry.json()["ended"] is True
        assert record(client, "c-1").state["outcome"] == "do_not_contact"


def test_queued_speech_and_new_speech_are_one_utterance(make_settings: Callable[..., Settings]) -> None:
    slow = SlowClassifier(delay_s=1.0)
    with client_for(make_settings(callback_budget_ms=150), classifier=slow) as client:
        _speak_during_slow_turn(client, slow, "喂", "你说")
        _wait_unlocked(client, "c-1")
        client.post("/v1/calls/c-1/events", json={"seq": 3, "type": "speech", "text": "多少钱"})
        users = [t["user"] for t in record(client, "c-1").state["turns"]]
        assert users[-1] == "你说，多少钱" and "喂" in users
