"""Pydantic models of the HTTP edge (CONTRACT.md shapes): request parsing and the OpenAPI schema.

Bodies are parsed from the raw bytes that the guard already checked (`parse`), so a signature is
verified over exactly what is parsed and every parse error goes through server.errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from dialogue.types import CustomerEvent, EventKind

M = TypeVar("M", bound=BaseModel)

_ID = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")


class _In(BaseModel):
    # strict: "3" is not a seq; unknown fields are ignored (gateways add their own)
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class StartCallIn(_In):
    call_id: Annotated[str, _ID]
    customer_id: Annotated[str, _ID]
    track: Annotated[str, Field(min_length=1, max_length=64)]
    vars: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=50)


class EventIn(_In):
    seq: Annotated[int, Field(ge=0, le=2**53)]
    type: Literal["speech", "dtmf", "silence", "playback_done", "hangup"]
    text: Annotated[str, Field(max_length=2000)] | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    digits: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9*#A-Da-d]+$")] | None = None
    barged_in: bool = False

    def to_event(self) -> CustomerEvent:
        kind = EventKind(self.type)
        if kind is EventKind.DTMF and not self.digits:
            from server.errors import Unprocessable

            raise Unprocessable("digits: required for a dtmf event")
        return CustomerEvent(kind, text=self.text, confidence=self.confidence, digits=self.digits,
                             barged_in=self.barged_in)


class ParseIn(_In):
    text: Annotated[str, Field(max_length=2000)]


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
    refused: Literal["do_not_contact", "outside_calling_window", "frequency_cap"]


class Detail(BaseModel):
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


def parse(model: type[M], raw: bytes) -> M:
    """Raw body → model; bad UTF-8 → 400, bad JSON → 400, wrong shape/types → 422 (server.errors)."""
    text = raw.decode("utf-8")  # UnicodeDecodeError → 400 with the offset
    return model.model_validate_json(text or "null")


def body_doc(model: type[BaseModel], content_type: str = "application/json") -> dict[str, Any]:
    """openapi_extra documenting a request body that the route parses itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {content_type: {"schema": schema}}}}


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Malformed body (not UTF-8 / not JSON)", 401: "Bad or missing signature or key",
            403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Body over the size limit",
            422: "Wrong shape or types", 503: "Session store unavailable or call busy; retry"}
    return {s: {"model": Detail, "description": text.get(s, "Error")} for s in statuses}
