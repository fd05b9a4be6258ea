"""Hypothesis state machine: a gateway that retries, duplicates, skips and reorders callbacks.

The server must answer every accepted event exactly as the engine alone would (a reference run
of the same conversation), replay old answers byte for byte, ignore older seqs, and end up in
the reference state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from core.conversation import CustomerEvent, EventKind, SessionState
from core.settings import Settings
from dialogue.engine import DialogueEngine
from server.calls import HANGUP_BODY, STALE_BODY
from server.errors import json_bytes
from tests.server.conftest import NOW, TRACK, client_for, context, record

TEXTS = ["喂，你好", "你是机器人吗", "多少钱", "好的", "不需要", "怎么加", "没收到", "加了", "再说一遍", "今天天气不错"]
EVENTS = st.one_of(
    st.builds(lambda t: {"type": "speech", "text": t}, st.sampled_from(TEXTS)),
    st.builds(lambda d: {"type": "dtmf", "digits": d}, st.sampled_from(["1", "2", "9"])),
    st.just({"type": "silence"}), st.just({"type": "playback_done"}),
)
_ids = itertools.count()


def _customer_event(e: dict[str, Any]) -> CustomerEvent:
    return CustomerEvent(EventKind(e["type"]), text=e.get("text"), digits=e.get("digits"))


class GatewayChaos(RuleBasedStateMachine):
    client: TestClient  # set by the test (one app per backend; a fresh call per example)

    def __init__(self) -> None:
        super().__init__()
        n = next(_ids)
        self.call_id, self.customer = f"sm-{n}", f"sm-cust-{n}"
        body = {"call_id": self.call_id, "customer_id": self.customer, "track": TRACK}
        r = self.client.post("/v1/calls", json=body)
        assert r.status_code == 200, r.text
        self.start_body = r.content
        engine = context(self.client).engine
        self.reference = DialogueEngine(engine.bundle, engine.classifier, actions=engine.actions, config=engine.config)
        variables = SessionState.from_dict(record(self.client, self.call_id).state).variables
        self.ref_state, _ = self.reference.start(self.call_id, self.customer, TRACK, at=NOW, variables={},
                                                 check_gate=False)
        self.ref_state = self.ref_state.with_(variables=variables)
        self.seq = 0
        self.answers: dict[int, bytes] = {}
        self.holes: list[int] = []

    def _post(self, seq: int, event: dict[str, Any]) -> bytes:
        r = self.client.post(f"/v1/calls/{self.call_id}/events", json={"seq": seq, **event})
        assert r.status_code == 200, r.text
        return r.content

    @rule(event=EVENTS, skip=st.integers(0, 2))
    def send_next(self, event: dict[str, Any], skip: int) -> None:
        self.holes += [self.seq + i for i in range(1, skip + 1)]
        self.seq += skip + 1
        body = self._post(self.seq, event)
        if self.ref_state.ended:
            assert body == HANGUP_BODY
            return
        self.ref_state, reply = self.reference.step(self.ref_state, _customer_event(event), NOW)
        assert body == json_bytes({"actions": [a.to_json() for a in reply.actions], "ended": self.ref_state.ended})
        self.answers[self.seq] = body

    @precondition(lambda self: bool(self.answers))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.answers)))
        assert self._post(seq, {"type": "speech", "text": "重发的内容不一样"}) == self.answers[seq]

    @precondition(lambda self: bool(self.holes))
    @rule(data=st.data(), event=EVENTS)
    def late_arrival(self, data: st.DataObject, event: dict[str, Any]) -> None:
        seq = data.draw(st.sampled_from(self.holes))
        expected = HANGUP_BODY if self.ref_state.ended else STALE_BODY
        assert self._post(seq, event) == expected

    @rule()
    def restart_request(self) -> None:
        body = {"call_id": self.call_id, "customer_id": self.customer, "track": TRACK}
        assert self.client.post("/v1/calls", json=body).content == self.start_body

    @invariant()
    def same_state_as_the_reference(self) -> None:
        stored = record(self.client, self.call_id)
        assert stored is not None
        assert SessionState.from_dict(stored.state) == self.ref_state


@pytest.fixture
def chaos_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with client_for(make_settings(max_calls_per_day=1000, max_calls_per_week=1000)) as client:
        yield client


def test_replayed_duplicated_reordered_callbacks(chaos_client: TestClient) -> None:
    GatewayChaos.client = chaos_client
    run_state_machine_as_test(GatewayChaos, settings=settings(
        max_examples=30, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
