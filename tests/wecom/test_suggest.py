"""Suggested replies: the seed playbook per price tier, lifecycle stage, persona group and the
last call's conclusion, with the real NLU model classifying the customer's message."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

from core.customers import Customer
from core.parse import IntentClassifier
from dialogue.assembly import Runtime
from tests.dialogue.keywords import KeywordClassifier
from tests.wecom.conftest import NOW, TZ
from wecom.context import build_context, lifecycle_stage, promo_period
from wecom.library import GROUPS, STAGES, TIERS, Library
from wecom.service import WecomService
from wecom.suggest import HistoryItem, Suggester

DISCOUNT_WORDS = ("优惠", "活动价", "到手价", "减", "折", "券", "省钱", "便宜", "划算", "promo")


def service(rt: Runtime) -> WecomService:
    return WecomService(rt.settings, rt.bundle, rt.engine.classifier, rt.store, clock=lambda: NOW)


def test_price_question_gets_the_playbook_reply_per_tier(real_runtime: Runtime, library: Library) -> None:
    """Done-when of issue 8: the same "这个多少钱", different top suggestions per price tier."""
    svc = service(real_runtime)
    high = svc.suggest("c_high", "这个多少钱")
    low = svc.suggest("c_low", "这个多少钱")
    medium = svc.suggest("c_medium", "这个多少钱")
    for r in (high, low, medium):
        assert r.intent == "ask_price"
        assert len(r.suggestions) == 3
        assert [s.score for s in r.suggestions] == sorted((s.score for s in r.suggestions), reverse=True)
    assert high.suggestions[0].text != low.suggestions[0].text
    # high sensitivity: lead with the promotion value (the promo price is in the text)
    top = high.suggestions[0]
    assert top.angle == "promotion"
    assert "199" in top.text and "268" in top.text  # DHA藻油软胶囊: promo price vs list price
    # low sensitivity: professional content and service, no discount anywhere in the top 3
    assert low.suggestions[0].angle in ("professional", "service")
    for s in low.suggestions:
        assert s.angle != "promotion"
        assert not any(w in s.text for w in DISCOUNT_WORDS), s.text
    # medium: efficacy, origin, craft
    assert {s.angle for s in medium.suggestions} == {"efficacy", "origin", "craft"}
    assert all(library.replies[s.id].angle in library.spec.playbook["medium"].prefer for s in medium.suggestions)


def test_chat_picks_up_where_the_call_left_off(real_runtime: Runtime) -> None:
    svc = service(real_runtime)
    ctx = svc.context("c_promised")
    assert ctx.last_call.outcome == "promised_to_pay" and ctx.last_call.grade == "A"
    assert ctx.last_call.promised_pay_time == "7月9日晚上8点"
    assert ctx.stage == "promo"  # deposit paid, balance open
    r = svc.suggest("c_promised", "你好")
    assert r.suggestions[0].id == "will_pay_promised"
    assert "7月9日晚上8点" in r.suggestions[0].text and "玻尿酸水光精华" not in r.suggestions[0].text
    # a customer without that promise never gets the reply that quotes it
    assert all(s.id != "will_pay_promised" for s in svc.suggest("c_medium", "你好").suggestions)


def test_opted_out_customer_never_gets_a_promotion(real_runtime: Runtime) -> None:
    svc = service(real_runtime)
    r = svc.suggest("c_dnc", "这个多少钱")
    assert r.context.do_not_contact
    assert r.suggestions and all(s.angle != "promotion" for s in r.suggestions)


def test_persona_group_reply_for_product_safety(real_runtime: Runtime) -> None:
    svc = service(real_runtime)
    r = svc.suggest("c_low", "孕妇可以吃吗")
    assert r.intent == "ask_product"
    assert r.suggestions[0].id == "product_pregnant"
    assert "医生" in r.suggestions[0].text


def test_unknown_customer_gets_defaults(real_runtime: Runtime) -> None:
    r = service(real_runtime).suggest("nobody", "这个多少钱")
    assert not r.context.known and r.context.price_sensitivity == "medium" and r.context.stage == "new"
    assert len(r.suggestions) == 3


def test_history_avoids_repeating_what_the_agent_sent(library: Library, persona_vars: dict[str, str]) -> None:
    s = Suggester(library, KeywordClassifier())
    ctx = build_context(library, persona_vars, "x", Customer("x", price_sensitivity="low", purchase_count=1),
                        None, NOW)
    first = s.suggest("这个多少钱", ctx, now=NOW).suggestions
    again = s.suggest("这个多少钱", ctx, [HistoryItem("agent", first[0].text)], now=NOW).suggestions
    assert again[0].id != first[0].id
    assert first[0].id in [x.id for x in again]  # still offered, ranked lower
    assert "already_sent" in next(x for x in again if x.id == first[0].id).reasons


def test_unclear_message_is_read_with_the_previous_one(library: Library) -> None:
    s = Suggester(library, KeywordClassifier())
    alone = s.classify("那个呢")
    assert alone.intent == "out_of_scope"
    joined = s.classify("那个呢", [HistoryItem("customer", "这个多少钱")])
    assert joined.intent == "ask_price" and joined.source == "context" and joined.text == "那个呢"


def test_no_suggestion_ever_shows_a_placeholder(library: Library, persona_vars: dict[str, str]) -> None:
    """Every intent × tier × stage × group × last outcome: filled text, at most k, sorted."""
    s = Suggester(library, KeywordClassifier())
    intents = sorted({i for r in library.replies.values() for i in r.intents if i != "*"} | {"out_of_scope"})
    for tier, stage, group, outcome in itertools.product(TIERS, STAGES, (*GROUPS, ""),
                                                         (None, "promised_to_pay", "call_back_later")):
        customer = Customer("x", persona_group=group, price_sensitivity=tier, last_outcome=outcome,
                            last_slots={"promised_pay_time": "2026-07-09T20:00:00+08:00"} if outcome else {})
        ctx = build_context(library, persona_vars, "x", customer, None, NOW, stage=stage)
        for intent in intents:
            out = s.rank(intent, ctx)
            assert out, (intent, tier, stage, group)
            for sug in out:
                assert "{" not in sug.text and "}" not in sug.text, sug
                if tier == "low":
                    assert sug.angle != "promotion"


def test_lifecycle_stages(library: Library) -> None:
    spec = library.spec.lifecycle
    today = NOW
    active = Customer("a", purchase_count=3, last_purchase_at=date(2026, 6, 25))
    assert lifecycle_stage(active, spec, today)[0] == "active"
    assert lifecycle_stage(Customer("n"), spec, today)[0] == "new"
    silent = Customer("s", purchase_count=2, last_purchase_at=date(2026, 1, 5))
    assert lifecycle_stage(silent, spec, today)[0] == "silent"
    # a call that got through counts as activity; an unanswered one does not
    answered = Customer("s", purchase_count=2, last_purchase_at=date(2026, 1, 5), last_outcome="call_back_later")
    assert lifecycle_stage(answered, spec, today, (today - timedelta(days=3)).isoformat())[0] == "active"
    unanswered = Customer("s", purchase_count=2, last_purchase_at=date(2026, 1, 5), last_outcome="no_response")
    assert lifecycle_stage(unanswered, spec, today, (today - timedelta(days=3)).isoformat())[0] == "silent"
    joined = Customer("j", purchase_count=1, last_purchase_at=date(2026, 7, 6), last_outcome="wechat_added")
    assert lifecycle_stage(joined, spec, today, (today - timedelta(days=1)).isoformat())[0] == "just_joined"
    assert lifecycle_stage(joined, spec, today, (today - timedelta(days=30)).isoformat())[0] == "active"
    member = Customer("m", purchase_count=0, joined_at=date(2026, 7, 4))
    assert lifecycle_stage(member, spec, today)[0] == "just_joined"
    lapsed = Customer("l", purchase_count=1, last_purchase_at=date(2026, 7, 1),
                      last_active_at=datetime(2026, 7, 7, 9, tzinfo=TZ))
    assert lifecycle_stage(lapsed, spec, today)[0] == "active"
    browsing = Customer("b", purchase_count=2, last_purchase_at=date(2026, 1, 5),
                        last_active_at=datetime(2026, 7, 7, 9, tzinfo=TZ))
    assert lifecycle_stage(browsing, spec, today)[0] == "active"  # still browsing the shop: not silent
    presale = Customer("p", purchase_count=1, deposit_paid=True, last_purchase_at=date(2026, 7, 6))
    assert lifecycle_stage(presale, spec, today)[0] == "promo"
    double11 = datetime(2026, 11, 5, 10, tzinfo=TZ)
    assert promo_period(spec, double11.date()) == "双11预售"
    assert lifecycle_stage(active, spec, double11)[0] == "promo"


def test_promo_stage_names_the_running_promotion(library: Library, persona_vars: dict[str, str],
                                                 classifier: IntentClassifier) -> None:
    s = Suggester(library, classifier)
    ctx = build_context(library, persona_vars, "x", Customer("x", price_sensitivity="high", purchase_count=1,
                                                             persona_group="老人"),
                        None, datetime(2026, 12, 5, 10, tzinfo=TZ))
    assert ctx.stage == "promo"
    top = s.suggest("有什么优惠吗", ctx).suggestions[0]
    assert top.angle == "promotion" and "双12" in top.text and "钙维D软胶囊" in top.text
