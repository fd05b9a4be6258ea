"""Pydantic models of the HTTP edge (CONTRACT.md shapes): request parsing and the OpenAPI schema.

Bodies are parsed from the raw bytes that the guard already checked (`parse`), so a signature is
verified over exactly what is parsed and every parse error goes through server.errors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.conversation import CustomerEvent, EventKind

M = TypeVar("M", bound=BaseModel)

# One limit per id, the database column's: conversations.conversation_id is varchar(128) (a call
# id), every customer_id column varchar(64), tracks varchar(64).
CALL_ID_MAX = 128
CUSTOMER_ID_MAX = 64
TRACK_MAX = 64
TEXT_MAX = 2000
VAR_MAX = 500
MAX_JSON_DEPTH = 32  # our bodies nest 3 deep (jambonz speech.alternatives[0]); 100k would recurse

# Ids: no control characters (C0, DEL, C1, line separators), no lone surrogates (JSON allows
# "\ud800"; nothing can store or print it), no "/" (ids travel in URL paths).
_BAD_ID = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff/]")
# Text (transcripts, messages, variables): the same, except tab and line breaks in free text.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_BAD_VAR = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029/]+$"


def _checker(bad: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if bad.search(value):
            raise ValueError(f"{what} must not contain control characters or lone surrogates")
        return value
    return AfterValidator(check)


def id_problem(value: object, max_length: int) -> str | None:
    """Why `value` is not a usable id (None when it is): the rule of `_ID` for hand-parsed bodies."""
    if not isinstance(value, str) or not value:
        return "a non-empty string is required"
    if len(value) > max_length:
        return f"at most {max_length} characters"
    if _BAD_ID.search(value):
        return "no control characters, lone surrogates or '/'"
    return None


def text_problem(value: str) -> str | None:
    return "no control characters or lone surrogates" if _BAD_TEXT.search(value) else None


def var_problem(value: str) -> str | None:
    return "no control characters or lone surrogates" if _BAD_VAR.search(value) else None


_ID_CHECK = _checker(_BAD_ID, "an id")
CallId = Annotated[str, Field(min_length=1, max_length=CALL_ID_MAX, pattern=ID_PATTERN), _ID_CHECK]
CustomerId = Annotated[str, Field(min_length=1, max_length=CUSTOMER_ID_MAX, pattern=ID_PATTERN), _ID_CHECK]
TrackId = Annotated[str, Field(min_length=1, max_length=TRACK_MAX, pattern=ID_PATTERN), _ID_CHECK]
Text = Annotated[str, Field(max_length=TEXT_MAX), _checker(_BAD_TEXT, "text")]
VarKey = Annotated[str, Field(min_length=1, max_length=64), _checker(_BAD_VAR, "a variable name")]
VarValue = Annotated[str, Field(max_length=VAR_MAX), _checker(_BAD_VAR, "a variable")]


class _In(BaseModel):
    # strict: "3" is not a seq; unknown fields are ignored (gateways add their own)
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class StartCallIn(_In):
    call_id: CallId
    customer_id: CustomerId
    track: TrackId
    vars: dict[VarKey, VarValue] = Field(default_factory=dict, max_length=50)


class EventIn(_In):
    seq: Annotated[int, Field(ge=0, le=2**53)]
    type: Literal["speech", "dtmf", "silence", "playback_done", "hangup", "unreachable"]
    text: Text | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    digits: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9*#A-Da-d]+$")] | None = None
    barged_in: bool = False
    # "unreachable": the gateway heard a carrier announcement / voicemail / screening, or the
    # call failed (SIP cause); the call ends at once with outcome `unreachable` and this tag.
    reason: Literal["powered_off", "invalid_number", "suspended", "busy", "no_answer", "voicemail",
                    "call_screening"] | None = None

    def to_event(self) -> CustomerEvent:
        kind = EventKind(self.type)
        if kind is EventKind.DTMF and not self.digits:
            from server.errors import Unprocessable

            raise Unprocessable("digits: required for a dtmf event")
        if kind is EventKind.UNREACHABLE and not self.reason:
            from server.errors import Unprocessable

            raise Unprocessable("reason: required for an unreachable event")
        return CustomerEvent(kind, text=self.text, confidence=self.confidence, digits=self.digits,
                             barged_in=self.barged_in, reason=self.reason)


class ParseIn(_In):
    text: Text


# -- responses (documentation and schemathesis' response checks) ---------------------------------
class PlayAction(BaseModel):
    type: Literal["play"]
    clip: str
    url: str
    text: str
    barge_in: bool


class ListenAction(BaseModel):
    type: Literal["listen"]
    timeout_ms: int


class MessageAction(BaseModel):
    type: Literal["send_sms", "send_wecom"]
    template: str
    text: str


class TransferAction(BaseModel):
    type: Literal["transfer"]
    to: str


class HangupAction(BaseModel):
    type: Literal["hangup"]


Action = Annotated[PlayAction | ListenAction | MessageAction | TransferAction | HangupAction,
                   Field(discriminator="type")]


class StartCallOut(BaseModel):
    call_id: str
    actions: list[Action]


class EventOut(BaseModel):
    actions: list[Action]
    ended: bool


class Refused(BaseModel):
    """409 from the compliance gate (CONTRACT.md: do_not_contact, outside_calling_window,
    frequency_cap, carrier_limit, missing_fact:<variable>, expired:<variable>)."""

    refused: str
    code: Literal["refused"]


class Error(BaseModel):
    """Every error body: a stable machine-readable `code` (docs/server.md) and a message."""

    code: str
    detail: str




class RasaIntent(BaseModel):
    name: str
    confidence: float


class RasaEntity(BaseModel):
    entity: str
    value: Any
    start: int
    end: int
    extractor: str


class RasaParse(BaseModel):
    text: str
    intent: RasaIntent
    intent_ranking: list[RasaIntent]
    entities: list[RasaEntity]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    sessions: str
    tracks: list[str]
    detail: str = ""


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    sessions: str
    outbox_backlog: int = Field(description="Store writes queued while the database was unreachable "
                                "(drained in the background within seconds of its return)")
    outbox_parked: int = Field(description="Queued writes the database rejected for their content")
    detail: str = ""


class ReloadOut(BaseModel):
    tracks: list[str]
    generation: int


def check_json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (400) a body nested deeper than `limit` before any parser recurses into it.

    Vectorised, so a 2 MB body of brackets costs milliseconds: brackets inside strings are
    dropped, the rest become +1/-1 and the running sum is the depth."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the usual body: cannot be that deep
        return
    import numpy as np

    steps = np.frombuffer(_STRINGS.sub(b"", raw).translate(_DEPTH_STEP, _NOT_BRACKETS), dtype=np.int8)
    if steps.size and int(np.cumsum(steps, dtype=np.int32).max()) > limit:
        from server.errors import BadRequest

        raise BadRequest(f"body is not valid JSON: nested deeper than {limit} levels", code="invalid_json")


_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # as int8: +1 opens, -1 closes


def parse(model: type[M], raw: bytes) -> M:
    """Raw body → model; bad UTF-8 → 400, bad JSON → 400, wrong shape/types → 422 (server.errors)."""
    text = raw.decode("utf-8")  # UnicodeDecodeError → 400 with the offset
    check_json_depth(raw)
    return model.model_validate_json(text or "null")


def body_doc(model: type[BaseModel], content_type: str = "application/json") -> dict[str, Any]:
    """openapi_extra documenting a request body that the route parses itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {content_type: {"schema": schema}}}}


ERROR_TEXT = {400: "Malformed body or header (not UTF-8, not JSON, nested too deep)",
              401: "Bad or missing signature or key", 403: "Credentials of this area not configured",
              404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Body over the size limit",
              422: "Wrong shape, types, lengths or characters",
              503: "Session store or database unavailable, call busy, or not ready; retry after Retry-After"}


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses: all share the `Error` body (server.errors)."""
    docs: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        doc: dict[str, Any] = {"model": Error, "description": ERROR_TEXT.get(status, "Error")}
        if status == 503:
            doc["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
        docs[status] = doc
    return docs
