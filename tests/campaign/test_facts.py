"""The runner's facts check of call touches (campaign.facts): a call the track cannot back from the
customer's record and the campaign's values is skipped before dialling, with the refusal reason
`POST /v1/calls` would answer (missing_fact:<var>, expired:<var>); calls it can back are placed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign.facts import FactsCheck
from campaign.repo import Touches
from campaign.runner import Runner
from campaign.spec import load
from tests.campaign.conftest import Recorder, at, customers
from tests.conftest import SCRIPTS

CALL = """\
name: facts_push
crowd: deposit_unpaid
{vars}
steps:
  - id: call
    channel: call
    track: presale_deposit
"""


def _run(store: Any, tmp_path: Path, name: str, variables: str) -> tuple[dict[str, str], Recorder]:
    path = tmp_path / f"{name}.yml"
    path.write_text(CALL.replace("facts_push", name).format(vars=variables), encoding="utf-8")
    rec = Recorder()
    touches = Touches.open(store)
    now = at("2026-12-11T10:00")
    runner = Runner(touches, lambda: now, calls=rec, facts=FactsCheck(store, SCRIPTS))
    touches.register(load(path, SCRIPTS), now)
    runner.execute_batch(runner.tick(now))
    return {x["customer_id"]: x["reason"] for x in touches.touch_lines(name)}, rec


def test_calls_the_record_cannot_back_are_skipped_before_dialling(store: Any, tmp_path: Path) -> None:
    store.upsert_customers(customers(3))
    missing, rec = _run(store, tmp_path, "no_deadline", "")  # the track says the deadline; nobody gave it
    assert missing == dict.fromkeys(("c0000", "c0001", "c0002"), "missing_fact:deadline") and not rec.requests
    passed, rec = _run(store, tmp_path, "passed", 'vars: {deadline: "2026-12-10", balance_start: "2026-12-11", '
                                                  'balance_end: "2026-12-13"}')
    assert set(passed.values()) == {"expired:deadline"} and not rec.requests  # 12-11: the deadline has passed
    fine, rec = _run(store, tmp_path, "fine", 'vars: {deadline: "2026-12-20", balance_start: "2026-12-21", '
                                              'balance_end: "2026-12-23"}')
    assert fine == {} and len(rec.requests) == 3  # placed, waiting for results (no touch line yet)
