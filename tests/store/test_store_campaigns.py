"""Campaign cascades: who is due per step and why; DNC, caps, window, already-sent left out; the
webhook provider against a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from core.settings import Settings
from dialogue.history import generate_history
from store.campaigns import Campaign, load_campaign, plan, task_id
from store.demo import generate_customers
from store.errors import StoreError
from store.providers import WebhookProvider, dispatch
from store.segment_sql import evaluate
from store.sql import SqlStore

from .conftest import NOW, TODAY
from .factories import result
from .test_store_segments import SCRIPTS, run_cli

CAMPAIGN = SCRIPTS / "campaigns" / "presale_deposit_push.yml"
START = NOW - timedelta(days=3)


@pytest.fixture
def demo(store: SqlStore) -> SqlStore:
    customers = list(generate_customers(800, 3, TODAY))
    store.upsert_customers(customers)
    results, attempts = generate_history(customers, 3, NOW)
    store.write_results(results)
    store.record_attempts([(cid, call_id, at, "call") for cid, call_id, at in attempts])
    return store


def _campaign(store: SqlStore) -> Campaign:
    from dataclasses import replace

    camp = load_campaign(CAMPAIGN, SCRIPTS, store)
    return replace(camp, start_at=START, steps=tuple(replace(s, scheduled_at=None) for s in camp.steps))


def test_steps_fall_due_in_order(demo: SqlStore) -> None:
    camp = load_campaign(CAMPAIGN, SCRIPTS, demo)  # no start: the plan's instant starts it
    steps = plan(demo, camp, NOW)
    assert [s.due for s in steps] == [True, False, False, False]
    assert steps[1].why == f"scheduled for {(NOW + timedelta(hours=24)).strftime('%Y-%m-%d %H:%M')}"
    assert [s.due for s in plan(demo, _campaign(demo), NOW)] == [True, True, True, True]


def test_due_lists_follow_state_and_exclusions(demo: SqlStore) -> None:
    camp = _campaign(demo)
    invite, sms, call, reminder = plan(demo, camp, NOW)
    assert invite.excluded["do_not_contact"] > 0 and invite.excluded["duplicate_phone"] > 0
    assert {tg.customer_id for tg in sms.targets} <= {tg.customer_id for tg in invite.targets}
    assert all(not tg.deposit_paid for tg in call.targets)
    assert "tags_none=promised_to_pay|not_interested" in call.why
    # The AI call leaves out exactly those the gate would refuse for a call now (the demo history
    # called some within 24 h), and nobody else.
    eligible = evaluate(demo, camp.crowd, NOW, extra=call.step.when).targets
    capped = demo.contact_blockers([tg.customer_id for tg in eligible], NOW, "call")
    assert call.excluded["frequency_cap"] == len(capped) > 0
    assert {tg.customer_id for tg in call.targets} == {tg.customer_id for tg in eligible} - set(capped)
    # ... and the WeCom reminder targets high-intent customers of the last two days only.
    assert reminder.targets and all(tg.last_outcome in ("high_intent", "promised_to_pay") for tg in reminder.targets)


def test_outcomes_written_back_move_customers_between_steps(demo: SqlStore) -> None:
    camp = _campaign(demo)
    _, _, call, reminder = plan(demo, camp, NOW)
    target = call.targets[0].customer_id
    demo.write_result(result("c-x", target, "high_intent", ended_at=NOW - timedelta(hours=1)))
    _, _, call2, reminder2 = plan(demo, camp, NOW)
    assert target in {tg.customer_id for tg in reminder2.targets} - {tg.customer_id for tg in reminder.targets}
    assert call2.excluded.get("frequency_cap", 0) == call.excluded.get("frequency_cap", 0)  # a result is not a call
    demo.write_result(result("c-y", target, "do_not_contact", ended_at=NOW - timedelta(minutes=30)))
    assert all(target not in {tg.customer_id for tg in s.targets} for s in plan(demo, camp, NOW))


def test_outside_the_calling_window_nobody_is_due(demo: SqlStore) -> None:
    steps = plan(demo, _campaign(demo), NOW.replace(hour=22, minute=30))
    assert all(not s.targets and s.excluded.get("outside_calling_window", 0) > 0 for s in steps)


def test_call_tasks_have_the_post_v1_calls_shape(demo: SqlStore) -> None:
    camp = _campaign(demo)
    call = plan(demo, camp, NOW)[2]
    task = call.task(camp.name, call.targets[0])
    assert task == {"call_id": f"presale_deposit_push:ai_call:{call.targets[0].customer_id}",
                    "customer_id": call.targets[0].customer_id, "track": "presale_deposit",
                    "vars": camp.vars}  # without the track's facts: the campaign's variables


class _Provider(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, Any], str, bytes]]] = []
    reject: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        doc = json.loads(body)
        _Provider.received.append((doc, self.headers.get("X-Huashu-Signature", ""), body))
        accepted = [m["task_id"] for m in doc["messages"] if m["customer_id"] not in _Provider.reject]
        payload = json.dumps({"accepted": accepted}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def provider_url() -> Iterator[str]:
    _Provider.received = []
    _Provider.reject = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms"
    server.shutdown()
    server.server_close()


def test_webhook_dispatch_records_attempts_and_never_sends_twice(demo: SqlStore, provider_url: str) -> None:
    camp = _campaign(demo)
    sms = plan(demo, camp, NOW)[1]
    _Provider.reject = {sms.targets[0].customer_id}
    provider = WebhookProvider(provider_url, secret="s3", include_phone=False)
    sent = dispatch(demo, camp.name, sms, provider, NOW, batch=100)
    assert sent == len(sms.targets) - 1
    assert len(_Provider.received) == -(-len(sms.targets) // 100)
    doc, sig, body = _Provider.received[0]
    t, v1 = (part.split("=", 1)[1] for part in sig.split(","))
    assert v1 == hmac.new(b"s3", t.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert doc["channel"] == "sms" and all("phone" not in m for m in doc["messages"])
    assert all("*" in m["phone_masked"] for m in doc["messages"])
    first = sms.targets[1]
    assert demo.attempted({task_id(camp.name, "sms_no_deposit", first.customer_id)})
    again = plan(demo, camp, NOW + timedelta(minutes=5))[1]
    assert [tg.customer_id for tg in again.targets] == [sms.targets[0].customer_id]  # only the rejected one
    assert again.excluded["already_sent"] == sent
    provider.close()


def test_provider_phones_only_when_asked(demo: SqlStore, provider_url: str) -> None:
    camp = _campaign(demo)
    wecom = plan(demo, camp, NOW)[0]
    provider = WebhookProvider(provider_url, include_phone=True)
    dispatch(demo, camp.name, wecom, provider, NOW)
    phones = {c.customer_id: c.phone for c in generate_customers(800, 3, TODAY)}
    msgs = [m for doc, _, _ in _Provider.received for m in doc["messages"]]
    assert msgs and all(m["phone"] == phones[m["customer_id"]] for m in msgs)
    provider.close()


def test_a_failing_provider_is_a_clear_error(demo: SqlStore) -> None:
    camp = _campaign(demo)
    with pytest.raises(StoreError, match=r"provider webhook http://127\.0\.0\.1:1/x failed"):
        dispatch(demo, camp.name, plan(demo, camp, NOW)[0], WebhookProvider("http://127.0.0.1:1/x"), NOW)
    with pytest.raises(StoreError, match="call step"):
        dispatch(demo, camp.name, plan(demo, camp, NOW)[2], WebhookProvider("http://127.0.0.1:1/x"), NOW)


def test_bad_campaign_files(tmp_path: Path, store: SqlStore) -> None:
    path = tmp_path / "c.yml"
    path.write_text("name: c\ncrowd: deposit_unpaid\nsteps:\n  - {id: a, channel: call}\n", encoding="utf-8")
    with pytest.raises(StoreError, match="needs `track`"):
        load_campaign(path, SCRIPTS, store)
    path.write_text("name: c\ncrowd: nope\nsteps:\n  - {id: a, channel: sms, text: hi}\n", encoding="utf-8")
    with pytest.raises(StoreError, match="unknown segment 'nope'"):
        load_campaign(path, SCRIPTS, store)
    path.write_text("name: c\ncrowd: deposit_unpaid\nsteps:\n  - {id: a, channel: sms, text: hi, "
                    "when: {colour: red}}\n", encoding="utf-8")
    with pytest.raises(StoreError, match="colour"):
        load_campaign(path, SCRIPTS, store)


def test_cli_plan_writes_lists_and_call_tasks(demo: SqlStore, store_settings: Settings, tmp_path: Path) -> None:
    out_dir = tmp_path / "plan"
    code, out, err = run_cli(["campaign", "plan", str(CAMPAIGN), "--start", START.isoformat(), "--at", NOW.isoformat(),
                              "--out", str(out_dir)], store_settings)
    assert code == 0, err
    assert "ai_call" in out and "frequency_cap" in out
    doc = json.loads((out_dir / "plan.json").read_text(encoding="utf-8"))
    call_step = next(s for s in doc["steps"] if s["id"] == "ai_call")
    tasks = [json.loads(line) for line in (out_dir / "call_tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(tasks) == call_step["count"] > 0 and set(tasks[0]) == {"call_id", "customer_id", "track", "vars"}
    csv_text = (out_dir / "presale_deposit_push-sms_no_deposit.csv").read_text(encoding="utf-8")
    assert csv_text.startswith("task_id,customer_id,phone,") and "****" in csv_text


def test_call_tasks_carry_the_customers_facts_and_the_campaigns_vars(demo: SqlStore, store_settings: Settings) -> None:
    from dataclasses import replace

    from huashu.cli.store import _task_vars

    camp = _campaign(demo)
    call = plan(demo, camp, NOW, _task_vars(store_settings, demo, NOW))[2]
    assert call.targets
    bought = 0
    for tg in call.targets:
        task = call.task(camp.name, tg)
        customer = demo.get_customer(tg.customer_id)
        assert customer is not None
        assert task["vars"]["deadline"] == "2026-12-10" and task["vars"]["activity"] == "双十二"
        if customer.purchase_count and customer.last_product:
            bought += 1
            assert task["vars"]["last_product"] == customer.last_product
        else:
            assert "last_product" not in task["vars"]  # never a default product "您之前买过"
    assert 0 < bought < len(call.targets)
    # The campaign forgot its deadline: nobody is called, every customer left out with the reason.
    no_dates = plan(demo, replace(camp, vars={}), NOW, _task_vars(store_settings, demo, NOW))[2]
    assert not no_dates.targets and no_dates.excluded["missing_fact:deadline"] == len(call.targets)
    passed = plan(demo, replace(camp, vars={**camp.vars, "deadline": "2026-05-31"}), NOW,
                  _task_vars(store_settings, demo, NOW))[2]
    assert not passed.targets and passed.excluded["expired:deadline"] == len(call.targets)


def test_balance_call_tasks_say_the_customers_own_order(demo: SqlStore, store_settings: Settings) -> None:
    from dataclasses import replace

    from huashu.cli.store import _task_vars

    camp = load_campaign(SCRIPTS / "campaigns" / "balance_reminder.yml", SCRIPTS, demo)
    step = next(s for s in camp.steps if s.spec.channel == "call")
    camp = replace(camp, start_at=START, steps=tuple(replace(s, scheduled_at=None, spec=s.spec.model_copy(
        update={"requires": None})) for s in camp.steps))
    call = next(sp for sp in plan(demo, camp, NOW, _task_vars(store_settings, demo, NOW))
                if sp.step.spec.id == step.spec.id)
    assert call.targets
    for tg in call.targets:
        customer = demo.get_customer(tg.customer_id)
        assert customer is not None and customer.deposit_amount is not None and customer.balance_amount is not None
        v = call.task(camp.name, tg)["vars"]
        assert (v["product"], v["deposit"], v["balance"]) == (
            customer.deposit_product, f"{customer.deposit_amount:g}", f"{customer.balance_amount:g}")
        assert v["final_price"] == f"{customer.deposit_amount + customer.balance_amount:g}"
