"""The compliance gate with a frozen clock: do-not-contact, calling window, frequency caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from store import open_store
from store.errors import StoreError
from store.gate import CallingWindow
from store.sql import SqlStore

from .conftest import TZ, make_settings
from .factories import customer


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 6, day, hh, mm, tzinfo=TZ)


@pytest.fixture
def known(store: SqlStore) -> SqlStore:
    store.upsert_customers([customer("c1", "13900001111"), customer("c2", "13900002222")])
    return store


def test_do_not_contact_at_2230_and_over_cap_get_the_contract_codes(known: SqlStore) -> None:
    known.mark_do_not_contact("c1", "opt_out", "call:x", at(1, 10))
    assert known.check_contact("c1", at(1, 11)) == "do_not_contact"
    assert known.check_contact("c2", at(1, 22, 30)) == "outside_calling_window"
    known.record_attempt("c2", "call-1", at(1, 10))
    assert known.check_contact("c2", at(1, 15)) == "frequency_cap"


def test_calling_window_edges(known: SqlStore) -> None:
    assert known.check_contact("c2", at(1, 8, 59)) == "outside_calling_window"
    assert known.check_contact("c2", at(1, 9, 0)) is None
    assert known.check_contact("c2", at(1, 20, 59)) is None
    assert known.check_contact("c2", at(1, 21, 0)) == "outside_calling_window"


def test_naive_times_are_local_and_aware_times_are_converted(known: SqlStore) -> None:
    assert known.check_contact("c2", datetime(2026, 6, 1, 22, 30)) == "outside_calling_window"
    assert known.check_contact("c2", datetime(2026, 6, 1, 14, 30, tzinfo=UTC)) == "outside_calling_window"
    assert known.check_contact("c2", datetime(2026, 6, 1, 2, 30, tzinfo=UTC)) is None  # 10:30 in Shanghai


def test_daily_and_weekly_caps(known: SqlStore) -> None:
    known.record_attempt("c2", "d1", at(1, 10))
    assert known.check_contact("c2", at(2, 9, 59)) == "frequency_cap"  # within 24 h
    assert known.check_contact("c2", at(2, 10, 0)) is None
    known.record_attempt("c2", "d2", at(2, 10))
    known.record_attempt("c2", "d3", at(3, 10))
    assert known.check_contact("c2", at(4, 11)) == "frequency_cap"  # 3 in 7 days
    assert known.check_contact("c2", at(8, 10, 1)) is None  # d1 left the week
    known.record_attempt("c2", "d3", at(5, 10))  # same conversation id: counted once
    assert known.check_contact("c2", at(8, 10, 1)) is None


def test_caps_are_per_channel_and_inbound_chat_is_never_refused(known: SqlStore) -> None:
    known.record_attempt("c2", "sms-1", at(1, 10), channel="sms")
    assert known.check_contact("c2", at(1, 11), channel="call") is None
    assert known.check_contact("c2", at(1, 11), channel="sms") == "frequency_cap"
    known.mark_do_not_contact("c2", "opt_out", "chat:x", at(1, 10))
    assert known.check_contact("c2", at(1, 23), channel="chat") is None


def test_unknown_customer_is_judged_by_window_and_caps(known: SqlStore) -> None:
    assert known.check_contact("stranger", at(1, 10)) is None
    assert known.check_contact("stranger", at(1, 23)) == "outside_calling_window"


def test_settings_change_window_caps_and_timezone(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, calling_window="10:00-12:00", timezone="America/New_York",
                             max_calls_per_day=2, max_calls_per_week=5)
    st = open_store(settings)
    try:
        ny = datetime(2026, 6, 1, 11, 0)
        assert st.check_contact("x", ny) is None  # naive = New York wall clock
        assert st.check_contact("x", ny.replace(hour=12)) == "outside_calling_window"
        st.record_attempt("x", "a", ny)
        assert st.check_contact("x", ny + timedelta(minutes=30)) is None  # 2 per day allowed
        st.record_attempt("x", "b", ny + timedelta(minutes=30))
        assert st.check_contact("x", ny + timedelta(minutes=45)) == "frequency_cap"
    finally:
        st.close()


def test_customer_timezone_overrides_the_default(known: SqlStore) -> None:
    known.upsert_customers([customer("tokyo", "13900003333", timezone="Asia/Tokyo")])
    # 20:30 in Shanghai is 21:30 in Tokyo: outside that customer's window.
    assert known.check_contact("tokyo", at(1, 20, 30)) == "outside_calling_window"
    assert known.check_contact("c2", at(1, 20, 30)) is None


def test_window_parsing() -> None:
    night = CallingWindow.parse("21:00-09:00")
    assert night.allows(datetime(2026, 1, 1, 23, 0)) and not night.allows(datetime(2026, 1, 1, 12, 0))
    assert CallingWindow.parse("00:00-24:00").allows(datetime(2026, 1, 1, 23, 59))
    with pytest.raises(StoreError, match="HUASHU_CALLING_WINDOW"):
        CallingWindow.parse("9-21")


def test_a_retried_start_is_not_capped_by_its_own_attempt(known: SqlStore) -> None:
    known.record_attempt("c2", "call-1", at(1, 10))  # the start got this far, then its answer was lost
    assert known.check_contact("c2", at(1, 10, 1), conversation_id="call-1") is None  # the gateway retries
    assert known.check_contact("c2", at(1, 10, 1), conversation_id="call-2") == "frequency_cap"  # a new call
    assert known.check_contact("c2", at(1, 10, 1)) == "frequency_cap"


def _both(store: SqlStore, customer_id: str, when: datetime, channel: str = "call",
          conversation_id: str | None = None) -> tuple[object, str | None]:
    return (store.ensure_customer(customer_id),
            store.check_contact(customer_id, when, channel, conversation_id=conversation_id))


def test_open_contact_answers_what_ensure_and_check_answer(known: SqlStore) -> None:
    """The one-transaction start (what every call start uses) agrees with the two-step form."""
    known.record_attempt("c2", "call-1", at(1, 10))
    cases = [("c1", at(1, 10), "call", None), ("c1", at(1, 22, 30), "call", None),
             ("c2", at(1, 15), "call", None), ("c2", at(1, 15), "call", "call-1"),
             ("c2", at(1, 15), "sms", None), ("c1", at(1, 23), "chat", None)]
    for cid, when, channel, conv in cases:
        assert known.open_contact(cid, when, channel, conversation_id=conv) == _both(known, cid, when, channel, conv), \
            (cid, when, channel, conv)
    # the same phone under another customer id is blocked too (phone hash)
    known.upsert_customers([customer("c3", "13900001111")])
    known.mark_do_not_contact("c1", "opt_out", "call:x", at(1, 10))
    customer3, reason = known.open_contact("c3", at(1, 11))
    assert reason == "do_not_contact" and customer3.customer_id == "c3"
    assert known.open_contact("c1", at(1, 11))[0].do_not_contact


def test_open_contact_creates_an_unknown_customer_then_gates_it(known: SqlStore) -> None:
    assert known.get_customer("stranger") is None
    found, reason = known.open_contact("stranger", at(1, 23))
    assert reason == "outside_calling_window" and found.is_test
    assert known.get_customer("stranger") is not None


def test_an_empty_number_is_never_called_again_and_a_phone_that_was_off_is_retried_tomorrow(known: SqlStore) -> None:
    from .factories import result

    known.write_result(result("call-empty", "c1", "unreachable", ("invalid_number",), ended_at=at(1, 10)))
    known.write_result(result("call-off", "c2", "unreachable", ("powered_off",), ended_at=at(1, 10)))
    # the store keeps the reason with the outcome
    profile = known.customer_profile("c1")
    assert profile is not None and {"unreachable", "invalid_number"} <= set(profile["tags"])
    assert known.check_contact("c1", at(1, 15)) == "invalid_number"
    assert known.check_contact("c1", at(20, 15)) == "invalid_number"  # forever
    assert known.check_contact("c1", at(20, 15), "sms") == "invalid_number"  # no SMS to an empty number
    assert known.check_contact("c1", at(20, 15), "wecom") is None  # WeCom does not use the number
    assert known.check_contact("c2", at(1, 15)) == "powered_off"  # not again today…
    assert known.check_contact("c2", at(2, 10)) is None  # …but tomorrow
    assert known.check_contact("c2", at(1, 15), "sms") is None


def test_check_contacts_answers_what_check_contact_answers_one_by_one(known: SqlStore) -> None:
    """The batch gate (a campaign batch) against the one-by-one gate, customer by customer, over
    do-not-contact (by id and by a shared phone), window per zone, line tags, caps, own attempts."""
    from .factories import result

    known.upsert_customers([customer(f"k{i}", f"1390000{i:04d}") for i in range(8)] +
                           [customer("same_phone", "13900001111"), customer("la", "13900009999")])
    with known.engine.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET timezone='America/Los_Angeles' WHERE customer_id='la'"))
    known.mark_do_not_contact("c1", "opt_out", "call:x", at(1, 9))  # same_phone shares c1's number
    known.mark_do_not_contact("k0", "opt_out", "call:y", at(1, 9))
    known.write_result(result("call-empty", "k1", "unreachable", ("invalid_number",), ended_at=at(1, 10)))
    known.write_result(result("call-off", "k2", "unreachable", ("powered_off",), ended_at=at(1, 10)))
    known.record_attempt("k3", "t:k3", at(1, 10))  # its own attempt: a retried start is not capped by it
    known.record_attempt("k4", "other", at(1, 10))  # another contact today: over the daily cap
    for day, hh in ((1, 11), (1, 15), (1, 22), (2, 10)):
        for channel in ("call", "sms", "wecom"):
            contacts = [(c, f"t:{c}") for c in ("c1", "c2", "same_phone", "la", "nobody", *(f"k{i}" for i in range(8)))]
            batch = known.check_contacts(contacts, at(day, hh), channel)
            one = {c: known.check_contact(c, at(day, hh), channel, conversation_id=conv) for c, conv in contacts}
            assert batch == {c: r for c, r in one.items() if r is not None}, (day, hh, channel)
    assert known.check_contacts([("k3", "t:k3"), ("k4", "t:k4")], at(1, 11)) == {"k4": "frequency_cap"}
