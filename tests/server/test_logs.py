"""The log formatter: phone numbers masked in messages, arguments and tracebacks; control
characters escaped, so a hostile id cannot forge a log line."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest

from server.logs import FORMAT, MaskingFormatter, MaskPhones, clean_line, mask_phones

PHONE = "13812345678"
# 11 digits starting 1[3-9] not inside a longer run: what must never reach a log unmasked
UNMASKED = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = sys.exc_info() if exc else None
    return logging.LogRecord("huashu.test", logging.ERROR, __file__, 1, msg, args, info)


@pytest.mark.parametrize(("text", "masked"), [
    ("call from 13812345678 ok", "call from 138****5678 ok"),
    ("+8613812345678", "+86138****5678"),
    ("86 138-1234-5678", "86 138****5678"),
    ("0086 13812345678", "0086 138****5678"),
    ("１３８１２３４５６７８", "138****5678"),  # fullwidth
    ("¹³⁸¹²³⁴⁵⁶⁷⁸", "138****5678"),  # superscripts
    ("cust-13987654321-x", "cust-139****4321-x"),
    ("order 123456789012345", "order 123********2345"),  # any 11+ digit run
    ("pid 12345 at 10:00", "pid 12345 at 10:00"),  # short numbers stay
    ("12812345678", "128****5678"),  # not a mobile, still an 11-digit run
])
def test_mask_phones(text: str, masked: str) -> None:
    assert mask_phones(text) == masked
    assert not UNMASKED.search(mask_phones(text))


def test_message_arguments_and_traceback_are_masked() -> None:
    formatter = MaskingFormatter(FORMAT)
    try:
        int("¹" + PHONE)
    except ValueError:
        record = _record("start failed for %s (params %r)", PHONE, {"customer_id": "+86 " + PHONE}, exc=True)
    text = formatter.format(record)
    assert "invalid literal for int()" in text  # the traceback is there…
    assert not UNMASKED.search(text) and PHONE not in text  # …without the number
    assert "138****5678" in text


def test_sql_parameters_in_an_exception_are_masked() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id VARCHAR(64) PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:id)"), {"id": PHONE})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter(FORMAT))
    log = logging.getLogger("huashu.test.sql")
    log.addHandler(handler)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (:id)"), {"id": PHONE})
    except sa.exc.IntegrityError:
        log.exception("insert failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "IntegrityError" in text and "[parameters:" in text
    assert not UNMASKED.search(text), text


def test_control_characters_cannot_forge_a_line() -> None:
    formatter = MaskingFormatter(FORMAT)
    forged = "jb-1\n2026-12-03 10:00:00,000 INFO huashu.server: call 13912345678 paid\r\x1b[2K\u2028\ud800"
    text = formatter.format(_record("jambonz call %s completed", forged))
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert "\\n2026-12-03" in text and "\\x1b" in text and "\\ud800" in text
    text.encode("utf-8")  # no lone surrogate left to break the stream
    try:
        raise ValueError("bad id\nFORGED LINE " + PHONE)
    except ValueError:
        lines = formatter.format(_record("boom", exc=True)).split("\n")
    assert lines[0].endswith("boom") and all(line.startswith("  ") for line in lines[1:])
    assert not any(UNMASKED.search(line) for line in lines)


def test_broken_format_arguments_are_still_masked() -> None:
    text = MaskingFormatter(FORMAT).format(_record("%d calls", PHONE))
    assert "138****5678" in text and PHONE not in text


def test_filter_for_handlers_with_their_own_formatter() -> None:
    record = _record("phone %s", PHONE)
    MaskPhones().filter(record)
    assert record.getMessage() == "phone 138****5678" and clean_line("a\nb") == "a\\nb"
