"""SqlStore on SQLite and PostgreSQL: migrations, customers, exactly-once results, profiles, privacy."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.settings import Settings
from store import open_store
from store import schema as t
from store.db import head_revision
from store.errors import StoreError, StoreUnavailableError
from store.sql import SqlStore

from .conftest import NOW, make_settings
from .factories import customer, result

RAW = "13812345678"


def test_open_creates_the_sqlite_file_and_its_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "a" / "b", phone_key="k")
    st = open_store(settings)
    try:
        assert settings.sqlite_path.is_file()
        assert st.ensure_customer("x").is_test
    finally:
        st.close()


def test_migrated_to_head_and_schema_matches_the_tables(store: SqlStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert ctx.get_current_revision() == head_revision()
        assert compare_metadata(ctx, t.metadata) == []


def test_fast_head_check_agrees_with_alembic(store: SqlStore) -> None:
    # A reopen skips alembic when the database is at head; both must name the same head.
    from store.db import at_head, script_heads

    assert script_heads() == {head_revision()}
    assert at_head(store.engine)


def test_reopen_is_idempotent_and_keeps_data(store_settings: Settings, store: SqlStore) -> None:
    store.upsert_customers([customer("c1", RAW, name="张三")])
    again = open_store(store_settings)
    try:
        got = again.get_customer("c1")
        assert got is not None and got.name == "张三"
    finally:
        again.close()


def test_bad_urls_are_named_with_the_password_masked(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="HUASHU_DATABASE_URL"):
        open_store(make_settings(tmp_path, "not a url"))
    with pytest.raises(StoreError, match="only sqlite and postgresql"):
        open_store(make_settings(tmp_path, "mysql://u:p@localhost/x"))
    with pytest.raises(StoreUnavailableError) as info:
        open_store(make_settings(tmp_path, "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nope"))
    message = str(info.value)
    assert "postgres:***@127.0.0.1:1/nope" in message and "HUASHU_DATABASE_URL" in message
    assert "s3cret" not in message


def test_another_phone_key_is_refused(tmp_path: Path, store_settings: Settings, store: SqlStore) -> None:
    other = store_settings.model_copy(update={"phone_key": "another-key"})
    with pytest.raises(StoreError, match="HUASHU_PHONE_KEY"):
        open_store(other)


def test_unknown_customer_is_none_and_ensure_makes_a_test_customer(store: SqlStore) -> None:
    assert store.get_customer("nobody") is None
    made = store.ensure_customer("nobody")
    assert made.is_test and made.customer_id == "nobody"
    assert store.ensure_customer("nobody") == made


def test_upsert_stores_profile_and_order_summary(store: SqlStore) -> None:
    store.upsert_customers([customer("c1", RAW, name="张三", persona_group="孕妇", price_sensitivity="high",
                                     deposit_paid=True, deposit_product="DHA", deposit_amount=50.0,
                                     purchase_count=2, last_purchase_at=date(2026, 5, 1), total_spent=536.0,
                                     cycle_days=60, birthday=date(1990, 6, 3), tags=("vip",),
                                     joined_at=date(2025, 1, 2), last_active_at=NOW - timedelta(days=1))])
    got = store.get_customer("c1")
    assert got is not None
    assert (got.name, got.persona_group, got.price_sensitivity, got.phone_masked) == ("张三", "孕妇", "high",
                                                                                       "138****5678")
    assert (got.deposit_paid, got.deposit_product, got.deposit_amount, got.purchase_count) == (True, "DHA", 50.0, 2)
    assert (got.last_purchase_at, got.total_spent, got.cycle_days, got.birthday) == (
        date(2026, 5, 1), 536.0, 60, date(1990, 6, 3))
    assert got.tags == {"vip"} and not got.is_test
    assert (got.joined_at, got.last_active_at) == (date(2025, 1, 2), NOW - timedelta(days=1))
    assert got.track_variables() == {"customer_name": "张三", "product": "DHA", "deposit": "50"}
    store.upsert_customers([customer("c1", RAW, name="张三丰")])  # the import is the source of truth
    again = store.get_customer("c1")
    assert again is not None and again.name == "张三丰" and not again.deposit_paid


def test_write_result_is_exactly_once(store: SqlStore) -> None:
    store.upsert_customers([customer("c1", RAW)])
    r = result("call-1", "c1", "high_intent", tags=("price_sensitive",))
    assert store.write_result(r) is True
    assert store.write_result(r) is False  # a replay writes nothing new
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.conversations)).scalar() == 1
        tags = conn.execute(sa.select(t.tags.c.tag, t.tags.c.source, t.tags.c.source_id)).all()
    assert sorted(tags) == [("high_intent", "call", "call-1"), ("price_sensitive", "call", "call-1")]
    [back] = store.list_conversations()
    assert back.to_json() == {**r.to_json(), "tags": ["high_intent", "price_sensitive"],
                              "started_at": back.started_at.isoformat(), "ended_at": back.ended_at.isoformat()}
    assert (back.started_at, back.ended_at) == (r.started_at, r.ended_at)
    assert back.turns[1].barged_in and back.turns[1].confidence == pytest.approx(0.91)
    got = store.get_customer("c1")
    assert got is not None and (got.last_outcome, got.last_grade) == ("high_intent", "A")
    assert got.last_slots == {"promised_pay_time": "2026-06-02T20:00:00+08:00"}


def test_batch_with_repeats_and_replays(store: SqlStore) -> None:
    batch = [result(f"b{i}", f"c{i % 3}", "no_response") for i in range(10)]
    assert store.write_results([*batch, batch[0], batch[5]]) == 10
    assert store.write_results(batch) == 0
    assert len(store.list_conversations()) == 10
    assert store.get_customer("c0") is not None  # results for unknown ids create test customers


def test_last_outcome_follows_the_latest_conversation_not_the_latest_write(store: SqlStore) -> None:
    store.write_result(result("new", "c1", "promised_to_pay", ended_at=NOW))
    store.write_result(result("old", "c1", "not_interested", ended_at=NOW - timedelta(days=1)))
    got = store.get_customer("c1")
    assert got is not None and got.last_outcome == "promised_to_pay"
    assert got.tags == {"promised_to_pay", "not_interested"}


def test_opt_out_result_writes_do_not_contact(store: SqlStore) -> None:
    store.upsert_customers([customer("c1", RAW)])
    store.write_result(result("call-9", "c1", "do_not_contact"))
    assert store.check_contact("c1", NOW + timedelta(days=30)) == "do_not_contact"
    profile = store.customer_profile("c1")
    assert profile is not None and profile["do_not_contact"] and profile["do_not_contact_reason"] == "opt_out"


def test_invalid_result_raises_and_writes_nothing(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        store.write_result(replace(result("x", "c1"), outcome="bought_a_car"))
    with pytest.raises(ValueError, match="unknown grade"):
        store.write_result(replace(result("x", "c1"), grade="Z"))
    assert store.list_conversations() == []


def test_list_conversations_filters(store: SqlStore) -> None:
    store.write_result(result("a", "c1", track="presale_deposit", ended_at=NOW - timedelta(days=2)))
    store.write_result(result("b", "c2", track="balance_reminder", ended_at=NOW))
    assert [c.conversation_id for c in store.list_conversations(track="balance_reminder")] == ["b"]
    assert [c.conversation_id for c in store.list_conversations(since=NOW - timedelta(days=1))] == ["b"]
    assert [c.conversation_id for c in store.list_conversations(customer_id="c1")] == ["a"]


def test_profile_is_masked_and_unknown_is_none(store: SqlStore) -> None:
    store.upsert_customers([customer("c1", RAW, name="张三")])
    store.write_result(result("p1", "c1", "call_back_later"))
    profile = store.customer_profile("c1")
    assert profile is not None
    assert profile["phone"] == "138****5678" and RAW not in repr(profile)
    assert (profile["last_outcome"], profile["last_grade"], profile["tags"]) == ("call_back_later", "C",
                                                                                 ["call_back_later"])
    assert profile["last_contact_at"] == NOW.isoformat() and profile["do_not_contact"] is False
    assert store.customer_profile("nobody") is None


def test_the_raw_phone_is_nowhere_in_the_database(store: SqlStore) -> None:
    store.upsert_customers([customer("c1", RAW, name="张三")])
    with store.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert RAW not in repr(tuple(row)), table.name


def test_same_phone_under_two_ids_is_blocked_by_one_opt_out(store: SqlStore) -> None:
    store.upsert_customers([customer("mum", "+86 138-1234-5678"), customer("dad", RAW)])
    store.mark_do_not_contact("mum", "opt_out", "call:x", NOW)
    assert store.check_contact("dad", NOW) == "do_not_contact"


def test_refusals_are_logged_masked(store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    store.upsert_customers([customer("u13812345678", RAW)])
    store.mark_do_not_contact("u13812345678", "opt_out", "call:x", NOW)
    with caplog.at_level(logging.INFO, logger="huashu.store"):
        assert store.check_contact("u13812345678", NOW) == "do_not_contact"
    text = caplog.text
    assert "reason=do_not_contact" in text and "138****5678" in text
    assert RAW not in text


def test_a_failed_batch_leaves_the_next_one_working(store: SqlStore) -> None:
    good = [result(f"ok{i}", "c1") for i in range(3)]
    with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as conn:  # the batch's transaction fails
        from store import writer

        writer.write_results(conn, [store_payload(store, r) for r in good], NOW)
        conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert store.write_results(good) == 3 and store.write_results(good) == 0


def store_payload(store: SqlStore, r: object) -> dict[str, object]:
    from store.codec import result_to_payload

    return result_to_payload(r, store.tz)  # type: ignore[arg-type]
