"""End to end: `huashu simulate` against the store (both databases) is refused with the contract's
reason codes for a do-not-contact demo customer, at 22:30, and over the daily cap (frozen `--at`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from store.sql import SqlStore
from tests.conftest import ROOT

from .conftest import NOW, PHONE_KEY, TODAY
from .test_store_segments import run_cli

pytestmark = pytest.mark.slow


def simulate(settings: Settings, customer_id: str, at: str, stdin: str = "喂\n") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUASHU_DATA_DIR": str(settings.data_dir),
           "HUASHU_DATABASE_URL": settings.effective_database_url, "HUASHU_PHONE_KEY": PHONE_KEY}
    # A real customer's presale call needs the campaign's dates (a track has no default for them).
    dates = ["--var", "deadline=2026-06-10", "--var", "balance_start=2026-06-11", "--var", "balance_end=2026-06-13"]
    args = ["simulate", "--track", "presale_deposit", "--customer-id", customer_id, "--at", at, "--json", *dates]
    return subprocess.run([sys.executable, "-m", "huashu", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


def test_simulated_calls_are_refused_with_reason_codes(store_settings: Settings, store: SqlStore,
                                                       nlu_model_dir: Path) -> None:
    code, _, err = run_cli(["customers", "demo", "--n", "300", "--today", TODAY.isoformat()], store_settings)
    assert code == 0, err
    fresh_ids = [f"demo{i:06d}" for i in range(300) if store.check_contact(f"demo{i:06d}", NOW) is None]
    dnc, fresh = fresh_ids[0], fresh_ids[1]
    store.mark_do_not_contact(dnc, "opt_out", "call:earlier", NOW)  # an opt-out from an earlier call
    morning = NOW.replace(hour=10).isoformat()

    refused = simulate(store_settings, dnc, morning)
    assert refused.returncode == 3 and json.loads(refused.stdout)["refused"] == "do_not_contact"
    late = simulate(store_settings, fresh, NOW.replace(hour=22, minute=30).isoformat())
    assert late.returncode == 3 and json.loads(late.stdout)["refused"] == "outside_calling_window"
    first = simulate(store_settings, fresh, morning)
    assert first.returncode == 0, first.stderr
    second = simulate(store_settings, fresh, NOW.replace(hour=15).isoformat())
    assert second.returncode == 3 and json.loads(second.stdout)["refused"] == "frequency_cap"
    assert json.loads(first.stdout)["call_id"] in {c.conversation_id for c in store.list_conversations()}
