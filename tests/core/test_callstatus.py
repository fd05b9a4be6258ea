"""A gateway's final call status → our result and `unreachable` reason tag (SIP semantics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.callstatus import line_result, reason_tag, sip_code, unreached_result


@pytest.mark.parametrize(("status", "sip", "duration", "expected"), [
    ("busy", 486, None, ("busy", "busy")),
    ("busy", 603, None, ("busy", "busy")),  # jambonz reports a rejected call (603 Decline) as busy
    ("failed", 600, None, ("busy", "busy")),
    ("no-answer", 487, None, ("no_answer", "no_answer")),  # our ring timeout cancelled it
    ("no-answer", None, None, ("no_answer", "no_answer")),
    ("failed", 480, None, ("no_answer", "no_answer")),  # Temporarily Unavailable
    ("failed", "408", None, ("no_answer", "no_answer")),  # a string, as some payloads carry it
    ("failed", 404, None, ("unreachable", "invalid_number")),
    ("failed", 484, None, ("unreachable", "invalid_number")),
    ("failed", 410, None, ("unreachable", "invalid_number")),
    ("failed", 604, None, ("unreachable", "invalid_number")),
    ("failed", 403, None, ("unreachable", "suspended")),
    ("failed", 503, None, ("failed", "sip_503")),  # the network, not the line
    ("failed", None, None, ("failed", "")),
    ("completed", 200, 0, ("no_answer", "no_answer")),  # completed without anyone on the line
    ("completed", 200, 42, ("answered", "")),
    ("completed", 200, None, ("answered", "")),
    ("ringing", 180, None, None),
    ("in-progress", 200, None, None),
])
def test_line_result(status: str, sip: object, duration: object, expected: tuple[str, str] | None) -> None:
    assert line_result(status, sip, duration) == expected


def test_reason_tags_and_the_stored_record() -> None:
    assert [reason_tag(*r) for r in [("busy", "busy"), ("no_answer", "no_answer"), ("unreachable", "invalid_number"),
                                      ("failed", "sip_503"), ("failed", ""), ("answered", "")]] == [
        "busy", "no_answer", "invalid_number", "no_answer", None, None]
    assert (sip_code(True), sip_code("48"), sip_code(" 486 "), sip_code(None)) == (0, 0, 486, 0)
    at = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)
    r = unreached_result("jb-1", "c1", "wecom_add_gift", "busy", at)
    assert (r.outcome, r.grade, r.tags, r.turns, r.ended_by) == ("unreachable", "E", ("unreachable", "busy"), (), "gateway")
    with pytest.raises(ValueError, match="unreachable reason"):
        unreached_result("jb-1", "c1", "t", "on_the_moon", at)
