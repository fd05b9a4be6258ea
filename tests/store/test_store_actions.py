"""Store actions through rasa-sdk itself: real tracker payloads (Rasa's and our engine's), run by
rasa-sdk's ActionExecutor and by the Action classes directly with Tracker.from_dict."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher

import store.actions as store_actions
from store.sql import SqlStore

from .conftest import NOW
from .factories import customer

T0 = NOW.timestamp()


@pytest.fixture
def configured(store: SqlStore) -> Iterator[SqlStore]:
    store.upsert_customers([customer("c1", "13812345678", name="张三", persona_group="孕妇", deposit_paid=True,
                                     deposit_product="DHA藻油", purchase_count=1)])
    yield store


def rasa_tracker(sender: str = "c1", **slots: Any) -> dict[str, Any]:
    """A tracker as Rasa 3 sends it to an action server (events with timestamps)."""
    return {
        "sender_id": sender,
        "slots": {"outcome": None, "tags": None, "grade": None, **slots},
        "latest_message": {"text": "好的我等下就付", "intent": {"name": "will_pay", "confidence": 0.93},
                           "entities": []},
        "events": [
            {"event": "action", "timestamp": T0, "name": "action_session_start"},
            {"event": "session_started", "timestamp": T0 + 0.1},
            {"event": "bot", "timestamp": T0 + 1, "text": "您好，定金已经可以付了"},
            {"event": "user", "timestamp": T0 + 5, "text": "多少钱", "input_channel": "rest",
             "parse_data": {"intent": {"name": "ask_price", "confidence": 0.88}, "entities": []}},
            {"event": "action", "timestamp": T0 + 5.1, "name": "utter_price"},
            {"event": "bot", "timestamp": T0 + 5.2, "text": "定金50抵100"},
            {"event": "user", "timestamp": T0 + 9, "text": "好的我等下就付", "input_channel": "rest",
             "parse_data": {"intent": {"name": "will_pay", "confidence": 0.93}, "entities": []}},
        ],
        "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen",
    }


def bound_executor(store: SqlStore) -> ActionExecutor:
    """What huashu's wiring does: the store actions built with the store."""
    executor = ActionExecutor()
    for action in store_actions.bound_to(store):
        executor.register_action(action)
    return executor


def run_via_executor(action: str, tracker: dict[str, Any], executor: ActionExecutor) -> list[dict[str, Any]]:
    body = {"next_action": action, "sender_id": tracker["sender_id"], "version": "3.10.0",
            "tracker": tracker, "domain": {"slots": {}, "intents": []}}
    response = asyncio.run(executor.run(body))
    assert response is not None
    return list(response.events)


def slots(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def test_write_outcome_from_a_rasa_tracker_is_exactly_once(configured: SqlStore) -> None:
    tracker = rasa_tracker(outcome="promised_to_pay", tags=["price_sensitive", "not_a_tag"])
    first = slots(run_via_executor("action_write_outcome", tracker, bound_executor(configured)))
    assert first == {"outcome_written": True, "outcome_new": True, "grade": "A"}
    assert slots(run_via_executor("action_write_outcome", tracker, bound_executor(configured)))["outcome_new"] is False
    [conv] = configured.list_conversations()
    assert (conv.conversation_id, conv.customer_id, conv.outcome, conv.channel) == (
        f"c1:{int(T0)}", "c1", "promised_to_pay", "rest")  # a Rasa sender id spans sessions
    assert conv.tags == ("promised_to_pay", "price_sensitive")  # unknown tags dropped
    assert [t.intent for t in conv.turns] == ["ask_price", "will_pay"]
    assert conv.turns[0].bot[0].text == "定金50抵100"
    assert conv.node_path == ("action_session_start", "utter_price")
    assert conv.ended_at - conv.started_at == timedelta(seconds=9)
    got = configured.get_customer("c1")
    assert got is not None and got.last_outcome == "promised_to_pay"


def test_profile_slots_and_unknown_customer(configured: SqlStore) -> None:
    values = slots(run_via_executor("action_customer_profile", rasa_tracker(), bound_executor(configured)))
    assert values["customer_known"] is True and values["customer_name"] == "张三"
    assert values["phone_masked"] == "138****5678" and values["product"] == "DHA藻油"
    assert (values["deposit_paid"], values["purchase_count"], values["do_not_contact"]) == (True, 1, False)
    assert "13812345678" not in repr(values)
    assert slots(run_via_executor("action_customer_profile", rasa_tracker(sender="ghost"), bound_executor(configured))) == {
        "customer_known": False}


def test_mark_do_not_contact_is_durable_and_blocks_calls(configured: SqlStore) -> None:
    events = run_via_executor("action_mark_do_not_contact", rasa_tracker(customer_id="c1"), bound_executor(configured))
    assert slots(events) == {"do_not_contact": True}
    assert configured.check_contact("c1", NOW) == "do_not_contact"
    profile = configured.customer_profile("c1")
    assert profile is not None and profile["do_not_contact_reason"] == "opt_out"


def test_the_engine_tracker_payload(configured: SqlStore) -> None:
    """Our engine sends sender_id = call id and slots customer_id / call_id / track / tags / outcome."""
    from core.conversation import SessionState
    from dialogue.actions import tracker_payload

    state = SessionState(call_id="call-77", track_id="presale_deposit", customer_id="c1", node="close",
                         started_at=NOW.isoformat(), tags=("high_intent", "asked_robot"), outcome="high_intent",
                         grade="A", ended=True)
    payload = tracker_payload(state, "action_write_outcome")
    tracker = Tracker.from_dict(payload["tracker"])
    events = store_actions.ActionWriteOutcome(configured).run(CollectingDispatcher(), tracker, payload["domain"])
    assert slots(events)["outcome_new"] is True
    [conv] = configured.list_conversations()
    assert (conv.conversation_id, conv.customer_id, conv.track) == ("call-77", "c1", "presale_deposit")
    assert set(conv.tags) == {"high_intent", "asked_robot"}
    events = store_actions.ActionMarkDoNotContact(configured).run(
        CollectingDispatcher(), Tracker.from_dict(tracker_payload(state, "action_mark_do_not_contact")["tracker"]), {})
    assert configured.check_contact("c1", NOW) == "do_not_contact"


def test_a_bad_outcome_slot_is_refused(configured: SqlStore) -> None:
    tracker = Tracker.from_dict(rasa_tracker(outcome="bought_a_car"))
    with pytest.raises(ValueError, match="not a contract outcome"):
        store_actions.ActionWriteOutcome(configured).run(CollectingDispatcher(), tracker, {})
    assert configured.list_conversations() == []


def test_unconfigured_actions_open_the_store_of_the_settings(
        store_settings: Any, monkeypatch: pytest.MonkeyPatch, store: SqlStore) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("HUASHU_DATA_DIR", str(store_settings.data_dir))
    monkeypatch.setenv("HUASHU_DATABASE_URL", store_settings.effective_database_url)
    monkeypatch.setenv("HUASHU_PHONE_KEY", store_settings.phone_key)
    get_settings.cache_clear()
    executor = ActionExecutor()
    executor.register_package("store.actions")  # how any Rasa assistant's action server loads them
    action = executor.actions["action_mark_do_not_contact"].__self__
    try:
        run_via_executor("action_mark_do_not_contact", rasa_tracker(sender="walk-in"), executor)
        assert store.check_contact("walk-in", NOW) == "do_not_contact"
    finally:
        action.store.close()
        get_settings.cache_clear()


class _CountingStore:
    """The real store, counting opt-out writes (one writer per call)."""

    def __init__(self, store: SqlStore) -> None:
        self.store, self.opt_outs = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def mark_do_not_contact(self, *args: Any) -> None:
        self.opt_outs += 1
        self.store.mark_do_not_contact(*args)


def test_a_call_opt_out_is_written_once_by_the_engine_at_the_turn_time(configured: SqlStore) -> None:
    import sqlalchemy as sa

    from core.conversation import CustomerEvent, EventKind
    from dialogue.actions import ActionRunner, build_executor
    from dialogue.engine import DialogueEngine
    from dialogue.loader import load_bundle
    from store import schema
    from tests.conftest import SCRIPTS
    from tests.dialogue.keywords import KeywordClassifier

    counting = _CountingStore(configured)
    runner = ActionRunner(build_executor(actions=store_actions.bound_to(counting)))
    engine = DialogueEngine(load_bundle(SCRIPTS, runner.names), KeywordClassifier(), store=counting,
                            actions=runner)
    turn_at = NOW + timedelta(minutes=3)
    state, _ = engine.start("call-dnc", "c1", "wecom_add_gift", at=NOW)
    state, reply = engine.step(state, CustomerEvent(EventKind.SPEECH, text="别再给我打电话了"), turn_at)
    assert reply.ended and state.outcome == "do_not_contact"
    assert counting.opt_outs == 1
    with configured.engine.connect() as conn:
        [(at, source)] = conn.execute(sa.select(schema.do_not_contact.c.at, schema.do_not_contact.c.source)
                                      .where(schema.do_not_contact.c.customer_id == "c1")).all()
    assert source == "call:call-dnc"
    assert at.replace(tzinfo=None) == turn_at.astimezone(at.tzinfo or UTC).replace(tzinfo=None)
