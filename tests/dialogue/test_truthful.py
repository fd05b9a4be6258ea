"""Customers imported from a CSV (with and without purchases and deposits), called on every
shipped track with natural replies through the real NLU: every bot sentence (speech and SMS)
names only products, amounts, dates and purchases that the record or the campaign supports,
and a call the record cannot back is refused with missing_fact:<variable>."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.customers import Customer
from core.parse import IntentClassifier
from core.settings import Settings
from dialogue.engine import CallRefused, DialogueEngine
from dialogue.facts import CUSTOMER, binding
from dialogue.loader import Bundle, load_bundle
from dialogue.simulate import parse_line, run_call
from store import open_store
from store.demo import PERSONAS
from store.importer import parse_csv
from store.sql import SqlStore
from tests.conftest import SCRIPTS

pytestmark = pytest.mark.slow

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 12, 3, 10, 0, tzinfo=TZ)
CSV = """customer_id,phone,name,purchase_count,last_product,last_purchase_at,deposit_paid,deposit_product,\
deposit_amount,balance_paid,balance_amount,birthday
never,13800000001,王芳,0,,,false,,,false,,
bought,13800000002,李娜,3,DHA藻油软胶囊,2026-10-20,false,,,false,,1991-12-08
deposit,13800000003,张伟,1,钙维D软胶囊,2026-09-01,true,钙维D软胶囊,20,false,118,
paid_all,13800000004,刘洋,2,深海鱼油,2026-11-12,true,深海鱼油,50,true,,1985-12-06
"""
# What the campaign gives each track (the rest of a track's variables are its defaults).
CAMPAIGN = {"presale_deposit": {"deadline": "2026-12-10", "balance_start": "2026-12-11", "balance_end": "2026-12-13"},
            "balance_reminder": {"balance_deadline": "2026-12-13"}}
# Calls the records cannot back: refused, whatever the campaign says.
REFUSED = {("balance_reminder", "never"): "missing_fact:product", ("balance_reminder", "bought"): "missing_fact:product",
           ("balance_reminder", "paid_all"): "missing_fact:balance",
           ("repurchase_reminder", "never"): "missing_fact:product", ("winback_silent", "never"): "missing_fact:last_product",
           ("birthday_care", "never"): "missing_fact:birthday", ("birthday_care", "deposit"): "missing_fact:birthday"}
CONVERSATIONS = (
    ("多少钱啊？", "具体是什么活动？", "这个东西孕妇能用吗", "什么时候发货", "好的，可以"),
    ("你是哪里啊", "定金能退吗", "不需要，谢谢", "真不用了"),
    ("我在开车，你今天下午三点再打吧",),
    ("<silence>", "<silence>", "<silence>"),
)
# Claims about the customer, and the fact that must back each.
CLAIMS = {"买过": "purchased", "店买的": "purchased", "上次": "purchased", "老客户": "purchased",
          "付了定金": "deposit_paid", "之前付的": "deposit_paid", "您已经付了": "deposit_paid", "是您的生日": "birthday"}
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)元")
_DATE = re.compile(r"(\d{1,2})月(\d{1,2})日")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    root = tmp_path_factory.mktemp("truthful")
    settings = Settings(data_dir=root / "data", cache_dir=root / "cache", max_calls_per_day=1000,
                        max_calls_per_week=1000)
    path = root / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    st = open_store(settings)
    st.upsert_customers(parse_csv(path, TZ))
    yield st
    st.close()


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(SCRIPTS)


def _products(bundle: Bundle) -> set[str]:
    """Every product name the shipped data knows (demo catalogue, track defaults and samples)."""
    names = {name for p in PERSONAS for name, _, _ in p.products} | {"玻尿酸水光精华", "胶原蛋白肽口服液", "胶原蛋白肽饮"}
    for track in bundle.tracks.values():
        for var_name, var in track.variables.items():
            if "product" in var_name:
                names |= {v for v in (var.default, var.sample) if v}
    return names


def _supported(customer: Customer, values: dict[str, str], track_vars: dict[str, str | None]) -> tuple[set[str], set[str]]:
    """(amounts, dates 'M月D日') the record or the campaign backs for this call."""
    facts = customer.facts()
    texts = [v for k, v in values.items() if track_vars.get(k) != CUSTOMER] + list(facts.values())
    amounts = {m for t in texts for m in re.findall(r"\d+(?:\.\d+)?", t)}
    dates = set()
    for text in texts:
        m = re.fullmatch(r"\d{4}-(\d{2})-(\d{2})", text)
        if m:
            dates.add(f"{int(m.group(1))}月{int(m.group(2))}日")
    return amounts, dates


def _check(sentence: str, customer: Customer, products: set[str], allowed_products: set[str],
           amounts: set[str], dates: set[str]) -> list[str]:
    facts = customer.facts()
    out = [f"names {p!r}" for p in products if p in sentence and p not in allowed_products]
    out += [f"says {a}元" for a in _AMOUNT.findall(sentence) if a not in amounts]
    out += [f"says {m}月{d}日" for m, d in _DATE.findall(sentence) if f"{m}月{d}日" not in dates]
    for phrase, fact in CLAIMS.items():
        if phrase in sentence and facts.get(fact, "false") in ("false", ""):
            out.append(f"claims {phrase!r} without {fact}")
    return out


@pytest.mark.parametrize("track_id", ["wecom_add_gift", "presale_deposit", "balance_reminder",
                                      "repurchase_reminder", "winback_silent", "birthday_care"])
def test_every_bot_sentence_is_backed_by_the_record_or_the_campaign(
        track_id: str, store: SqlStore, bundle: Bundle, classifier: IntentClassifier) -> None:
    engine = DialogueEngine(bundle, classifier, store=store)
    track = bundle.track(track_id)
    bound = {k: binding(v).source or None for k, v in track.variables.items()}
    products = _products(bundle)
    problems: list[str] = []
    calls = 0
    for cid in ("never", "bought", "deposit", "paid_all"):
        customer = store.get_customer(cid)
        assert customer is not None
        expected_refusal = REFUSED.get((track_id, cid))
        for n, lines in enumerate(CONVERSATIONS):
            call_id = f"{track_id}-{cid}-{n}"
            try:
                call = run_call(engine, track=track_id, customer_id=cid, call_id=call_id, at=AT,
                                events=[parse_line(x) for x in lines], variables=CAMPAIGN.get(track_id, {}))
            except CallRefused as exc:
                assert exc.reason == expected_refusal, (track_id, cid, exc.reason)
                continue
            assert expected_refusal is None, f"{track_id} to {cid} should be refused {expected_refusal}"
            calls += 1
            values = call.state.variables
            allowed = {v for k, v in values.items() if "product" in k}
            amounts, dates = _supported(customer, values, bound)
            for turn in call.state.turns:
                said = [u["text"] for u in turn["bot"]] + [a["text"] for a in turn["actions"]
                                                           if a["type"] in ("send_sms", "send_wecom")]
                for sentence in said:
                    problems += [f"{call_id}: {p}: {sentence}" for p in
                                 _check(sentence, customer, products, allowed, amounts, dates)]
    assert calls > 0
    assert not problems, "\n".join(problems)


def test_the_check_catches_an_unbacked_claim(store: SqlStore, bundle: Bundle) -> None:
    """The sentence check itself: the issue's 「您之前买过的玻尿酸水光精华」 to a customer who never bought."""
    never = store.get_customer("never")
    assert never is not None
    found = _check("今年双十一的预售已经开始了，您之前买过的玻尿酸水光精华这次也参加预售，11月10日之前付50元定金",
                   never, _products(bundle), set(), {"50"}, set())
    assert any("买过" in p for p in found) and any("玻尿酸水光精华" in p for p in found) and "says 11月10日" in found
