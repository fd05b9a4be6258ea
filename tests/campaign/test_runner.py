"""The runner on a real store (SQLite and PostgreSQL), executed directly (no broker): planning,
re-evaluation at execution, the gate, retries per call result, carrier rules, exactly-once claims."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from campaign import tables as ct
from campaign.events import CALL_RESULT, Event, record
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import load
from tests.campaign.conftest import Recorder, at, customers
from tests.conftest import SCRIPTS

CASCADE = """\
name: test_push
crowd: deposit_unpaid
steps:
  - id: invite
    channel: wecom
    text: "{name}您好"
  - id: remind
    channel: sms
    after_hours: 1
    when: {deposit_paid: false}
    text: "【小店】{name}，定金今晚截止，回T退订"
  - id: call
    channel: call
    after_hours: 1
    when: {deposit_paid: false}
    track: presale_deposit
"""


def _setup(store: Any, tmp_path: Path, text: str = CASCADE, n: int = 10) -> tuple[Runner, Recorder, Any]:
    path = tmp_path / "camp.yml"
    path.write_text(text, encoding="utf-8")
    camp = load(path, SCRIPTS)
    store.upsert_customers(customers(n))
    rec = Recorder()
    clock = {"now": at("2026-06-01T14:00")}
    touches = Touches.open(store)
    runner = Runner(touches, lambda: clock["now"], sms=rec, wecom=rec, calls=rec)
    touches.register(camp, clock["now"])
    return runner, rec, clock


def _run(runner: Runner, clock: dict[str, Any], when: str) -> list[str]:
    clock["now"] = at(when)
    return [runner.execute(i) for i in runner.tick(clock["now"])]


def _touches(store: Any) -> dict[tuple[str, str], Any]:
    with store.engine.connect() as conn:
        return {(r.step, r.customer_id): r for r in conn.execute(sa.select(ct.touches)).all()}


def _result(runner: Runner, key: str, result: str, reason: str, when: str) -> str:
    out = record(runner, Event(f"{key}:result", CALL_RESULT, key.split(":")[2].split("#")[0], at(when),
                               {"call_id": key, "result": result, "reason": reason}))
    return str(out.get("touch"))


def test_cascade_reevaluates_gates_and_retries(store: Any, tmp_path: Path) -> None:
    runner, rec, clock = _setup(store, tmp_path)
    store.mark_do_not_contact("c0001", "opt_out", "test", at("2026-06-01T08:00"))
    with store.engine.begin() as conn:  # c0003 lives in Los Angeles: 14:00 Shanghai is 23:00 there
        conn.execute(sa.text("UPDATE customers SET timezone='America/Los_Angeles' WHERE customer_id='c0003'"))

    _run(runner, clock, "2026-06-01T14:00")
    t = _touches(store)
    assert ("invite", "c0001") not in t  # opted out before: never touched
    assert t[("invite", "c0003")].state == "pending"  # outside its window: waits for 09:00 LA time
    assert t[("invite", "c0003")].due_at == at("2026-06-02T00:00")
    assert t[("invite", "c0000")].status == "sent"

    record(runner, Event("shop-1", "deposit_paid", "c0002", at("2026-06-01T14:30"), {}))
    _run(runner, clock, "2026-06-01T15:00")
    t = _touches(store)
    assert ("remind", "c0002") not in t  # paid between the steps: drops out
    assert t[("remind", "c0000")].status == "sent"

    store.mark_do_not_contact("c0009", "opt_out", "call", at("2026-06-01T15:30"))
    _run(runner, clock, "2026-06-01T16:00")
    t = _touches(store)
    assert ("call", "c0002") not in t
    assert ("call", "c0009") not in t  # opted out after the sms: left out when the call step was planned
    placed = {k for ch, k in rec.requests if ch == "call"}
    assert "test_push:call:c0004" in placed
    assert _result(runner, "test_push:call:c0004", "busy", "", "2026-06-01T16:01") == "retry"
    assert _result(runner, "test_push:call:c0004", "busy", "", "2026-06-01T16:01") == "None"  # same event again
    assert _result(runner, "test_push:call:c0005", "unreachable", "invalid_number", "2026-06-01T16:01") == \
        "unreachable"
    assert _result(runner, "test_push:call:c0006", "unreachable", "voicemail", "2026-06-01T16:01") == "fallback_sms"
    assert _result(runner, "test_push:call:c0000", "answered", "", "2026-06-01T16:03") == "answered"
    t = _touches(store)
    assert t[("call", "c0004")].state == "pending"
    assert t[("call", "c0004")].due_at == at("2026-06-01T16:31")  # busy: 30 minutes later
    assert t[("call", "c0005")].status == "unreachable" and t[("call", "c0005")].reason == "invalid_number"

    _run(runner, clock, "2026-06-01T16:20")  # the retry is not due yet; the voicemail's SMS is judged
    fallback = _touches(store)[("call~sms", "c0006")]
    assert (fallback.status, fallback.reason) == ("skipped", "frequency_cap")  # the 15:00 SMS counts
    assert ("sms", "test_push:call~sms:c0006") not in rec.requests
    assert "test_push:call:c0004#2" not in {k for _, k in rec.requests}
    _run(runner, clock, "2026-06-01T16:31")
    assert ("call", "test_push:call:c0004#2") in rec.requests
    _result(runner, "test_push:call:c0004#2", "busy", "", "2026-06-01T16:32")
    _run(runner, clock, "2026-06-01T17:02")
    assert _result(runner, "test_push:call:c0004#3", "busy", "", "2026-06-01T17:03") == "busy"  # 2 retries max
    _run(runner, clock, "2026-06-01T18:00")
    assert sum(1 for ch, k in rec.requests if k.startswith("test_push:call:c0004")) == 3
    assert sum(1 for _, k in rec.requests if k == "test_push:call:c0005") == 1  # invalid: never again

    _run(runner, clock, "2026-06-02T00:00")  # c0003's morning in Los Angeles
    assert _touches(store)[("invite", "c0003")].status == "sent"
    doc = runner.touches.status("test_push", at("2026-06-02T00:00"))
    steps = {s["step"]: s for s in doc["steps"]}
    assert steps["invite"]["sent"] == 9 and steps["invite"]["skipped"] == {"do_not_contact": 1}
    assert steps["remind"]["touches"] == 8
    # c0004 busy after its retries; c0007 and c0008 never got a result: failed after 30 minutes
    assert steps["call"]["answered"] == 1 and steps["call"]["unreachable"] == 2 and steps["call"]["failed"] == 3
    assert _touches(store)[("call", "c0007")].reason == "no_result"
    assert steps["invite"]["converted"] == 1  # c0002 paid after its invite


def test_a_touch_is_claimed_once_and_a_dead_workers_lease_is_taken_over(store: Any, tmp_path: Path) -> None:
    runner, rec, clock = _setup(store, tmp_path, n=2)
    ids = runner.tick(clock["now"])
    other = Runner(Touches(store), lambda: clock["now"], sms=rec, wecom=rec, calls=rec, lease=runner.lease)
    first = runner.touches.claim(ids[0], clock["now"], timedelta(minutes=5))
    assert first is not None
    assert other.touches.claim(ids[0], clock["now"], timedelta(minutes=5)) is None
    assert other.execute(ids[0]) == "not_claimed"
    sending = runner.touches.begin_send(first, clock["now"])  # ... and the worker dies here
    assert sending is not None and sending.state == "sending"
    clock["now"] += timedelta(minutes=4)
    assert other.execute(ids[0]) == "not_claimed"  # the lease still holds
    clock["now"] += timedelta(minutes=2)
    assert ids[0] in other.tick(clock["now"])
    assert other.execute(ids[0]) == "sent"  # taken over: sent with the same idempotency key
    assert other.execute(ids[0]) == "not_claimed"
    keys = [k for _, k in rec.requests]
    assert keys == ["test_push:invite:c0000"]  # the dead worker never reached the provider


def test_carrier_rules_postpone_a_call(store: Any, tmp_path: Path) -> None:
    text = CASCADE.replace("after_hours: 1", "after_hours: 0")
    runner, rec, clock = _setup(store, tmp_path, text=text, n=1)
    with store.engine.begin() as conn:  # three attempts to this callee in the last 5 minutes (other campaigns)
        for i, minute in enumerate((56, 57, 58)):
            conn.execute(ct.touch_attempts.insert().values(
                touch_id=1000 + i, attempt=1, customer_id="c0000", channel="call", at=at(f"2026-06-01T13:{minute}"),
                result="busy"))
    results = _run(runner, clock, "2026-06-01T14:00")
    assert "postponed" in results
    call = _touches(store)[("call", "c0000")]
    assert call.reason == "carrier_limit" and call.due_at == at("2026-06-01T14:01:01")
    assert not [k for ch, k in rec.requests if ch == "call"]


def test_pause_stops_dispatch_and_resume_continues(store: Any, tmp_path: Path) -> None:
    runner, _, clock = _setup(store, tmp_path, n=3)
    runner.touches.set_status("test_push", "paused", clock["now"])
    assert runner.tick(clock["now"]) == []
    runner.touches.set_status("test_push", "running", clock["now"])
    assert len(_run(runner, clock, "2026-06-01T14:00")) == 3
    runner.touches.set_status("test_push", "stopped", clock["now"])
    with pytest.raises(Exception, match="stopped"):
        runner.touches.set_status("test_push", "running", clock["now"])


TRIGGERED = """\
name: lifecycle
crowd: deposit_unpaid
branches: {a: 50, b: 50}
steps:
  - id: invite
    channel: wecom
    text: "{name}您好"
  - id: thanks_reply
    channel: wecom
    trigger: wecom_reply
    after_hours: 0.5
    branch: a
    text: "谢谢回复～"
  - id: after_tag
    channel: sms
    trigger: tag:high_intent
    text: "【小店】专属优惠，回T退订"
"""


def test_triggers_and_ab_branches(store: Any, tmp_path: Path) -> None:
    runner, rec, clock = _setup(store, tmp_path, text=TRIGGERED, n=40)
    camp, _, _ = runner.touches.campaign("lifecycle")
    branches = {f"c{i:04d}": camp.branch_of(f"c{i:04d}") for i in range(40)}
    assert set(branches.values()) == {"a", "b"}
    assert branches == {c: camp.branch_of(c) for c in branches}  # deterministic
    _run(runner, clock, "2026-06-01T14:00")
    a = next(c for c, b in branches.items() if b == "a")
    b = next(c for c, b in branches.items() if b == "b")
    for cid in (a, b):
        record(runner, Event(f"reply-{cid}", "wecom_reply", cid, at("2026-06-01T14:10"), {}))
    record(runner, Event("tag-1", "tag", b, at("2026-06-01T14:10"), {"tag": "high_intent"}))
    t = _touches(store)
    assert ("thanks_reply", a) in t and ("thanks_reply", b) not in t  # branch b has no such step
    assert t[("thanks_reply", a)].due_at == at("2026-06-01T14:40")
    assert ("after_tag", b) in t
    _run(runner, clock, "2026-06-01T14:40")
    assert ("wecom", f"lifecycle:thanks_reply:{a}") not in rec.requests  # 1 WeCom message a day (cap)
    assert _touches(store)[("thanks_reply", a)].reason == "frequency_cap"
    assert ("sms", f"lifecycle:after_tag:{b}") in rec.requests
    doc = runner.touches.status("lifecycle", clock["now"])
    invite = next(s for s in doc["steps"] if s["step"] == "invite")
    assert invite["branches"]["a"]["sent"] + invite["branches"]["b"]["sent"] == invite["sent"] == 40


def test_a_tag_written_by_a_call_starts_a_tag_step(store: Any, tmp_path: Path) -> None:
    from tests.store.factories import result

    runner, rec, clock = _setup(store, tmp_path, text=TRIGGERED, n=3)
    _run(runner, clock, "2026-06-01T14:00")
    store.write_result(result("call-9", "c0002", outcome="high_intent", ended_at=at("2026-06-01T14:20")))
    _run(runner, clock, "2026-06-01T14:30")
    assert ("sms", "lifecycle:after_tag:c0002") in rec.requests
    assert ("after_tag", "c0001") not in _touches(store)


def test_an_import_that_shows_a_payment_is_a_shop_event(store: Any, tmp_path: Path) -> None:
    from campaign.events import import_events, paid_state

    text = TRIGGERED.replace("trigger: tag:high_intent", "trigger: deposit_paid").replace(
        "crowd: deposit_unpaid", "crowd: all_customers_for_test")
    seg = tmp_path / "scripts" / "segments"
    seg.mkdir(parents=True)
    (seg / "all_customers_for_test.yml").write_text("name: all_customers_for_test\nwhere: {}\n", encoding="utf-8")
    path = tmp_path / "camp.yml"
    path.write_text(text, encoding="utf-8")
    store.upsert_customers(customers(3))
    touches = Touches.open(store)
    rec = Recorder()
    runner = Runner(touches, lambda: at("2026-06-01T14:00"), sms=rec, wecom=rec, calls=rec)
    touches.register(load(path, tmp_path / "scripts"), at("2026-06-01T14:00"))
    records = customers(3)
    records[1] = replace(records[1], deposit_paid=True)
    before = paid_state(store, [r.customer_id for r in records])
    store.upsert_customers(records)
    assert import_events(runner, before, records, at("2026-06-01T14:05")) == 1
    assert import_events(runner, before, records, at("2026-06-01T14:06")) == 0  # the same import again
    t = _touches(store)
    assert ("after_tag", "c0001") in t and ("after_tag", "c0000") not in t


def test_an_answered_call_that_met_voicemail_counts_as_unreachable(store: Any, tmp_path: Path) -> None:
    from tests.store.factories import result

    text = CASCADE.replace("after_hours: 1", "after_hours: 0")
    runner, _, clock = _setup(store, tmp_path, text=text, n=2)
    _run(runner, clock, "2026-06-01T14:00")
    store.write_result(result("test_push:call:c0000", "c0000", outcome="unreachable", tags=("voicemail",),
                              ended_at=at("2026-06-01T14:01")))
    assert _result(runner, "test_push:call:c0000", "answered", "", "2026-06-01T14:01") == "fallback_sms"
    assert _result(runner, "test_push:call:c0001", "failed", "refused:missing_fact:deposit_amount",
                   "2026-06-01T14:01") == "skipped"
    t = _touches(store)
    assert (t[("call", "c0000")].status, t[("call", "c0000")].reason) == ("unreachable", "voicemail")
    assert (t[("call", "c0001")].status, t[("call", "c0001")].reason) == ("skipped", "missing_fact:deposit_amount")
