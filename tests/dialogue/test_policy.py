"""The pure policy: handlers, fallbacks, silence, DTMF, side questions, outcomes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.conversation import CustomerEvent, EventKind, SessionState, Turn
from core.parse import Entity, Parse
from dialogue import policy
from dialogue.engine import DialogueEngine
from dialogue.loader import load_bundle
from tests.conftest import SCRIPTS
from tests.dialogue.keywords import KeywordClassifier

AT = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def engine() -> DialogueEngine:
    return DialogueEngine(load_bundle(SCRIPTS), KeywordClassifier())


def run(engine: DialogueEngine, *lines: str) -> SessionState:
    state, _ = engine.start("c1", "u1", "wecom_add_gift", at=AT)
    for line in lines:
        if line == "<silence>":
            event = CustomerEvent(EventKind.SILENCE)
        elif line.startswith("<dtmf:"):
            event = CustomerEvent(EventKind.DTMF, digits=line[6:-1])
        else:
            event = CustomerEvent(EventKind.SPEECH, text=line)
        state, _ = engine.step(state, event, AT)
        if state.ended:
            break
    return state


def test_opening_discloses_and_sends_sms(engine: DialogueEngine) -> None:
    _, reply = engine.start("c1", "u1", "wecom_add_gift", at=AT)
    assert [u.clip for u in reply.utterances] == ["disclosure", "wag_opening"]
    assert "智能客服助理" in reply.utterances[0].text
    assert not reply.utterances[0].barge_in  # the disclosure is not interruptible
    assert [a.type for a in reply.actions] == ["play", "play", "send_sms", "listen"]
    assert "meiliyouxuan01" in reply.actions[2].text


def test_opt_out_hangs_up_in_the_same_reply(engine: DialogueEngine) -> None:
    state, _ = engine.start("c1", "u1", "wecom_add_gift", at=AT)
    state, reply = engine.step(state, CustomerEvent(EventKind.SPEECH, text="别再给我打电话了"), AT)
    assert reply.ended and reply.actions[-1].type == "hangup"
    assert (state.outcome, state.grade) == ("do_not_contact", "F")


def test_robot_question_answered_truthfully_then_back(engine: DialogueEngine) -> None:
    state = run(engine, "你是机器人吗")
    assert state.node == "answer_robot" and "asked_robot" in state.tags
    text = engine.bundle.personas["xiaomei"].clips["answer_robot"].text
    assert "不是真人" in text
    state = run(engine, "你是机器人吗", "不用")
    assert state.node == "opening"  # $back to where the question interrupted


def test_side_question_returns_to_the_interrupted_node(engine: DialogueEngine) -> None:
    state = run(engine, "喂", "多少钱")
    assert state.node == "explain" and "price_sensitive" in state.tags


def test_silence_reprompts_then_closes(engine: DialogueEngine) -> None:
    state = run(engine, "<silence>", "<silence>")
    assert not state.ended and state.silence_count == 2
    state = run(engine, "<silence>", "<silence>", "<silence>")
    assert (state.outcome, state.grade, state.ended_by) == ("no_response", "E", "bot")


def test_fallback_limit(engine: DialogueEngine) -> None:
    state = run(engine, "今天天气不错", "股票涨了吗")
    assert not state.ended and state.fallback_count == 2
    state = run(engine, "今天天气不错", "股票涨了吗", "火星有水吗")
    assert state.ended and state.node == "close_unclear"


def test_dtmf_defaults(engine: DialogueEngine) -> None:
    assert run(engine, "<dtmf:0>").outcome == "transferred"
    state = run(engine, "<dtmf:1>")
    assert state.node == "how_to_add" and "high_intent" in state.tags


def test_low_confidence_is_not_understood() -> None:
    bundle = load_bundle(SCRIPTS)
    track = bundle.tracks["wecom_add_gift"]
    state = SessionState("c", track.id, "u", track.start, AT.isoformat())
    turn = Turn(EventKind.SPEECH, "opt_out", 0.3, Parse("嗯嗯", "opt_out", 0.3))
    decision = policy.decide(track, state, turn)
    assert not decision.ended and decision.state.fallback_count == 1
    assert decision.clips[0] == "fallback_prompt"


def test_callback_time_slot_from_entity() -> None:
    bundle = load_bundle(SCRIPTS)
    track = bundle.tracks["wecom_add_gift"]
    state = SessionState("c", track.id, "u", "ask_callback", AT.isoformat())
    when = "2026-11-24T15:00:00+08:00"
    parse = Parse("明天下午三点吧", "busy", 0.9, entities=(Entity("time", when, 0, 6, "test"),))
    decision = policy.decide(track, state, Turn(EventKind.SPEECH, "busy", 0.9, parse))
    assert decision.state.slots["callback_time"] == when
    assert decision.state.outcome == "call_back_later" and decision.state.grade == "C"


def test_policy_is_deterministic_and_pure() -> None:
    bundle = load_bundle(SCRIPTS)
    track = bundle.tracks["wecom_add_gift"]
    state = SessionState("c", track.id, "u", track.start, AT.isoformat())
    turn = Turn(EventKind.SPEECH, "affirm", 0.9, Parse("好的", "affirm", 0.9))
    first = policy.decide(track, state, turn)
    assert policy.decide(track, state, turn) == first
    assert state.node == track.start  # input state untouched


def test_customer_hangup_after_talking(engine: DialogueEngine) -> None:
    state, _ = engine.start("c1", "u1", "wecom_add_gift", at=AT)
    state, _ = engine.step(state, CustomerEvent(EventKind.HANGUP), AT)
    assert (state.outcome, state.ended_by) == ("hung_up_early", "customer")
    state = run(engine, "喂", "多少钱")
    state, _ = engine.step(state, CustomerEvent(EventKind.HANGUP), AT)
    assert state.outcome == "completed" and state.grade == "B"  # asked price: interested


def test_state_round_trips_through_json(engine: DialogueEngine) -> None:
    import json

    state = run(engine, "喂", "多少钱")
    again = SessionState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state


def test_same_side_question_over_and_over_closes_politely(engine: DialogueEngine) -> None:
    state = run(engine, "多少钱", "多少钱", "多少钱")
    assert not state.ended and state.node == "opening"
    state = run(engine, "多少钱", "多少钱", "多少钱", "多少钱")
    assert state.ended and state.node == "close_unclear"


def test_branch_unset_goes_where_the_slot_has_no_value() -> None:
    """`next: {slot, unset, cases, default}`: unset for a slot never filled or set to null; a value,
    even the text "None", goes through cases/default. The old `cases: {"None": …}` spelling still works."""
    from dialogue.schema import Branch

    branch = Branch(slot="callback_time", unset="ask", cases={"later": "wait"}, default="close")
    old = Branch(slot="callback_time", cases={"None": "ask"}, default="close")

    def state(**slots: object) -> SessionState:
        return SessionState("c1", "t", "u1", "n", AT.isoformat(), slots=slots)

    assert policy._branch(branch, state()) == "ask"
    assert policy._branch(branch, state(callback_time=None)) == "ask"
    assert policy._branch(branch, state(callback_time="None")) == "close"
    assert policy._branch(branch, state(callback_time="later")) == "wait"
    assert policy._branch(branch, state(callback_time="2026-11-24T15:00:00+08:00")) == "close"
    assert policy._branch(old, state()) == "ask" and policy._branch(old, state(callback_time="x")) == "close"


def test_busy_without_a_time_asks_for_one(engine: DialogueEngine) -> None:
    """The shipped tracks use `unset:`; the time-given branch is covered by the stories (real NLU)."""
    def call(*lines: str) -> SessionState:
        state, _ = engine.start("c2", "u2", "presale_deposit", at=AT)
        for line in lines:
            state, _ = engine.step(state, CustomerEvent(EventKind.SPEECH, text=line), AT)
        return state

    asked = call("我现在在忙")
    assert asked.node == "ask_callback" and "callback_time" not in asked.slots


def _speech(text: str, intent: str, secondary: tuple[str, float] | None = None,
            entities: tuple[Entity, ...] = ()) -> Turn:
    return Turn(EventKind.SPEECH, intent, 0.95, Parse(text, intent, 0.95, entities=entities, secondary=secondary))


def _at(track_id: str, node: str, **kw: object) -> tuple[policy.Track, SessionState]:
    track = load_bundle(SCRIPTS).tracks[track_id]
    return track, SessionState("c", track.id, "u", node, AT.isoformat()).with_(**kw)


@pytest.mark.parametrize(("last", "outcome", "grade"), [("busy", "call_back_later", "C"),
                                                         ("deny", "not_interested", "D"),
                                                         ("ask_detail", "completed", "B")])
def test_hangup_reads_the_last_intent(last: str, outcome: str, grade: str) -> None:
    track, state = _at("presale_deposit", "opening", user_turns=1, last_intent=last,
                       tags=("price_sensitive",) if last == "ask_detail" else ())
    decision = policy.decide(track, state, Turn(EventKind.HANGUP))
    assert (decision.state.outcome, decision.state.grade, decision.state.ended_by) == (outcome, grade, "customer")


def test_agreement_plus_question_answers_then_keeps_the_agreement() -> None:
    track, state = _at("presale_deposit", "opening")
    for turn in (_speech("可以，那运费谁出？", "ask_logistics", ("affirm", 0.9)),
                 _speech("可以，那运费谁出？", "affirm", ("ask_logistics", 0.9))):
        decision = policy.decide(track, state, turn)
        assert decision.clips == ("pd_logistics", "pd_send_link")
        assert decision.state.outcome == "high_intent" and decision.terminal == "hangup"
        assert "answer_logistics" in decision.state.path


def test_weak_secondary_is_ignored() -> None:
    track, state = _at("presale_deposit", "opening")
    decision = policy.decide(track, state, _speech("可以运费", "affirm", ("ask_logistics", 0.3)))
    assert decision.clips == ("pd_send_link",)


def test_opt_out_with_a_complaint_records_both_and_honours_the_opt_out() -> None:
    track, state = _at("wecom_add_gift", "opening")
    for turn in (_speech("我要投诉你们泄露我信息", "complaint", ("opt_out", 1.0)),
                 _speech("我要投诉你们泄露我信息", "opt_out", ("complaint", 1.0))):
        decision = policy.decide(track, state, turn)
        assert "bye_opt_out" in decision.clips and "complaint_ack" not in decision.clips
        # Honoured: the call ends do_not_contact in this reply (the engine writes the opt-out).
        assert decision.state.outcome == "do_not_contact" and decision.state.ended
        assert {"do_not_contact", "complaint"} <= set(decision.state.tags)


def test_opt_out_next_to_a_question_answers_nothing() -> None:
    track, state = _at("presale_deposit", "opening")
    decision = policy.decide(track, state, _speech("多少钱都不买，别打了", "ask_price", ("opt_out", 1.0)))
    assert decision.state.outcome == "do_not_contact" and "pd_price" not in decision.clips


def test_goal_in_a_yes_after_the_robot_offer_goes_back_to_the_goal() -> None:
    track, state = _at("wecom_add_gift", "answer_robot", return_node="opening")
    goal = (Entity("goal", "add_wecom", 5, 11, "test"),)
    decision = policy.decide(track, state, _speech("嗯，那我加一下企业微信吧", "affirm", entities=goal))
    assert decision.state.node == "how_to_add" and decision.terminal == "listen"
    assert "high_intent" in decision.state.tags and "transferred" not in decision.state.tags
    bare = policy.decide(track, state, _speech("嗯好", "affirm"))
    assert bare.state.node == "transfer_human" and bare.terminal == "transfer"


def test_goal_is_ignored_where_the_node_handles_it() -> None:
    track, state = _at("wecom_add_gift", "how_to_add")
    goal = (Entity("goal", "add_wecom", 3, 7, "test"),)
    decision = policy.decide(track, state, _speech("好的，我现在就加", "affirm", entities=goal))
    assert decision.state.node == "close_confirm"


@pytest.mark.parametrize(("first", "reason"), [
    ("您拨打的电话已关机", "powered_off"), ("您拨打的电话是空号，请查证后再拨", "invalid_number"),
    ("您好，机主现在不方便接听，请问您有什么事？", "call_screening"), ("请在提示音后留言", "voicemail"),
])
def test_a_machine_on_the_line_ends_the_call_at_once_as_unreachable(engine: DialogueEngine, first: str,
                                                                    reason: str) -> None:
    state, _ = engine.start("c-unreach", "u1", "wecom_add_gift", at=AT)
    state, reply = engine.step(state, CustomerEvent(EventKind.SPEECH, text=first), AT)
    assert state.ended and (state.outcome, state.grade, state.ended_by) == ("unreachable", "E", "bot")
    assert reason in state.tags and "unreachable" in state.tags
    assert reply.utterances == () and [a.type for a in reply.actions] == ["hangup"]  # no pitch
    assert state.turns[-1]["user"] == first


def test_the_gateway_reports_unreachable_and_later_words_are_the_customer_s(engine: DialogueEngine) -> None:
    state, _ = engine.start("c-gw", "u1", "wecom_add_gift", at=AT)
    state, _ = engine.step(state, CustomerEvent(EventKind.UNREACHABLE, reason="busy"), AT)
    assert (state.outcome, "busy" in state.tags) == ("unreachable", True)
    # after the customer has spoken, the same words are the customer's, not an announcement
    state = run(engine, "喂", "我正在通话中，晚点打吧")
    assert state.outcome != "unreachable"
