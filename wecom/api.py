"""HTTP routes of the WeCom area, mounted by huashu.app: suggestions, the agent's pick, the
sidebar page, WeCom's callback and the campaign report page.

The Runtime comes from `request.app.state.runtime` (or the server's `app.state.huashu.runtime`).
Agent-key auth: server.guard checks `/v1/wecom/…`; `require_agent_key` checks again here (and
guards /v1/reports), so the router is safe when mounted in another app too.
"""

from __future__ import annotations

import hmac
import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dialogue.assembly import Runtime
from dialogue.engine import DialogueEngine
from wecom.callback import CallbackRejected
from wecom.service import UnknownReply, WecomService
from wecom.suggest import HistoryItem

STATIC = Path(__file__).parent / "static"
# control characters, line separators and lone surrogates: no id or message may carry them
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ID_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # ids: not even line breaks
STATIC_FILES = {"sidebar.js": "text/javascript", "sidebar.css": "text/css"}
_lock = threading.Lock()

router = APIRouter()


def runtime_of(request: Request) -> Runtime:
    state = request.app.state
    runtime = getattr(state, "runtime", None)
    if runtime is None and getattr(state, "huashu", None) is not None:
        runtime = state.huashu.runtime
    if runtime is None:
        raise HTTPException(503, "huashu runtime not loaded yet")
    return runtime


def engine_of(request: Request) -> DialogueEngine:
    """The server's engine (its classifier batches concurrent turns), else the runtime's."""
    server = getattr(request.app.state, "huashu", None)
    return server.engine if server is not None else runtime_of(request).engine


def service_of(request: Request) -> WecomService:
    """One WecomService per app, rebuilt when the server reloads the scripts."""
    runtime = runtime_of(request)
    state = request.app.state
    current: WecomService | None = getattr(state, "wecom_service", None)
    if current is not None and current.bundle is runtime.bundle:
        return current
    with _lock:
        current = getattr(state, "wecom_service", None)
        if current is None or current.bundle is not runtime.bundle:
            fresh = WecomService(runtime.settings, runtime.bundle, engine_of(request).classifier, runtime.store)
            if current is not None:  # keep what this process already saw across a reload
                fresh.inbox = current.inbox
                if fresh.verifier is not None and current.verifier is not None:
                    fresh.verifier.seen = current.verifier.seen
            state.wecom_service = fresh
            current = fresh
    return current


def _bearer_ok(authorization: str | None, keys: list[str]) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token.strip().encode(), key.encode())
    return ok


def require_agent_key(request: Request) -> None:
    """`Authorization: Bearer <key>` against HUASHU_AGENT_KEYS (closed when none are set, unless
    the server runs with insecure_dev)."""
    runtime = runtime_of(request)
    keys = runtime.settings.agent_key_list
    if not keys:
        if runtime.settings.insecure_dev:
            return
        raise HTTPException(403, "HUASHU_AGENT_KEYS is not set, so agent routes are closed "
                                 "(set it, or run with --insecure-dev for a local demo)")
    if not _bearer_ok(request.headers.get("authorization"), keys):
        raise HTTPException(401, "missing or wrong agent key (Authorization: Bearer <key>)",
                            headers={"WWW-Authenticate": "Bearer"})


AgentKey = Depends(require_agent_key)
_ERRORS = {400: "Malformed request", 401: "Bad signature or key", 404: "Not found", 422: "Wrong parameter",
           502: "WeCom's API answered an error or could not be reached",
           503: "Not configured, not ready, or the store is unavailable; retry"}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses; the server fills in its one error body (server.openapi)."""
    return {s: {"description": _ERRORS[s]} for s in statuses}


# -- suggestions -------------------------------------------------------------------------------
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any, info: ValidationInfo) -> Any:
        """No control characters or lone surrogates (JSON allows "\ud800"); ids not even line breaks."""
        bad = _ID_CONTROL if str(info.field_name).endswith("_id") else _CONTROL
        if isinstance(value, str) and bad.search(value):
            raise ValueError("control characters and lone surrogates are not allowed")
        return value


class HistoryIn(_In):
    role: Literal["customer", "agent"]
    text: str = Field(max_length=2000)


class SuggestIn(_In):
    customer_id: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=2000)
    history: list[HistoryIn] = Field(default_factory=list, max_length=50)
    k: int = Field(default=3, ge=1, le=10)
    stage: Literal["new", "just_joined", "active", "promo", "silent"] | None = None


class FeedbackIn(_In):
    customer_id: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=2000)
    suggestion_id: str = Field(min_length=1, max_length=64)
    event_id: str | None = Field(default=None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    text: str | None = Field(default=None, max_length=4000)  # what was actually sent, if edited


@router.post("/v1/wecom/suggest", tags=["wecom"], dependencies=[AgentKey], responses=_errors(503),
             summary="Top replies for a customer's latest message")
def suggest(body: Annotated[SuggestIn, Body()], request: Request) -> JSONResponse:
    svc = service_of(request)
    history = [HistoryItem(h.role, h.text) for h in body.history]
    result = svc.suggest(body.customer_id, body.message, history, body.k, body.stage)
    return JSONResponse(result.to_json())


@router.post("/v1/wecom/feedback", tags=["wecom"], dependencies=[AgentKey], responses=_errors(404, 503),
             summary="The agent sent a suggestion: write its tags/outcome back (exactly once per event_id)")
def feedback(body: Annotated[FeedbackIn, Body()], request: Request) -> JSONResponse:
    svc = service_of(request)
    try:
        written = svc.pick(body.customer_id, body.message, body.suggestion_id, body.event_id, body.text)
    except UnknownReply:
        raise HTTPException(404, f"unknown suggestion id {body.suggestion_id!r}") from None
    return JSONResponse(written.to_json())


@router.get("/v1/wecom/customers/{customer_id}", tags=["wecom"], dependencies=[AgentKey], responses=_errors(503),
            summary="Sidebar context: profile, tags, last call, lifecycle stage, latest chat messages")
def customer_context(customer_id: str, request: Request) -> JSONResponse:
    if not customer_id or len(customer_id) > 64 or _ID_CONTROL.search(customer_id):
        raise HTTPException(422, "customer_id must be 1-64 characters, without control characters")
    svc = service_of(request)
    data: dict[str, Any] = svc.context(customer_id).to_json()
    data["messages"] = [m.to_json() for m in svc.inbox.messages(customer_id)]
    return JSONResponse(data)


@router.get("/v1/wecom/jssdk/agent-config", tags=["wecom"], dependencies=[AgentKey], responses=_errors(502, 503),
            summary="Signed wx.agentConfig for the sidebar page at `url` (WeCom JS-SDK)")
def agent_config(request: Request, url: Annotated[str, Query(min_length=8, max_length=2000)]) -> JSONResponse:
    from wecom.jssdk import WecomApiError

    svc = service_of(request)
    if svc.tickets is None:
        raise HTTPException(503, "WeCom JS-SDK not configured: set HUASHU_WECOM_CORP_ID, HUASHU_WECOM_AGENT_ID "
                                 "and HUASHU_WECOM_SECRET")
    if not url.startswith(("https://", "http://")):
        raise HTTPException(422, "url must be the page's full http(s) address")
    try:
        config = svc.tickets.agent_config(svc.settings.wecom_agent_id, url)
    except WecomApiError as exc:
        raise HTTPException(502, str(exc)) from None
    return JSONResponse(config.to_json())


@router.get("/v1/wecom/contacts/{external_userid}", tags=["wecom"], dependencies=[AgentKey],
            responses=_errors(503), summary="The customer behind a WeCom external contact (getCurExternalContact)")
def contact(external_userid: str, request: Request) -> JSONResponse:
    if not external_userid or len(external_userid) > 64 or _CONTROL.search(external_userid):
        raise HTTPException(422, "external_userid must be 1-64 characters, without control characters")
    customer_id = service_of(request).customer_for_contact(external_userid)
    # Not imported yet: the contact's own id, under which its callback messages are kept.
    return JSONResponse({"external_userid": external_userid, "customer_id": customer_id or external_userid,
                         "mapped": customer_id is not None})


# -- sidebar page ------------------------------------------------------------------------------
@router.get("/v1/wecom/sidebar", tags=["wecom"], response_class=HTMLResponse,
            summary="The agent sidebar page (static shell; its data comes from the key-protected APIs)")
def sidebar() -> FileResponse:
    return FileResponse(STATIC / "sidebar.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/v1/wecom/static/{name}", tags=["wecom"], include_in_schema=False)
def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(404, "not found")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name] + "; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


# -- WeCom callback ----------------------------------------------------------------------------
def _verifier(request: Request) -> Any:
    svc = service_of(request)
    if svc.verifier is None:
        raise HTTPException(503, "WeCom callback not configured: set HUASHU_WECOM_TOKEN and HUASHU_WECOM_AES_KEY")
    return svc, svc.verifier


@router.get("/v1/wecom/callback", tags=["wecom"], response_class=PlainTextResponse, responses=_errors(400, 401, 503),
            summary="WeCom URL verification: returns the decrypted echostr")
def callback_verify(request: Request, msg_signature: str = "", timestamp: str = "", nonce: str = "",
                    echostr: str = "") -> PlainTextResponse:
    _, verifier = _verifier(request)
    try:
        plain = verifier.verify_url(msg_signature, timestamp, nonce, echostr.replace(" ", "+"))
    except CallbackRejected as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return PlainTextResponse(plain)


@router.post("/v1/wecom/callback", tags=["wecom"], response_class=PlainTextResponse,
             responses=_errors(400, 401, 503),
             summary="WeCom message callback (encrypted XML); duplicates are processed once")
async def callback_message(request: Request, msg_signature: str = "", timestamp: str = "",
                           nonce: str = "") -> PlainTextResponse:
    from starlette.concurrency import run_in_threadpool

    svc, verifier = _verifier(request)
    raw = await request.body()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "callback body is not UTF-8") from None

    def handle() -> None:
        message = verifier.open_message(msg_signature, timestamp, nonce, body)
        if message is None:
            return  # a redelivery of a message already processed
        try:
            svc.on_message(message)
        except Exception:
            verifier.seen.forget(message.dedupe_key)  # let WeCom's retry through
            raise

    try:
        await run_in_threadpool(handle)
    except CallbackRejected as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return PlainTextResponse("success")


# -- reports -----------------------------------------------------------------------------------
def parse_since(value: str | None, tz: ZoneInfo, now: datetime | None = None) -> datetime | None:
    """ISO date/datetime, or a relative window: 7d, 24h. Raises ValueError with what was wrong."""
    if not value:
        return None
    v = value.strip()
    current = now or datetime.now(tz)
    if v[:-1].isdigit() and v[-1:] in ("d", "h"):
        amount = int(v[:-1])
        return current - (timedelta(days=amount) if v.endswith("d") else timedelta(hours=amount))
    try:
        when = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"--since must be ISO 8601 (2026-11-01, 2026-11-01T10:00+08:00) or 7d / 24h, "
                         f"got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=tz)


def report_html(runtime: Runtime, track: str, since: datetime | None) -> str:
    from wecom.report import build_report

    store = runtime.store
    if store is None:
        raise HTTPException(503, "no conversation store configured")
    results = store.list_conversations(track=track, since=since)
    definition = runtime.bundle.tracks.get(track)
    if definition is None and not results:
        known = ", ".join(sorted(runtime.bundle.tracks))
        raise HTTPException(404, f"unknown track {track!r} (known: {known})")
    now = datetime.now(ZoneInfo(runtime.settings.timezone))
    _, html = build_report(results, track, definition, since, now)
    return html


@router.get("/v1/reports/{track}", tags=["reports"], response_class=HTMLResponse, dependencies=[AgentKey],
            responses=_errors(404, 422, 503),
            summary="Campaign report for a talk track (HTML with embedded plots)")
def report(track: str, request: Request,
           since: Annotated[str | None, Query(description="ISO date/time or 7d / 24h")] = None) -> HTMLResponse:
    runtime = runtime_of(request)
    try:
        when = parse_since(since, ZoneInfo(runtime.settings.timezone))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return HTMLResponse(report_html(runtime, track, when))
