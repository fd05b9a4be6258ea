"""Calls that never reached the customer: the gateway's `unreachable` event, jambonz status
callbacks (SIP cause), and an announcement heard as the first words — all end the call at once
with outcome `unreachable` and one reason tag, kept by the store for the next touch."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.conversation import EventKind
from core.settings import Settings
from server.jambonz import status_event
from tests.conftest import ROOT
from tests.server.conftest import TRACK, client_for, context, record


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
    ("failed", 404, "invalid_number"), ("failed", 480, "powered_off"), ("busy", 486, "busy"),
    ("no-answer", 487, "no_answer"), ("failed", 403, "suspended"), ("no-answer", None, "no_answer"),
    ("busy", "486", "busy"),
])
def test_jambonz_status_and_sip_cause_map_to_reason_tags(status: str, sip: object, reason: str) -> None:
    ev = status_event(status, sip)
    assert (ev.kind, ev.reason) == (EventKind.UNREACHABLE, reason)
    assert status_event("completed", 200).kind is EventKind.HANGUP


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
