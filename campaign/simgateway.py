"""`huashu gateway-sim --serve`: a gateway that accepts originate requests (our signed webhook and
jambonz's `POST /v1/Accounts/{sid}/Calls`) and plays simulated customers against our callbacks:
pickup, busy, no answer and carrier announcements per campaign.behaviour; an answered call is a
real conversation (`POST /v1/calls`, then speech events from sampled replies); the result goes
back as a signed `call_result` event. A repeated call id (idempotency key) places no second call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from campaign import behaviour as bh
from campaign.gateways import signature

log = logging.getLogger("huashu.gateway_sim")
# Sampled customer replies per talk outcome (what a customer of that kind says, in order).
REPLIES = {
    "promised_to_pay": ("喂，你好", "定金是多少", "好的，我晚上就付"),
    "high_intent": ("喂", "这个活动到什么时候", "多少钱啊"),
    "not_interested": ("喂", "不需要，谢谢"),
    "call_back_later": ("喂", "我在开会，晚点再说"),
    "completed": ("你好", "嗯", "好的知道了"),
    "do_not_contact": ("别再给我打电话了",),
}


class SimGateway:
    def __init__(self, server: httpx.AsyncClient, secret: str, seed: int = 0, callback_url: str = "",
                 result_delay_s: float = 0.0) -> None:
        self.server = server
        self.secret = secret
        self.seed = seed
        self.callback_url = callback_url
        self.result_delay_s = result_delay_s
        self.calls: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _headers(self, raw: bytes) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.secret:
            h["X-Huashu-Signature"] = signature(self.secret, raw)
        return h

    async def _post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        return await self.server.post(url, content=raw, headers=self._headers(raw))

    def accept(self, call_id: str, customer_id: str, track: str, variables: dict[str, Any], callback: str) -> bool:
        """Start a call; False for a call id seen before (no second call)."""
        if call_id in self.calls:
            return False
        self.calls[call_id] = {"customer_id": customer_id, "track": track, "result": None}
        task = asyncio.create_task(self._play(call_id, customer_id, track, variables, callback or self.callback_url))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _play(self, call_id: str, customer_id: str, track: str, variables: dict[str, Any],
                    callback: str) -> None:
        attempt = int(call_id.split("#")[1]) if "#" in call_id else 1
        out = bh.call(self.seed, customer_id, attempt)
        result, reason = out.result, out.reason
        try:
            if result == "answered":
                result, reason = await self._talk(call_id, customer_id, track, variables, out.outcome)
        except httpx.HTTPError as exc:
            result, reason = "failed", f"callback_error:{type(exc).__name__}"
        await asyncio.sleep(self.result_delay_s)
        self.calls[call_id]["result"] = (result, reason)
        event = {"event_id": f"{call_id}:result", "type": "call_result", "customer_id": customer_id,
                 "at": datetime.now(UTC).isoformat(), "call_id": call_id, "result": result, "reason": reason}
        for _ in range(5):  # our server may be briefly unavailable: the event is idempotent, resend
            try:
                resp = await self._post(callback, event)
                if resp.status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1.0)
        log.warning("call %s: result could not be delivered to %s", call_id, callback)

    async def _talk(self, call_id: str, customer_id: str, track: str, variables: dict[str, Any],
                    outcome: str) -> tuple[str, str]:
        start = await self._post("/v1/calls", {"call_id": call_id, "customer_id": customer_id, "track": track,
                                               "vars": variables})
        if start.status_code == 409:
            return "failed", f"refused:{start.json().get('refused', '')}"
        start.raise_for_status()
        if any(a.get("type") == "hangup" for a in start.json().get("actions", [])):
            return "answered", ""
        seq = 0
        for text in REPLIES.get(outcome, REPLIES["completed"]):
            seq += 1
            resp = await self._post(f"/v1/calls/{call_id}/events", {"seq": seq, "type": "speech", "text": text,
                                                                    "confidence": 0.9})
            resp.raise_for_status()
            if resp.json().get("ended"):
                return "answered", ""
        seq += 1
        await self._post(f"/v1/calls/{call_id}/events", {"seq": seq, "type": "hangup"})
        return "answered", ""


def create_app(gateway: SimGateway) -> FastAPI:
    app = FastAPI(title="huashu gateway simulator")

    @app.post("/originate")
    async def originate(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("call_id") or not body.get("customer_id"):
            return JSONResponse({"error": "call_id and customer_id are required"}, status_code=400)
        new = gateway.accept(str(body["call_id"]), str(body["customer_id"]), str(body.get("track", "")),
                             dict(body.get("vars") or {}), str(body.get("callback_url", "")))
        return JSONResponse({"accepted": True, "duplicate": not new})

    @app.post("/v1/Accounts/{account_sid}/Calls")
    async def jambonz_create_call(account_sid: str, request: Request) -> JSONResponse:
        body = await request.json()
        to = body.get("to") if isinstance(body, dict) else None
        tag = body.get("tag") if isinstance(body, dict) else None
        if not (isinstance(to, dict) and to.get("type") and body.get("from") and isinstance(tag, dict)
                and tag.get("huashu_call_id")):
            return JSONResponse({"msg": "from, to and tag.huashu_call_id are required"}, status_code=400)
        gateway.accept(str(tag["huashu_call_id"]), str(tag.get("customer_id", "")), str(tag.get("track", "")), {}, "")
        return JSONResponse({"sid": tag["huashu_call_id"]}, status_code=201)

    @app.get("/calls")
    async def calls() -> JSONResponse:
        return JSONResponse(gateway.calls)

    return app
