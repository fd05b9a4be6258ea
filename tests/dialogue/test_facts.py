"""Track variables bound to customer facts and campaign variables: binding checks at load,
what a call needs, refusals (missing_fact / expired), relative spoken times, demo history."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from core.customers import FACTS, Customer
from dialogue.engine import CallRefused, DialogueEngine
from dialogue.facts import needed_variables, resolve
from dialogue.history import generate_history
from dialogue.loader import Bundle, ScriptError, load_bundle
from dialogue.paths import track_paths
from dialogue.render import speak_datetime
from store.demo import generate_customers
from tests.conftest import SCRIPTS
from tests.dialogue.keywords import KeywordClassifier

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 12, 3, 10, 0, tzinfo=TZ)
PRESALE_DATES = {"deadline": "2026-12-10", "balance_start": "2026-12-11", "balance_end": "2026-12-13"}


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(SCRIPTS)


@pytest.fixture(scope="module")
def engine(bundle: Bundle) -> DialogueEngine:
    return DialogueEngine(bundle, KeywordClassifier())


# -- load-time checks -------------------------------------------------------------------------
@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    root = tmp_path / "scripts_zh"
    shutil.copytree(SCRIPTS / "personas", root / "personas")
    (root / "tracks").mkdir()
    shutil.copy(SCRIPTS / "tracks" / "balance_reminder.yml", root / "tracks")
    return root


def _edit(root: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = root / "tracks" / "balance_reminder.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8").replace("\n    on:", "\n    'on':"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _line(path: Path, prefix: str) -> int:
    return next(i for i, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if t.startswith(prefix))


@pytest.mark.parametrize(("change", "message"), [
    ({"from": "customer.favourite_colour", "claim": True, "sample": "x"}, "unknown customer fact"),
    ({"from": "crm.product", "sample": "x"}, "must be customer.<fact> or campaign.<name>"),
    ({"from": "customer.deposit_product", "claim": True, "default": "玻尿酸水光精华"}, "never falls back to a default"),
    ({"from": "campaign.product", "claim": True, "default": "x"}, "claim: true needs from: customer.<fact>"),
    ({"from": "customer.deposit_product", "claim": True}, "needs a sample"),
])
def test_bad_bindings_name_file_line_and_variable(scripts: Path, change: dict[str, Any], message: str) -> None:
    path = _edit(scripts, lambda d: d["variables"].update(product=change))
    with pytest.raises(ScriptError) as info:
        load_bundle(scripts)
    found = [str(p) for p in info.value.problems]
    line = _line(path, "  product:")
    assert any(p.startswith(f"{path}:{line}: variables.product: ") and message in p for p in found), found


def test_a_date_default_must_be_a_date(scripts: Path) -> None:
    path = _edit(scripts, lambda d: d["variables"]["balance_deadline"].update(default="11月13日"))
    with pytest.raises(ScriptError) as info:
        load_bundle(scripts)
    assert str(info.value.problems[0]) == (
        f"{path}:{_line(path, '  balance_deadline:')}: variables.balance_deadline: variable 'balance_deadline': "
        "default '11月13日' is not a date (YYYY-MM-DD or +Nd)")


def test_a_branch_on_an_undeclared_variable_is_refused(scripts: Path) -> None:
    _edit(scripts, lambda d: d["nodes"].update(route={"next": {"var": "bought", "default": "opening"}}))
    with pytest.raises(ScriptError) as info:
        load_bundle(scripts)
    assert any("route: branch on undeclared variable 'bought'" in str(p) for p in info.value.problems)


def test_every_fact_a_customer_can_have_is_a_known_fact() -> None:
    full = Customer("c", name="王芳", persona_group="孕妇", deposit_paid=True, deposit_product="DHA", deposit_amount=50,
                    balance_amount=218, purchase_count=2, last_product="叶酸", last_purchase_at=date(2026, 10, 1),
                    total_spent=300, cycle_days=30, birthday=date(1990, 5, 3))
    assert set(full.facts()) == set(FACTS)
    assert full.facts()["order_total"] == "268"


def test_a_record_without_a_purchase_or_deposit_has_no_such_facts() -> None:
    facts = Customer("c", deposit_product="DHA", deposit_amount=50, last_product="叶酸").facts()
    assert not {"deposit_product", "deposit_amount", "last_product", "last_purchase_at", "balance_amount"} & set(facts)
    assert facts["purchased"] == "false" and facts["deposit_paid"] == "false"


# -- what a call needs -------------------------------------------------------------------------
def test_a_claim_behind_a_branch_is_not_needed(bundle: Bundle) -> None:
    presale = bundle.track("presale_deposit")
    needed = needed_variables(presale, bundle.persona_for(presale))
    assert "last_product" not in needed and "deadline" in needed
    balance = bundle.track("balance_reminder")
    assert {"product", "deposit", "balance", "final_price"} <= set(needed_variables(balance, bundle.persona_for(balance)))


def test_claims_come_from_the_record_never_from_a_default_or_the_caller(bundle: Bundle) -> None:
    track = bundle.track("balance_reminder")
    needed = needed_variables(track, bundle.persona_for(track))
    paid = Customer("c", deposit_paid=True, deposit_product="钙维D软胶囊", deposit_amount=20, balance_amount=118).facts()
    res = resolve(track, needed, facts=paid, call_vars={"balance_deadline": "2026-12-13", "product": "别的"},
                  test_customer=False, today=AT.date())
    assert res.refused is None
    assert (res.values["product"], res.values["deposit"], res.values["balance"], res.values["final_price"]) == \
        ("钙维D软胶囊", "20", "118", "138")
    unpaid = resolve(track, needed, facts=Customer("c").facts(), call_vars={"balance_deadline": "2026-12-13"},
                     test_customer=False, today=AT.date())
    assert unpaid.refused == "missing_fact:product"


def test_engine_refuses_missing_facts_and_passed_dates(engine: DialogueEngine) -> None:
    never = Customer("c").facts()
    with pytest.raises(CallRefused) as info:
        engine.start("r1", "c", "repurchase_reminder", at=AT, facts=never)
    assert info.value.reason == "missing_fact:product"
    with pytest.raises(CallRefused) as info:
        engine.start("r2", "c", "presale_deposit", at=AT, facts=never,
                      variables={**PRESALE_DATES, "deadline": "2026-12-02"})
    assert info.value.reason == "expired:deadline"
    state, _ = engine.start("r3", "c", "presale_deposit", at=AT, facts=never,
                            variables={**PRESALE_DATES, "deadline": "2026-12-03"})  # the last day still counts
    assert state.node == "opening_new"


def test_a_test_customer_hears_the_samples(engine: DialogueEngine) -> None:
    _, reply = engine.start("t1", "t", "balance_reminder", at=AT)
    words = "".join(u.text for u in reply.utterances)
    assert "玻尿酸水光精华" in words and "尾款是299元" in words and "12月6日之前" in words  # sample +3d


# -- times relative to the call ------------------------------------------------------------------
@pytest.mark.parametrize(("when", "said"), [
    (datetime(2026, 12, 3, 15, 0), "今天下午3点"),
    (datetime(2026, 12, 3, 20, 30), "今天晚上8点半"),
    (datetime(2026, 12, 4, 10, 0), "明天上午10点"),
    (datetime(2026, 12, 5, 9, 15), "后天上午9点15分"),
    (datetime(2026, 12, 8, 15, 0), "12月8日下午3点"),
])
def test_times_are_said_relative_to_the_call(when: datetime, said: str) -> None:
    assert speak_datetime(when, AT) == said


def test_validate_at_reports_passed_campaign_dates() -> None:
    import typer

    from huashu.cli import core

    app = typer.Typer()
    core.register(app)
    result = CliRunner().invoke(app, ["validate", "--at", "2026-12-11T10:00:00+08:00"])
    assert result.exit_code == 1
    assert "presale_deposit_push.yml" in result.stdout and "expired:deadline" in result.stdout
    ok = CliRunner().invoke(app, ["validate", "--at", "2026-12-03T10:00:00+08:00"])
    assert ok.exit_code == 0, ok.stdout


# -- demo history ---------------------------------------------------------------------------------
def test_demo_history_is_calls_its_tracks_could_have_had(bundle: Bundle) -> None:
    customers = list(generate_customers(600, 5, AT.date()))
    by_id = {c.customer_id: c for c in customers}
    results, attempts = generate_history(customers, 5, AT, bundle)
    assert len(results) == len(attempts) > 50
    assert len({r.track for r in results}) >= 4, "history spreads over the tracks"
    for r in results:
        track = bundle.track(r.track)
        assert set(r.node_path) <= set(track.nodes), r
        c = by_id[r.customer_id].as_customer()
        known = {k for k, v in track.variables.items() if v.from_ and v.from_.split(".")[1] in c.facts()}
        possible = {p.outcome: p for p in track_paths(track, known).values()}
        assert r.outcome in possible and tuple(r.node_path) == possible[r.outcome].nodes, r
        assert all(t.node in track.nodes for t in r.turns)
        if r.track == "balance_reminder":
            assert c.deposit_paid and not c.balance_paid
        if r.track == "repurchase_reminder":
            assert c.purchase_count > 0 and c.last_product


def test_a_node_branches_on_a_fact_value(scripts: Path) -> None:
    """`cases` on a boolean fact: a customer whose deposit is not paid hears no balance talk."""
    def change(d: dict[str, Any]) -> None:
        d["variables"]["paid"] = {"from": "customer.deposit_paid", "claim": True, "sample": "true"}
        d["variables"]["product"] = {"from": "customer.deposit_product", "claim": True, "sample": "x"}
        d["nodes"]["route"] = {"next": {"var": "paid", "cases": {"false": "close_polite"}, "default": "opening"}}
        d["start"] = "route"
    _edit(scripts, change)
    bundle = load_bundle(scripts)
    engine = DialogueEngine(bundle, KeywordClassifier())
    dates = {"balance_deadline": "2026-12-13"}
    test_customer, _ = engine.start("b1", "t", "balance_reminder", at=AT, variables={**dates, "paid": "false"})
    assert test_customer.ended and test_customer.path == ("route", "close_polite")
    with pytest.raises(CallRefused) as info:  # a branch on `paid` does not vouch for the product
        engine.start("b3", "c", "balance_reminder", at=AT, variables=dates, facts=Customer("c").facts())
    assert info.value.reason == "missing_fact:product"
    paid = Customer("c", deposit_paid=True, deposit_product="DHA", deposit_amount=50, balance_amount=218).facts()
    state, reply = engine.start("b2", "c", "balance_reminder", at=AT, variables=dates, facts=paid)
    assert state.node == "opening" and "付了定金的DHA" in "".join(u.text for u in reply.utterances)
