"""HTTP routes of the campaign area, included by the server: shop and call-result events
(`POST /v1/events`, signed like /v1/calls), jambonz's call status hook for placed calls, the run
status (`GET /v1/campaigns/{name}/status`) and its report page (`/v1/reports/campaigns/{name}`).

Without a broker (HUASHU_BROKER_URL unset) the router's lifespan runs the embedded dispatcher:
the same Dramatiq actor on an in-process broker with worker threads, and the scheduler beat.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from campaign.events import CALL_RESULT, CALL_RESULTS, SHOP_EVENTS, Event, record
from campaign.gateways import jambonz_result
from campaign.runner import Runner
from campaign.settings import CampaignSettings
from store.errors import StoreError

log = logging.getLogger("huashu.campaign")


# ids: no control characters, line separators or "/" (the edge's rule, docs/server.md)
_ID = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029/]+$"


class EventIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_id: str = Field(min_length=1, max_length=128, pattern=_ID)
    type: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    at: datetime | None = None
    call_id: str | None = Field(default=None, max_length=128, pattern=_ID)
    result: str | None = None
    reason: str | None = None
    tag: str | None = None


def _store(request: Request) -> Any:
    state = request.app.state
    runtime = getattr(state, "runtime", None)
    if runtime is None and getattr(state, "huashu", None) is not None:
        runtime = state.huashu.runtime
    store = getattr(runtime, "store", None)
    if store is None or not hasattr(store, "engine"):
        raise HTTPException(503, "no customer store configured")
    return store


def runner_of(request: Request) -> Runner:
    """The app's runner (built on first use from the server's store)."""
    runner: Runner | None = getattr(request.app.state, "campaign_runner", None)
    if runner is None:
        from campaign.service import build_runner

        runner = build_runner(_store(request), CampaignSettings())
        request.app.state.campaign_runner = runner
    return runner


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The server's one error body (`{"code", "detail"}`, docs/server.md)."""
    return JSONResponse({"code": code, "detail": message}, status_code=status, headers=headers)


_DOC = {400: "Malformed body (not UTF-8, not JSON)", 404: "Unknown campaign",
        422: "Wrong shape or an unknown event type", 503: "The store is unavailable; retry after Retry-After"}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses; the server fills in its one error body (server.openapi)."""
    return {s: {"description": _DOC[s]} for s in statuses}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The embedded dispatcher of `huashu serve` (no broker configured): started once the server's
    store is open, stopped at shutdown. A restart re-enqueues every due touch that is not done."""
    cs = CampaignSettings()
    dispatcher = None
    if not cs.broker_url and cs.campaign_embedded:
        state = app.state
        runtime = getattr(getattr(state, "huashu", None), "runtime", None) or getattr(state, "runtime", None)
        store = getattr(runtime, "store", None)
        if store is not None and hasattr(store, "engine"):
            from campaign.service import Dispatcher, build_runner

            loop = asyncio.get_running_loop()
            runner = await loop.run_in_executor(None, build_runner, store, cs)
            app.state.campaign_runner = runner
            dispatcher = Dispatcher.build(runner, cs)
            dispatcher.start(threads=cs.worker_threads)
    try:
        yield
    finally:
        if dispatcher is not None:
            dispatcher.stop()


router = APIRouter(lifespan=lifespan)


@router.post("/v1/events", tags=["campaigns"], responses=_errors(422, 503))
async def post_event(request: Request) -> JSONResponse:
    """A shop event (deposit_paid, balance_paid, order_paid, wecom_reply, tag) or a gateway's call
    result (`type: call_result` with call_id, result, reason). Idempotent by event_id."""
    try:
        body = EventIn.model_validate_json(await request.body())
    except ValidationError as exc:
        return _error(422, "invalid_body", "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]))
    if body.type not in (*SHOP_EVENTS, CALL_RESULT):
        return _error(422, "unknown_event_type", f"type must be one of {', '.join((*SHOP_EVENTS, CALL_RESULT))}")
    if body.type == CALL_RESULT and (not body.call_id or body.result not in CALL_RESULTS):
        return _error(422, "invalid_call_result", f"call_result needs call_id and result in {CALL_RESULTS}")
    runner = runner_of(request)
    at = body.at or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=runner.store.tz)
    event = Event(body.event_id, body.type, body.customer_id, at, body.model_dump(mode="json", exclude_none=True))
    try:
        out = await asyncio.get_running_loop().run_in_executor(None, record, runner, event)
    except StoreError as exc:
        return _error(503, "store_unavailable", str(exc), {"Retry-After": "5"})
    return JSONResponse(out)


@router.post("/jambonz/campaign-status", tags=["campaigns"], responses=_errors(503))
async def jambonz_status(request: Request) -> JSONResponse:
    """jambonz's call status hook for calls the runner placed (tag.huashu_call_id)."""
    try:
        payload = await request.json()
    except ValueError:
        return _error(400, "invalid_json", "body is not JSON")
    parsed = jambonz_result(payload if isinstance(payload, dict) else {})
    if parsed is None:
        return JSONResponse({"ignored": True})
    call_id, result, reason = parsed
    runner = runner_of(request)
    event = Event(f"{call_id}:result", CALL_RESULT, str(payload.get("tag", {}).get("customer_id", "")),
                  datetime.now(UTC), {"call_id": call_id, "result": result, "reason": reason,
                                      # the conversation was stored under jambonz' call_sid (server.jambonz)
                                      "conversation_id": str(payload.get("call_sid") or "")})
    out = await asyncio.get_running_loop().run_in_executor(None, record, runner, event)
    return JSONResponse(out)


@router.get("/v1/campaigns/{name}/status", tags=["campaigns"], responses=_errors(404, 503))
async def status(name: str, request: Request) -> JSONResponse:
    """Per step: due, sent, answered, converted, failed, skipped by reason (and per branch)."""
    runner = runner_of(request)
    try:
        doc = await asyncio.get_running_loop().run_in_executor(
            None, runner.touches.status, name, datetime.now(UTC))
    except StoreError as exc:
        return _error(404, "unknown_campaign", str(exc))
    return JSONResponse(doc)


@router.get("/v1/reports/campaigns/{name}", tags=["campaigns"], response_class=HTMLResponse,
            responses=_errors(404, 503))
async def report(name: str, request: Request) -> HTMLResponse:
    """The status as a page (refreshes every 10 s)."""
    runner = runner_of(request)
    try:
        doc = await asyncio.get_running_loop().run_in_executor(
            None, runner.touches.status, name, datetime.now(UTC))
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None
    return HTMLResponse(render_report(doc))


COLUMNS = ("touches", "due", "scheduled", "in_flight", "sent", "answered", "converted", "failed", "unreachable")


def render_report(doc: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for s in doc["steps"]:
        skipped = ", ".join(f"{e(k)} {v}" for k, v in sorted(s["skipped"].items())) or "–"
        trigger = f" <small>on {e(s['trigger'])}</small>" if s.get("trigger") else ""
        rows.append(f"<tr><th>{e(s['step'])}{trigger}</th><td>{e(s['channel'])}</td>"
                    + "".join(f"<td>{s[c]}</td>" for c in COLUMNS) + f"<td>{skipped}</td></tr>")
        for branch, b in sorted(s["branches"].items()):
            rows.append(f"<tr class=branch><th>└ {e(branch)}</th><td></td>"
                        + "".join(f"<td>{b[c]}</td>" for c in COLUMNS) + "<td></td></tr>")
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in ("step", "channel", *COLUMNS, "skipped"))
    return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>{e(doc['campaign'])} · 话术 campaign</title><style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right;white-space:nowrap}} th:first-child{{text-align:left}}
thead th{{background:#f3f3f3}} .branch{{color:#666}} .status{{font-weight:bold}}</style></head><body>
<h1>{e(doc['title'] or doc['campaign'])} <small>{e(doc['campaign'])}</small></h1>
<p>status <span class=status id=status>{e(doc['status'])}</span> · started {e(doc['started_at'])}
· as of {e(doc['at'])}</p><table id=steps><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
</body></html>"""
