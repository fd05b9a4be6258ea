"""A call the gateway reports as finished: its result, and for a call that never reached the
customer the `unreachable` reason tag its SIP final response gives.

SIP semantics (RFC 3261 §21; RFC 3398 §7.2.4.1 maps the carrier's Q.850 cause onto them):
- 404 Not Found (Q.850 1 unallocated number), 484 Address Incomplete (28 invalid number format),
  410 Gone (22 number changed), 604 Does Not Exist Anywhere → `invalid_number` (never again).
- 486 Busy Here (17 user busy), 600 Busy Everywhere, 603 Decline (the callee pressed reject;
  jambonz-feature-server's create-call.js reports 486 and 603 as call_status `busy`) → `busy`.
- 480 Temporarily Unavailable (19 no answer from user, 20 subscriber absent, 31 normal
  unspecified), 408 Request Timeout (18 no user responding), 487 Request Terminated (our ring
  timeout cancelled it; jambonz reports `no-answer`) → `no_answer`. 480 is also what a phone
  that is off gives, but SIP cannot tell that from an unanswered one; `powered_off` comes from
  the carrier's announcement (asr.carrier), whose retry (tomorrow) is the slower one.
- 403 Forbidden (21 call rejected; carriers answer a barred, 停机 line with it) → `suspended`.
- Anything else (5xx: the network or the trunk failed, 503 = Q.850 34/38/41/42 congestion;
  jambonz's own errors are 500) says nothing about the customer's line: result `failed` with
  `sip_<code>` (the campaign's `failed` retry rule); a stored conversation records it as
  `no_answer` (not reached, may be tried again).
"""

from __future__ import annotations

from datetime import datetime

from core.conversation import ConversationResult
from core.vocab import UNREACHABLE_REASON_SET, grade_for

SIP_REASONS: dict[int, str] = {
    404: "invalid_number", 410: "invalid_number", 484: "invalid_number", 604: "invalid_number",
    486: "busy", 600: "busy", 603: "busy",
    480: "no_answer", 408: "no_answer", 487: "no_answer",
    403: "suspended",
}
# jambonz call_status values (its CallStatus enum) of a call that is not over yet
IN_PROGRESS = frozenset({"queued", "trying", "ringing", "early-media", "in-progress"})
# results whose reason is a line the customer never picked up (stored as `unreachable`)
NOT_REACHED = frozenset({"busy", "no_answer", "unreachable"})


def sip_code(value: object) -> int:
    """A SIP status as jambonz sends it (a number, or digits in a string); 0 when absent."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) == 3 else 0


def line_result(call_status: str, sip_status: object = None, duration: object = None) -> tuple[str, str] | None:
    """(result, reason) of a finished call from the gateway's status report, or None while the
    call is still in progress. Results: `answered`, `busy`, `no_answer`, `unreachable` (reason:
    a tag of core.vocab.UNREACHABLE_REASONS) and `failed` (reason `sip_<code>` or "")."""
    if call_status in IN_PROGRESS:
        return None
    code = sip_code(sip_status)
    if call_status == "completed":
        seconds = duration if isinstance(duration, int | float) and not isinstance(duration, bool) else None
        return ("no_answer", "no_answer") if seconds == 0 else ("answered", "")
    reason = SIP_REASONS.get(code) or {"busy": "busy", "no-answer": "no_answer"}.get(call_status)
    if reason in ("busy", "no_answer"):
        return reason, reason
    if reason is not None:
        return "unreachable", reason
    return "failed", f"sip_{code}" if code else ""


def reason_tag(result: str, reason: str) -> str | None:
    """The `unreachable` reason tag a conversation record keeps for this result; None when the
    result says nothing about the customer's line (answered, or failed on our side)."""
    if result in ("busy", "no_answer"):
        return result
    if result == "unreachable":
        return reason if reason in UNREACHABLE_REASON_SET else "no_answer"
    if result == "failed" and reason.startswith("sip_"):
        return "no_answer"
    return None


def unreached_result(conversation_id: str, customer_id: str, track: str, reason: str, at: datetime,
                     *, channel: str = "call") -> ConversationResult:
    """The record of a call that never connected: outcome `unreachable` (grade E), its reason tag,
    no turns. Written once per call id (the store ignores a second write of the same id)."""
    if reason not in UNREACHABLE_REASON_SET:
        raise ValueError(f"unreachable reason {reason!r}: use one of {', '.join(sorted(UNREACHABLE_REASON_SET))}")
    tags = ("unreachable", reason)
    return ConversationResult(
        conversation_id=conversation_id, customer_id=customer_id, track=track, persona="", channel=channel,
        variant="", started_at=at, ended_at=at, outcome="unreachable", grade=grade_for("unreachable", set(tags)),
        tags=tags, slots={}, node_path=(), turns=(), ended_by="gateway")
