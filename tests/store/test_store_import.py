"""`huashu customers import`: all rows validated, bad rows by line number, nothing half-imported."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.settings import Settings
from store import schema as t
from store.demo import generate_customers
from store.errors import ImportValidationError
from store.importer import parse_csv
from store.phones import mask_phone
from store.segment_sql import evaluate
from store.sql import SqlStore

from .conftest import NOW, TODAY, TZ
from .test_store_segments import SEGMENTS, run_cli

HEADER = ("customer_id,phone,name,persona_group,price_sensitivity,channel,deposit_paid,deposit_product,"
          "deposit_amount,balance_paid,purchase_count,last_purchase_at,total_spent,cycle_days,birthday\n")
GOOD = HEADER + (
    "c1,13812345678,张三,孕妇,high,tmall,true,DHA藻油,50,false,2,2026-05-01,536,60,1990-06-03\n"
    "c2,+86 139 0000 1111,李四,老人,,jd,否,,,,0,,,,\n"
)


def _count(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.customers)).scalar_one())


def test_good_file_imports_every_field(tmp_path: Path, store_settings: Settings, store: SqlStore) -> None:
    path = tmp_path / "c.csv"
    path.write_text(GOOD, encoding="utf-8")
    code, out, err = run_cli(["customers", "import", str(path)], store_settings)
    assert code == 0, err
    assert "imported 2 customer(s)" in out
    c1, c2 = store.get_customer("c1"), store.get_customer("c2")
    assert c1 is not None and c2 is not None
    assert (c1.name, c1.persona_group, c1.price_sensitivity, c1.channel) == ("张三", "孕妇", "high", "tmall")
    assert (c1.deposit_paid, c1.deposit_product, c1.deposit_amount, c1.balance_paid) == (True, "DHA藻油", 50.0, False)
    assert (c1.purchase_count, c1.last_purchase_at, c1.total_spent, c1.cycle_days, c1.birthday) == (
        2, date(2026, 5, 1), 536.0, 60, date(1990, 6, 3))
    assert c2.phone_masked == "139****1111" and c2.price_sensitivity == "medium" and not c2.deposit_paid


def test_bad_rows_are_all_reported_by_line_and_nothing_is_imported(
        tmp_path: Path, store_settings: Settings, store: SqlStore) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(GOOD + (
        "c3,12345,王五,,,,,,,,,,,,\n"  # line 4: phone
        "c4,13700001111,赵六,,extreme,,maybe,,-5,,,2026-13-01,,,\n"  # line 5: several columns
        "c1,13700002222,重复,,,,,,,,,,,,\n"  # line 6: repeats line 2
        ",13700003333,无名,,,,,,,,,,,,\n"  # line 7: no id
    ), encoding="utf-8")
    code, _out, err = run_cli(["customers", "import", str(path)], store_settings)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith(str(path))]
    assert [ln.split(":")[1] for ln in lines] == ["4", "5", "6", "7"]
    assert "phone: not a valid phone number" in lines[0] and "12345" not in lines[0]
    for column in ("price_sensitivity", "deposit_paid", "deposit_amount", "last_purchase_at"):
        assert column in lines[1]
    assert "repeats line 2" in lines[2] and "customer_id" in lines[3]
    assert "nothing imported" in err
    assert _count(store) == 0


def test_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("customer_id,name,colour\nc1,张三,red\n", encoding="utf-8")
    with pytest.raises(ImportValidationError) as info:
        parse_csv(path, TZ)
    assert info.value.problems == [(1, "missing required column(s): phone")]


def test_unknown_columns_are_ignored_with_one_warning(tmp_path: Path) -> None:
    # SCRM exports carry extra columns (vip_level, 会员等级): the file still imports.
    path = tmp_path / "scrm.csv"
    path.write_text("customer_id,phone,vip_level,name,会员等级\n"
                    "s1,13900000001,3,张三,金卡\ns2,13900000002,1,李四,银卡\n", encoding="utf-8")
    warnings: list[str] = []
    records = parse_csv(path, TZ, warn=warnings.append)
    assert [r.customer_id for r in records] == ["s1", "s2"] and records[0].name == "张三"
    assert warnings == [f"{path}:1: ignored unknown column(s): vip_level, 会员等级"]


def test_bad_rows_name_file_line_column_and_the_masked_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("customer_id,phone,price_sensitivity\n"
                    "b1,139000000001,high\nb2,13900000002,very\nb3,1390001,low\n", encoding="utf-8")
    with pytest.raises(ImportValidationError) as info:
        parse_csv(path, TZ)
    lines = str(info.value).splitlines()[1:]
    assert lines[0].startswith(f"{path}:2: phone: ") and "'139*****0001'" in lines[0]
    assert "139000000001" not in str(info.value) and "1390001" not in str(info.value)
    assert lines[1] == f"{path}:3: price_sensitivity: must be low, medium or high ('very')"
    assert lines[2].startswith(f"{path}:4: phone: ") and "'139****'" in lines[2]


def test_excel_gb18030_file_and_extension_columns(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(("customer_id,phone,name,is_member,joined_at,cart_at,timezone,tags\n"
                      "g1,13800001111,钱七,是,2026/05/20,2026-05-30T20:00,Asia/Tokyo,vip|high_value\n")
                     .encode("gb18030"))
    [rec] = parse_csv(path, TZ)
    assert (rec.name, rec.is_member, rec.joined_at, rec.timezone, rec.tags) == (
        "钱七", True, date(2026, 5, 20), "Asia/Tokyo", ("vip", "high_value"))
    assert rec.cart_at is not None and rec.cart_at.utcoffset() == timedelta(hours=8)
    assert "13800001111" not in repr(rec)


def test_demo_csv_round_trips_through_import(tmp_path: Path, store_settings: Settings, store: SqlStore) -> None:
    csv_path = tmp_path / "demo.csv"
    code, _, err = run_cli(["customers", "demo", "--n", "400", "--today", TODAY.isoformat(), "--no-history",
                            "--csv", str(csv_path)], store_settings)
    assert code == 0, err
    before = {n: [tg.customer_id for tg in evaluate(store, s, NOW).targets] for n, s in SEGMENTS.items()}
    with store.engine.begin() as conn:
        for table in ("tags", "orders", "customers"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    code, _out, err = run_cli(["customers", "import", str(csv_path)], store_settings)
    assert code == 0, err
    after = {n: [tg.customer_id for tg in evaluate(store, s, NOW).targets] for n, s in SEGMENTS.items()}
    assert after == before and _count(store) == 400


def test_demo_is_deterministic_and_realistic() -> None:
    a = list(generate_customers(300, 5, TODAY))
    assert a == list(generate_customers(300, 5, TODAY))
    assert a != list(generate_customers(300, 6, TODAY))
    assert {c.persona_group for c in a} == {"孕妇", "白领女性", "老人", "家庭购买"}
    assert all(len(c.phone) == 11 and mask_phone(c.phone)[3:7] == "****" for c in a)
    assert any(c.deposit_paid and not c.balance_paid for c in a) and any(c.purchase_count >= 2 for c in a)
    assert all(c.birthday is not None and c.cycle_days for c in a)


def test_wecom_external_userid_and_gender_import_and_map_to_the_customer(
        tmp_path: Path, store_settings: Settings, store: SqlStore) -> None:
    path = tmp_path / "wecom.csv"
    path.write_text("customer_id,phone,name,gender,external_userid\n"
                    "w1,13900000011,王芳,女,wmAbC123\nw2,13900000012,李强,男,\n", encoding="utf-8")
    code, _, err = run_cli(["customers", "import", str(path)], store_settings)
    assert code == 0, err
    assert store.customer_id_for_external("wmAbC123") == "w1"
    assert store.customer_id_for_external("nobody") is None
    w1, w2 = store.get_customer("w1"), store.get_customer("w2")
    assert w1 is not None and w2 is not None
    assert (w1.gender, w1.external_userid, w2.gender, w2.external_userid) == ("F", "wmAbC123", "M", None)
    bad = tmp_path / "dup.csv"
    bad.write_text("customer_id,phone,external_userid,gender\nx1,13900000021,wmX,女\nx2,13900000022,wmX,男\n"
                   "x3,13900000023,,?\n",
                   encoding="utf-8")
    with pytest.raises(ImportValidationError) as info:
        parse_csv(bad, TZ)
    text = str(info.value)
    assert "external_userid 'wmX' of customer 'x2' repeats line 2 (customer 'x1')" in text
    assert "gender: must be 女/男" in text


def test_an_external_userid_another_customer_holds_is_a_clear_error_naming_file_line_and_both(
        tmp_path: Path, store_settings: Settings, store: SqlStore) -> None:
    """Issue 16: a WeCom id already on another customer gave an IntegrityError traceback; now the
    file, line and both customer ids, nothing imported. Named together in one file they move."""
    first = tmp_path / "first.csv"
    first.write_text("customer_id,phone,external_userid\nw1,13900000031,wmA\nw2,13900000032,wmB\n", encoding="utf-8")
    assert run_cli(["customers", "import", str(first)], store_settings)[0] == 0
    clash = tmp_path / "clash.csv"
    clash.write_text("customer_id,phone,external_userid\nw3,13900000033,\nw4,13900000034,wmA\n", encoding="utf-8")
    code, _out, err = run_cli(["customers", "import", str(clash)], store_settings)
    assert code == 1 and "Traceback" not in err and "IntegrityError" not in err
    assert f"{clash}:3: external_userid 'wmA' of customer 'w4' already belongs to customer 'w1'" in err
    assert "nothing imported" in err and store.get_customer("w3") is None and store.get_customer("w4") is None
    dup = tmp_path / "dup.csv"
    dup.write_text("customer_id,phone,external_userid\nw5,13900000035,wmZ\nw6,13900000036,wmZ\n", encoding="utf-8")
    code, _out, err = run_cli(["customers", "import", str(dup)], store_settings)
    assert code == 1 and f"{dup}:3: external_userid 'wmZ' of customer 'w6' repeats line 2 (customer 'w5')" in err
    swap = tmp_path / "swap.csv"  # the file is the truth for the customers it names: a swap goes through
    swap.write_text("customer_id,phone,external_userid\nw1,13900000031,wmB\nw2,13900000032,wmA\n", encoding="utf-8")
    code, _out, err = run_cli(["customers", "import", str(swap)], store_settings)
    assert code == 0, err
    assert (store.customer_id_for_external("wmA"), store.customer_id_for_external("wmB")) == ("w2", "w1")
