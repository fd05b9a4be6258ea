"""Crowd packages on demo data: SQL evaluation equals the plain-Python reading, for every shipped
segment on both databases; one target per phone; no do-not-contact customer ever exported."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from core.settings import Settings
from dialogue.history import generate_history
from store import schema as t
from store.demo import generate_customers
from store.errors import StoreError
from store.segment_sql import evaluate
from store.segments import Segment, load_segment, load_segments, parse_where
from store.sql import SqlStore

from .conftest import NOW, PHONE_KEY, TODAY
from .factories import customer
from .reference import World

SCRIPTS = Settings().effective_scripts_dir
SEGMENTS = load_segments(SCRIPTS)


@pytest.fixture
def demo(store: SqlStore) -> tuple[SqlStore, World]:
    customers = list(generate_customers(1500, 11, TODAY))
    store.upsert_customers(customers)
    results, _ = generate_history(customers, 11, NOW)
    store.write_results(results)
    world = World(NOW, customers, results)
    assert world.dnc_ids and len({c.phone for c in customers}) < len(customers)  # the data exercises both
    return store, world


def test_every_shipped_segment_matches_the_reference(demo: tuple[SqlStore, World]) -> None:
    store, world = demo
    sizes = {}
    for name, seg in SEGMENTS.items():
        got = {tg.customer_id for tg in evaluate(store, seg, NOW).targets}
        assert got == world.evaluate(seg), name
        sizes[name] = len(got)
    assert all(sizes.values()), f"a segment is empty on the demo data, so it tests nothing: {sizes}"


def test_one_target_per_phone_and_no_do_not_contact(demo: tuple[SqlStore, World]) -> None:
    store, world = demo
    ev = evaluate(store, SEGMENTS["deposit_unpaid"], NOW)
    ids = [tg.customer_id for tg in ev.targets]
    with store.engine.connect() as conn:
        hashes = dict(conn.execute(sa.select(t.customers.c.customer_id, t.customers.c.phone_hash)).tuples().all())
        dnc_hashes = set(conn.execute(sa.select(t.do_not_contact.c.phone_hash)).scalars())
    assert len({hashes[i] for i in ids}) == len(ids)
    assert not set(ids) & world.dnc_ids
    assert not {hashes[i] for i in ids} & dnc_hashes
    assert ev.excluded_dnc > 0 and ev.duplicates > 0
    assert ev.matched == len(ids) + ev.excluded_dnc + ev.duplicates


def test_new_opt_out_leaves_the_segment_at_once(demo: tuple[SqlStore, World]) -> None:
    store, _ = demo
    seg = SEGMENTS["deposit_unpaid"]
    first = evaluate(store, seg, NOW).targets[0]
    store.mark_do_not_contact(first.customer_id, "opt_out", "chat:1", NOW)
    assert first.customer_id not in {tg.customer_id for tg in evaluate(store, seg, NOW).targets}


def _tiny(store: SqlStore) -> None:
    store.upsert_customers([
        customer("a", "13900000001", persona_group="孕妇", purchase_count=0),
        customer("b", "13900000002", persona_group="老人", purchase_count=3, total_spent=900.0),
        customer("c", "13900000003", persona_group="老人", purchase_count=1, total_spent=50.0),
    ])


def _names(store: SqlStore, where: dict[str, object]) -> list[str]:
    seg = Segment("t", "", "", parse_where(where, "test"), False, SEGMENTS["rfm_top"].rfm, Path("t.yml"))
    return [tg.customer_id for tg in evaluate(store, seg, NOW).targets]


def test_any_of_and_not_combine(store: SqlStore) -> None:
    _tiny(store)
    assert _names(store, {"persona_group": "老人"}) == ["b", "c"]
    assert _names(store, {"not": {"persona_group": "老人"}}) == ["a"]
    assert _names(store, {"any_of": [{"repurchase": "never"}, {"total_spent": {"min": 500}}]}) == ["a", "b"]
    assert _names(store, {"not": {"deposit_paid": True}}) == ["a", "b", "c"]


def test_test_customers_are_left_out(store: SqlStore) -> None:
    _tiny(store)
    store.ensure_customer("simulated")
    assert "simulated" not in _names(store, {})


def test_time_windows_follow_the_frozen_clock(store: SqlStore) -> None:
    store.upsert_customers([customer("x", "13900000009", last_active_at=NOW - timedelta(days=5))])
    assert _names(store, {"active_within_days": 7}) == ["x"]
    assert _names(store, {"active_within_days": 3}) == []
    assert _names(store, {"inactive_for_days": 3}) == ["x"]


@pytest.mark.parametrize(("text", "message"), [
    ("name: bad\nwhere: {colour: red}\n", "colour"),
    ("name: bad\nwhere: {repurchase: sometimes}\n", "repurchase"),
    ("name: other\nwhere: {}\n", "must match the file name"),
    ("name: bad\nwhere: {active_within_days: -3}\n", "active_within_days"),
    ("[1, 2]\n", "a segment file is a mapping"),
])
def test_bad_segment_files_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StoreError, match=re.escape(message)) as info:
        load_segment(path)
    assert str(path) in str(info.value)


# ---- the CLI on demo data -------------------------------------------------------------------------
def cli() -> typer.Typer:
    from huashu.cli import store as store_cli

    app = typer.Typer()
    store_cli.register(app)
    return app


def run_cli(args: list[str], settings: Settings) -> tuple[int, str, str]:
    env = {"HUASHU_DATA_DIR": str(settings.data_dir), "HUASHU_DATABASE_URL": settings.effective_database_url,
           "HUASHU_PHONE_KEY": PHONE_KEY, "COLUMNS": "200"}
    result = CliRunner().invoke(cli(), args, env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_export_deposit_unpaid_for_sms_is_deduplicated_masked_and_without_opt_outs(
        store_settings: Settings, store: SqlStore, tmp_path: Path) -> None:
    code, out, err = run_cli(["customers", "demo", "--n", "3000", "--today", TODAY.isoformat()], store_settings)
    assert code == 0, err
    # One extra opt-out through the engine's path, on a number another customer shares.
    with store.engine.connect() as conn:
        shared = conn.execute(sa.select(t.customers.c.phone_hash).group_by(t.customers.c.phone_hash)
                              .having(sa.func.count() > 1).limit(1)).scalar_one()
        mates = list(conn.execute(sa.select(t.customers.c.customer_id)
                                  .where(t.customers.c.phone_hash == shared)).scalars())
    store.mark_do_not_contact(mates[0], "opt_out", "call:test", NOW)
    out_file = tmp_path / "sms.csv"
    code, out, err = run_cli(["segments", "export", "deposit_unpaid", "--channel", "sms", "--out", str(out_file),
                              "--at", NOW.isoformat()], store_settings)
    assert code == 0, err
    assert out_file.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel on Chinese Windows reads names right
    rows = list(csv.DictReader(out_file.open(encoding="utf-8-sig")))
    assert rows and all(re.fullmatch(r"1\d\d\*{4}\d{4}", r["phone"]) for r in rows)
    ids = [r["customer_id"] for r in rows]
    with store.engine.connect() as conn:
        hashes = dict(conn.execute(sa.select(t.customers.c.customer_id, t.customers.c.phone_hash)).tuples().all())
        dnc_ids = set(conn.execute(sa.select(t.do_not_contact.c.customer_id)).scalars())
        dnc_hashes = set(conn.execute(sa.select(t.do_not_contact.c.phone_hash)).scalars())
    assert len(dnc_ids) > 10
    assert len(ids) == len(set(ids)) == len({hashes[i] for i in ids})  # one row per phone
    assert not set(ids) & dnc_ids and not set(mates) & set(ids)
    assert not {hashes[i] for i in ids} & dnc_hashes
    assert f"{len(rows)} target(s)" in out

    code, _, _ = run_cli(["segments", "export", "deposit_unpaid", "--channel", "sms", "--out",
                          str(tmp_path / "p.csv"), "--at", NOW.isoformat(), "--provider-phones", "--no-bom"],
                         store_settings)
    assert code == 0 and (tmp_path / "p.csv").read_bytes().startswith(b"customer_id,")
    provider = {r["customer_id"]: r["phone"] for r in csv.DictReader((tmp_path / "p.csv").open(encoding="utf-8"))}
    demo_phones = {c.customer_id: c.phone for c in generate_customers(3000, 7, TODAY)}
    assert provider == {i: demo_phones[i] for i in ids}


def test_cli_errors_are_messages_not_tracebacks(store_settings: Settings, tmp_path: Path) -> None:
    code, _, err = run_cli(["segments", "export", "nope", "--channel", "sms", "--out", str(tmp_path / "x.csv")],
                           store_settings)
    assert code == 1 and "unknown segment 'nope'" in err
    code, _, err = run_cli(["segments", "export", "deposit_unpaid", "--channel", "fax", "--out",
                            str(tmp_path / "x.csv")], store_settings)
    assert code == 2 and "--channel" in err
    code, out, _ = run_cli(["segments", "list"], store_settings)
    assert code == 0 and "deposit_unpaid" in out and "rfm_important_value" in out
    code, out, _ = run_cli(["segments", "show", "balance_unpaid", "--at", NOW.isoformat()], store_settings)
    assert code == 0 and "balance_paid: false" in out and "0 target(s)" in out




def test_rfm_and_cycle_boundaries(store: SqlStore) -> None:
    store.upsert_customers([
        customer("d30", "13900000030", purchase_count=6, total_spent=2000.0, last_purchase_at=TODAY - timedelta(30),
                 cycle_days=30),
        customer("d31", "13900000031", purchase_count=5, total_spent=1999.0, last_purchase_at=TODAY - timedelta(31),
                 cycle_days=40),
        customer("d180", "13900000180", purchase_count=1, total_spent=10.0,
                 last_purchase_at=TODAY - timedelta(180)),
    ])
    assert _names(store, {"rfm_min": {"r": 5, "f": 5, "m": 5}}) == ["d30"]
    assert _names(store, {"rfm_min": {"r": 4, "f": 4, "m": 4}}) == ["d30", "d31"]
    assert _names(store, {"rfm_min": {"r": 2}}) == ["d180", "d30", "d31"]
    assert _names(store, {"rfm_class": "general_retain"}) == ["d180"]
    assert _names(store, {"rfm_class": "important_value"}) == ["d30", "d31"]
    assert _names(store, {"cycle_due": 1.0}) == ["d30"]  # 30 of 30 days; 31 of 40 is not yet
    assert _names(store, {"cycle_due": 0.775}) == ["d30", "d31"]
