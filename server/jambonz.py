"""jambonz adapter: jambonz's webhook protocol mapped onto the same calls service.

- `POST /jambonz/calls?track=ID` — the application's call webhook. The customer and track come
  from the call's `customerData` (the `tag` given when the call was created over jambonz's REST
  API: {"customer_id", "track", "vars"}) or the query. Answers a verb array.
- `POST /jambonz/calls/{call_sid}/action?seq=N` — the actionHook of our `gather` / `dial` /
  `redirect` verbs: `reason` + `speech.alternatives` / `digits` become our speech / dtmf / silence
  events. `seq` is chosen by us in the hook URL, so a retried hook is idempotent.
- `POST /jambonz/status[?track=ID]` — call status webhook: a live call that completed becomes a
  hangup event; a failed, busy or unanswered one an unreachable event with the reason its SIP
  cause gives (core.callstatus). A call that never connected never reached the call webhook (jambonz
  calls it on answer): it is recorded here, once per call_sid, as outcome `unreachable` with that
  reason (customer and track from customerData, as for the call webhook).
- `WS /stt/jambonz` — our recogniser as a jambonz custom speech vendor (server.jambonz_stt); with
  HUASHU_JAMBONZ_STT_VENDOR set, every `gather` names that vendor with the node's hints.

Our actions → verbs: play → `play` (the last one before a listen is nested in `gather` for
barge-in), listen → `gather` (speech + digits, actionHook), transfer → `dial`, hangup → `hangup`,
send_sms/send_wecom → `tag` (the messages travel with the call's data to the integrator's status
hook). A reply that ends after playing gets a `redirect` so that jambonz reports playback_done.
Signed requests: `Jambonz-Signature` with HUASHU_JAMBONZ_SECRET (server.guard; without the
secret the routes are closed unless the server runs with insecure_dev).
Payloads are jambonz's, so they are parsed by hand, with the edge's rules (server.models): the
nesting bound, and ids/text without control characters or lone surrogates, within the columns'
lengths; anything else is a 4xx through server.errors.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from starlette.responses import Response

from core import fastjson
from core.callstatus import line_result, reason_tag
from core.conversation import CustomerEvent, EventKind
from dialogue.engine import CallRefused
from server import models as m
from server.context import ctx
from server.errors import BadRequest, Unprocessable, json_bytes
from server.models import error_docs
from store.phones import mask_id

STATUS_SEQ = 2**53 - 1  # the status webhook's hangup is never "older" than a hook
_PHONE = re.compile(r"^\+?\d{3,20}$")
LANGUAGE = "zh-CN"


def hook(call_sid: str, seq: int, event: str = "") -> str:
    return f"/jambonz/calls/{call_sid}/action?seq={seq}" + (f"&event={event}" if event else "")


def _target(to: str) -> dict[str, Any]:
    if to.startswith("sip:"):
        return {"type": "sip", "sipUri": to}
    if _PHONE.match(to):
        return {"type": "phone", "number": to}
    return {"type": "user", "name": to}


def to_verbs(actions: list[dict[str, Any]], call_sid: str, next_seq: int,
             recognizer: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Our contract actions → a jambonz verb array (a pure function: replays are byte-identical).
    `recognizer`: the gather's recognizer (our custom vendor with the node's hints); default:
    jambonz's configured one."""
    verbs: list[dict[str, Any]] = []
    messages = [{"type": a["type"], "template": a.get("template", ""), "text": a.get("text", "")}
                for a in actions if a["type"] in ("send_sms", "send_wecom")]
    if messages:
        verbs.append({"verb": "tag", "data": {"huashu_messages": messages}})
    plays = [a for a in actions if a["type"] == "play"]
    last = next((a for a in reversed(actions) if a["type"] in ("listen", "hangup", "transfer")), None)
    nest = last is not None and last["type"] == "listen" and plays and actions[-1] is last
    for a in plays[:-1] if nest else plays:
        verbs.append({"verb": "play", "url": a["url"]})
    if last is None:
        verbs.append({"verb": "redirect", "actionHook": hook(call_sid, next_seq, "playback_done")})
    elif last["type"] == "listen":
        gather: dict[str, Any] = {
            "verb": "gather", "input": ["speech", "digits"], "actionHook": hook(call_sid, next_seq),
            "timeout": max(1, round(int(last.get("timeout_ms", 6000)) / 1000)), "numDigits": 1,
            "recognizer": recognizer or {"vendor": "default", "language": LANGUAGE}}
        if nest:
            final = plays[-1]
            gather["play"] = {"url": final["url"]}
            gather["bargein"] = bool(final.get("barge_in", True))
            gather["listenDuringPrompt"] = bool(final.get("barge_in", True))
        verbs.append(gather)
    elif last["type"] == "transfer":
        verbs.append({"verb": "dial", "target": [_target(str(last.get("to", "")))],
                      "actionHook": hook(call_sid, next_seq, "hangup"), "answerOnBridge": True})
    else:
        verbs.append({"verb": "hangup"})
    return verbs


def status_event(call_status: str, sip_status: object) -> CustomerEvent:
    """A live call's final status callback → hangup when it completed (it connected: we talked),
    else unreachable with the reason its SIP cause gives (core.callstatus)."""
    result = ("answered", "") if call_status == "completed" else line_result(call_status, sip_status)
    tag = reason_tag(*(result or ("answered", "")))
    return CustomerEvent(EventKind.HANGUP) if tag is None else CustomerEvent(EventKind.UNREACHABLE, reason=tag)


def event_from_hook(payload: dict[str, Any], event: str) -> CustomerEvent:
    """A gather/dial/redirect actionHook payload → our customer event."""
    if event in ("playback_done", "hangup"):
        return CustomerEvent(EventKind(event))
    reason = str(payload.get("reason", ""))
    speech = payload.get("speech")
    if reason == "speechDetected" and isinstance(speech, dict):
        alts = speech.get("alternatives") or []
        best = alts[0] if isinstance(alts, list) and alts and isinstance(alts[0], dict) else {}
        text = str(best.get("transcript", "") or "")
        _check("speech.alternatives.0.transcript", m.text_problem(text) or _too_long(text, m.TEXT_MAX))
        conf = best.get("confidence")
        confidence = float(conf) if isinstance(conf, int | float) and 0 <= conf <= 1 else None
        return CustomerEvent(EventKind.SPEECH, text=text, confidence=confidence)
    digits = payload.get("digits")
    if reason == "dtmfDetected" and isinstance(digits, str) and digits:
        if not _DIGITS.fullmatch(digits[:32]):
            raise Unprocessable("digits: only 0-9, *, # and A-D")
        return CustomerEvent(EventKind.DTMF, digits=digits[:32])
    return CustomerEvent(EventKind.SILENCE)  # timeout, stt errors: nobody said anything usable


_DIGITS = re.compile(r"[0-9*#A-Da-d]+")


def _too_long(value: str, limit: int) -> str | None:
    return f"at most {limit} characters" if len(value) > limit else None


def _check(field: str, problem: str | None) -> None:
    if problem:
        raise Unprocessable(f"{field}: {problem}")


def _payload(raw: bytes) -> dict[str, Any]:
    raw.decode("utf-8")  # UnicodeDecodeError → 400 with the offset
    m.check_json_depth(raw)
    try:
        data = fastjson.loads(raw or b"{}")
    except ValueError as exc:  # includes a lone surrogate escape, which no id or text may carry
        raise BadRequest(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise Unprocessable("body must be a JSON object (a jambonz webhook payload)")
    return data


def _variables(data: dict[str, Any]) -> dict[str, str]:
    raw = data.get("vars")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 50:
        raise Unprocessable("customerData.vars: an object of at most 50 string values")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str | int | float | bool):
            raise Unprocessable("customerData.vars: values are strings or numbers")
        text = str(value)
        _check("customerData.vars", m.var_problem(key) or _too_long(key, 64) or (None if key else "an empty name")
               or m.var_problem(text) or _too_long(text, m.VAR_MAX))
        out[key] = text
    return out


def _customer_id(payload: dict[str, Any], data: dict[str, Any]) -> str:
    """customerData.customer_id, else an id derived from the callee's (outbound) or caller's number."""
    customer = data.get("customer_id")
    if customer is None or customer == "":
        number = str(payload.get("to") if payload.get("direction") == "outbound" else payload.get("from"))
        customer = "jambonz-" + hashlib.sha256(number.encode("utf-8", "replace")).hexdigest()[:16]  # never the raw number
    _check("customerData.customer_id", m.id_problem(customer, m.CUSTOMER_ID_MAX))
    assert isinstance(customer, str)  # id_problem checked it
    return customer


def _verbs(verbs: list[dict[str, Any]]) -> Response:
    return Response(json_bytes(verbs), media_type="application/json")


def _customer_data(payload: dict[str, Any]) -> dict[str, Any]:
    for key in ("customerData", "customer_data", "tag"):
        value = payload.get(key)
        if isinstance(value, dict):
            return value
    return {}


_VERBS_DOC = {200: {"description": "jambonz verb array",
                    "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}},
              **error_docs(400, 401, 413, 422, 503)}
_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


async def _recognizer(c: Any, call_sid: str) -> dict[str, Any] | None:
    """Our recogniser as the gather's vendor (HUASHU_JAMBONZ_STT_VENDOR), with the hints of the
    node the call now waits at; None: jambonz's default recogniser."""
    vendor = c.settings.jambonz_stt_vendor
    if not vendor:
        return None
    from core.conversation import SessionState
    from server.recognizer import hints_for

    rec = await c.sessions.load(call_sid)
    phrases = list(hints_for(c, SessionState.from_dict(rec.state)).phrases) if rec is not None else []
    return {"vendor": vendor, "language": LANGUAGE, "hints": phrases}


def register(app: FastAPI) -> None:
    from server import jambonz_stt

    jambonz_stt.register(app)

    @app.post("/jambonz/calls", tags=["jambonz"], responses=_VERBS_DOC, openapi_extra=_BODY_DOC,
              response_class=Response)
    async def jambonz_call(request: Request,
                           track: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        t0 = time.monotonic()
        c = ctx(request)
        await c.ensure_current()
        payload = _payload(await request.body())
        sid = payload.get("call_sid")
        _check("call_sid", m.id_problem(sid, m.CALL_ID_MAX))
        assert isinstance(sid, str)  # id_problem checked it
        data = _customer_data(payload)
        track_id = data.get("track") or track or ""
        if not track_id:
            raise Unprocessable("track: give ?track= on the webhook URL or customerData.track")
        _check("track", m.id_problem(track_id, m.TRACK_MAX))
        customer = _customer_id(payload, data)
        variables = _variables(data)
        try:
            body = await c.calls.start(sid, customer, track_id, variables)
        except CallRefused as exc:
            return _verbs([{"verb": "hangup", "headers": {"X-Huashu-Refused": exc.reason}}])
        finally:
            c.metrics.latency.labels("jambonz_call").observe(time.monotonic() - t0)
        return _verbs(to_verbs(fastjson.loads(body)["actions"], sid, 1, await _recognizer(c, sid)))

    @app.post("/jambonz/calls/{call_sid}/action", tags=["jambonz"], responses=_VERBS_DOC,
              openapi_extra=_BODY_DOC, response_class=Response)
    async def jambonz_action(call_sid: Annotated[str, Path(max_length=m.CALL_ID_MAX, pattern=m.ID_PATTERN)],
                             request: Request,
                             seq: Annotated[int, Query(ge=0, le=2**53)],
                             event: Annotated[str, Query(pattern="^(|playback_done|hangup)$")] = "") -> Response:
        t0 = time.monotonic()
        c = ctx(request)
        _check("call_sid", m.id_problem(call_sid, m.CALL_ID_MAX))
        await c.ensure_current()
        ev = event_from_hook(_payload(await request.body()), event)
        try:
            body = await c.calls.event(call_sid, seq, ev, t0=t0)
        finally:
            c.metrics.latency.labels("jambonz_action").observe(time.monotonic() - t0)
        return _verbs(to_verbs(fastjson.loads(body)["actions"], call_sid, seq + 1, await _recognizer(c, call_sid)))

    @app.post("/jambonz/status", tags=["jambonz"], openapi_extra=_BODY_DOC,
              responses={200: {"description": "acknowledged",
                               "content": {"application/json": {"schema": {"type": "object"}}}},
                         **error_docs(400, 401, 413, 422, 503)})
    async def jambonz_status(request: Request,
                             track: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        c = ctx(request)
        payload = _payload(await request.body())
        sid = payload.get("call_sid")
        status = payload.get("call_status")
        _check("call_sid", m.id_problem(sid, m.CALL_ID_MAX))
        assert isinstance(sid, str)  # id_problem checked it
        result = line_result(status, payload.get("sip_status"), payload.get("duration")) \
            if isinstance(status, str) else None
        if result is None:  # ringing, in progress: nothing to record yet
            return Response(b"{}", media_type="application/json")
        assert isinstance(status, str)  # line_result had one
        tag = reason_tag(*result)
        if tag is not None:  # never connected: the call may never have reached our call webhook
            data = _customer_data(payload)
            track_id = data.get("track") or track or ""
            _check("track", m.id_problem(track_id, m.TRACK_MAX) if track_id else None)
            if await c.calls.unreached(sid, _customer_id(payload, data), str(track_id), tag) != "live":
                return Response(b"{}", media_type="application/json")
        await c.calls.event(sid, STATUS_SEQ, status_event(status, payload.get("sip_status")))
        import logging

        logging.getLogger("huashu.server.jambonz").info("jambonz call %s %s", mask_id(sid), status)
        return Response(b"{}", media_type="application/json")
