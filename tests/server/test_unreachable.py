"""Calls that never reached the customer: the gateway's `unreachable` event, jambonz status
callbacks (SIP cause), and an announcement heard as the first words — all end the call at once
with outcome `unreachable` and one reason tag, kept by the store for the next touch."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import pytest

from core.conversation import EventKind
from core.settings import Settings
from server.jambonz import status_event
from tests.conftest import ROOT
from tests.server.conftest import TRACK, client_for, context, record
from tests.store.conftest import pg_url  # noqa: F401 (fixture)


def _profile(client, customer_id: str):
    store = context(client).engine.store
    assert store is not None
    return store.customer_profile(customer_id)


def test_the_gateway_reports_an_empty_number_and_it_is_never_called_again(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        assert client.post("/v1/calls", json={"call_id": "u-1", "customer_id": "cust-u", "track": TRACK}).status_code == 200
        r = client.post("/v1/calls/u-1/events", json={"seq": 1, "type": "unreachable", "reason": "invalid_number"})
        assert r.status_code == 200 and r.json() == {"actions": [{"type": "hangup"}], "ended": True}
        state = record(client, "u-1").state
        assert (state["outcome"], state["grade"]) == ("unreachable", "E") and "invalid_number" in state["tags"]
        assert {"unreachable", "invalid_number"} <= set(_profile(client, "cust-u")["tags"])
        again = client.post("/v1/calls", json={"call_id": "u-2", "customer_id": "cust-u", "track": TRACK})
        assert again.status_code == 409 and again.json()["refused"] == "invalid_number"


def test_an_announcement_as_the_first_words_ends_the_call_without_the_pitch(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json={"call_id": "u-3", "customer_id": "cust-v", "track": TRACK})
        r = client.post("/v1/calls/u-3/events", json={"seq": 1, "type": "speech", "text": "您拨打的电话已关机"})
        assert r.json() == {"actions": [{"type": "hangup"}], "ended": True}
        assert "powered_off" in record(client, "u-3").state["tags"]
        retry = client.post("/v1/calls", json={"call_id": "u-4", "customer_id": "cust-v", "track": TRACK})
        assert retry.status_code == 409 and retry.json()["refused"] == "powered_off"  # tomorrow, not today


def test_unreachable_needs_a_known_reason(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        client.post("/v1/calls", json={"call_id": "u-5", "customer_id": "cust-w", "track": TRACK})
        assert client.post("/v1/calls/u-5/events", json={"seq": 1, "type": "unreachable"}).status_code == 422
        assert client.post("/v1/calls/u-5/events", json={"seq": 1, "type": "unreachable",
                                                         "reason": "on_the_moon"}).status_code == 422


@pytest.mark.parametrize(("status", "sip", "reason"), [
    ("failed", 404, "invalid_number"), ("failed", 480, "no_answer"), ("busy", 486, "busy"),
    ("no-answer", 487, "no_answer"), ("failed", 403, "suspended"), ("no-answer", None, "no_answer"),
    ("busy", "486", "busy"), ("busy", 603, "busy"), ("failed", 503, "no_answer"),
])
def test_jambonz_status_and_sip_cause_map_to_reason_tags(status: str, sip: object, reason: str) -> None:
    ev = status_event(status, sip)
    assert (ev.kind, ev.reason) == (EventKind.UNREACHABLE, reason)
    assert status_event("completed", 200).kind is EventKind.HANGUP


NEVER_CONNECTED = [  # (call_status, sip_status, duration, reason tag) as jambonz's status hook sends them
    ("busy", 486, None, "busy"), ("busy", 603, None, "busy"), ("no-answer", 487, None, "no_answer"),
    ("failed", 404, None, "invalid_number"), ("failed", 484, None, "invalid_number"),
    ("failed", 410, None, "invalid_number"), ("failed", 480, None, "no_answer"), ("failed", 408, None, "no_answer"),
    ("failed", 403, None, "suspended"), ("failed", 503, None, "no_answer"), ("completed", 200, 0, "no_answer"),
]


@pytest.mark.parametrize("backend", ["memory"])
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_never_answered_jambonz_call_is_recorded_once_with_its_reason(
        make_settings: Callable[..., Settings], db: str, request: pytest.FixtureRequest) -> None:
    """jambonz calls the call webhook only when the callee answers, so a busy, unanswered or failed
    call reaches us only as a status callback: it is stored as `unreachable` with its reason, once
    (jambonz repeats a webhook that failed), and an empty number is then refused."""
    extra = {"database_url": request.getfixturevalue("pg_url")} if db == "postgresql" else {}
    run = uuid.uuid4().hex[:8]
    with client_for(make_settings(**extra)) as client:
        store = context(client).engine.store
        assert store is not None
        for i, (status, sip, duration, reason) in enumerate(NEVER_CONNECTED):
            sid, customer = f"nc-{run}-{i}", f"cust-nc-{run}-{i}"
            for call_status in ("ringing", status, status):  # progress, then the final report twice
                body = {"call_sid": sid, "direction": "outbound", "from": "4008208820", "to": "13812345678",
                        "call_status": call_status, "sip_status": sip if call_status == status else 180,
                        "sip_reason": "x", "customerData": {"customer_id": customer, "track": TRACK}}
                if duration is not None and call_status == status:
                    body["duration"] = duration
                r = client.post("/jambonz/status", json=body)
                assert r.status_code == 200, r.text
            rows = [(r.conversation_id, r.track, r.outcome, r.grade, tuple(r.tags))
                    for r in store.list_conversations(customer_id=customer)]
            assert rows == [(sid, TRACK, "unreachable", "E", ("unreachable", reason))], (status, sip)
        # no customerData: the customer id the call webhook would derive from the callee's number
        bare = {"call_sid": f"nc-{run}-bare", "direction": "outbound", "from": "4008208820", "to": "13900001234",
                "call_status": "no-answer", "sip_status": 487}
        assert client.post("/jambonz/status?track=" + TRACK, json=bare).status_code == 200
        derived = "jambonz-" + hashlib.sha256(b"13900001234").hexdigest()[:16]
        assert [r.outcome for r in store.list_conversations(customer_id=derived)] == ["unreachable"]
        # the empty number (404) is never called again
        empty = f"cust-nc-{run}-3"
        again = client.post("/jambonz/calls", json={
            "call_sid": f"nc-{run}-again", "direction": "outbound", "from": "4008208820", "to": "13812345678",
            "call_status": "in-progress", "customerData": {"customer_id": empty, "track": TRACK}})
        assert again.json() == [{"verb": "hangup", "headers": {"X-Huashu-Refused": "invalid_number"}}]


def test_a_live_jambonz_call_that_completes_is_a_hangup_not_unreachable(make_settings: Callable[..., Settings]) -> None:
    """An answered call (it reached the call webhook) that jambonz reports `completed` after 0 s is
    the customer hanging up, not an unreachable line; a busy report of a live call ends it busy."""
    with client_for(make_settings()) as client:
        call = {"call_sid": "live-1", "direction": "outbound", "from": "4008208820", "to": "13812345678",
                "call_status": "in-progress", "customerData": {"customer_id": "cust-live", "track": TRACK}}
        assert client.post("/jambonz/calls", json=call).status_code == 200
        client.post("/jambonz/status", json={**call, "call_status": "completed", "sip_status": 200, "duration": 0})
        state = record(client, "live-1").state
        assert state["outcome"] == "hung_up_early" and "unreachable" not in state["tags"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory"])
@pytest.mark.parametrize(("clip", "reason"), [("k16", "no_answer"), ("k03", "invalid_number")])
def test_a_recorded_first_turn_of_music_or_an_announcement_ends_the_call(make_settings: Callable[..., Settings],
                                                                         backend: str, clip: str, reason: str) -> None:
    """Real audio through POST /v1/calls/{id}/audio: 彩铃 music (signal) and 「您拨打的电话是空号」 (words)."""
    carrier = ROOT / "tests" / "data" / "carrier"
    with client_for(make_settings(callback_budget_ms=60_000)) as client:
        client.post("/v1/calls", json={"call_id": "m-1", "customer_id": "cust-m", "track": TRACK})
        r = client.post("/v1/calls/m-1/audio?seq=1", content=(carrier / f"{clip}.wav").read_bytes(),
                        headers={"Content-Type": "audio/wav"})
        assert r.status_code == 200 and r.json() == {"actions": [{"type": "hangup"}], "ended": True}
        state = record(client, "m-1").state
        assert state["outcome"] == "unreachable" and reason in state["tags"]
