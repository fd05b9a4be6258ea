"""Call placers: jambonz's REST API and a generic signed originate webhook.

Both send the touch key as the idempotency key (`Idempotency-Key` header; in jambonz also the
call's `tag` and an `X-Huashu-Call-Id` SIP header) so a gateway can drop a repeated request.
Results come back as `call_result` events on `POST /v1/events` (webhook gateways) or through
jambonz's call status hook (`POST /jambonz/campaign-status`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from campaign.channels import CallRequest, PlaceError
from core.callstatus import line_result
from store.errors import StoreError


def signature(secret: str, body: bytes, ts: int | None = None) -> str:
    """`t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")` (the gateway signature of CONTRACT.md)."""
    t = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _post(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    try:
        return client.post(url, content=json.dumps(body, ensure_ascii=False).encode(), headers=headers)
    except httpx.HTTPError as err:  # the gateway is unreachable: the runner retries the touch later
        raise StoreError(f"call gateway {url} unreachable: {err}") from None


def _check(resp: httpx.Response, url: str) -> None:
    if resp.status_code // 100 == 2:
        return
    if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
        raise PlaceError(f"gateway_{resp.status_code}")
    raise StoreError(f"call gateway {url} answered {resp.status_code}: {resp.text[:200]}")


class WebhookPlacer:
    """POST `{"call_id","customer_id","track","vars","campaign","step","callback_url","phone"?,
    "caller_id"?,"trunk"?}` to the merchant's originate URL, signed with the gateway secret."""

    def __init__(self, url: str, secret: str, callback_url: str, include_phone: bool = True,
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise StoreError(f"HUASHU_ORIGINATE_URL must be http(s), got {url!r}")
        self.url = url
        self.secret = secret
        self.callback_url = callback_url
        self.include_phone = include_phone
        self._client = client or httpx.Client(timeout=10.0)

    def place(self, call: CallRequest) -> None:
        body: dict[str, Any] = {"call_id": call.call_id, "customer_id": call.customer_id, "track": call.track,
                                "vars": call.variables, "campaign": call.campaign, "step": call.step,
                                "callback_url": self.callback_url}
        if call.phone:
            body["phone"] = call.phone
        if call.caller_id:
            body["caller_id"] = call.caller_id
        if call.trunk:
            body["trunk"] = call.trunk
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": call.call_id}
        if self.secret:
            headers["X-Huashu-Signature"] = signature(self.secret, raw)
        try:
            resp = self._client.post(self.url, content=raw, headers=headers)
        except httpx.HTTPError as err:
            raise StoreError(f"call gateway {self.url} unreachable: {err}") from None
        _check(resp, self.url)


def jambonz_body(call: CallRequest, *, application_sid: str, caller: str, status_hook: str,
                 trunk: str = "", timeout_s: int = 30) -> dict[str, Any]:
    """The createCall body (jambonz api-server swagger: from, to: Target, application_sid, …)."""
    to: dict[str, Any] = {"type": "phone", "number": call.phone}
    if trunk:
        to["trunk"] = trunk
    return {"application_sid": application_sid, "from": caller, "to": to, "timeout": timeout_s,
            "call_status_hook": {"url": status_hook, "method": "post"},
            "tag": {"huashu_call_id": call.call_id, "customer_id": call.customer_id, "track": call.track,
                    "campaign": call.campaign, "step": call.step},
            "headers": {"X-Huashu-Call-Id": call.call_id}}


class JambonzPlacer:
    """jambonz REST: `POST {api}/v1/Accounts/{account_sid}/Calls` with a bearer API key."""

    include_phone = True

    def __init__(self, api_url: str, account_sid: str, api_key: str, application_sid: str, caller: str,
                 status_hook: str, trunk: str = "", client: httpx.Client | None = None) -> None:
        if not (api_url and account_sid and api_key and application_sid and caller):
            raise StoreError("jambonz placing needs HUASHU_JAMBONZ_API_URL, _ACCOUNT_SID, _API_KEY, "
                             "_APPLICATION_SID and HUASHU_CALLER_ID")
        self.url = f"{api_url.rstrip('/')}/v1/Accounts/{account_sid}/Calls"
        self.api_key = api_key
        self.application_sid = application_sid
        self.caller = caller
        self.status_hook = status_hook
        self.trunk = trunk
        self._client = client or httpx.Client(timeout=10.0)

    def place(self, call: CallRequest) -> None:
        if not call.phone:
            raise PlaceError("no_phone")
        body = jambonz_body(call, application_sid=self.application_sid, caller=call.caller_id or self.caller,
                            status_hook=self.status_hook, trunk=call.trunk or self.trunk)
        resp = _post(self._client, self.url, body, {"Content-Type": "application/json",
                                                     "Authorization": f"Bearer {self.api_key}",
                                                     "Idempotency-Key": call.call_id})
        _check(resp, self.url)


def jambonz_result(payload: dict[str, Any]) -> tuple[str, str, str] | None:
    """(call_id, result, reason) from a jambonz call status hook; None for progress updates.
    Result and reason from the call_status, SIP cause and duration (core.callstatus)."""
    tag = payload.get("customerData") or payload.get("tag") or {}
    call_id = str(tag.get("huashu_call_id", "")) if isinstance(tag, dict) else ""
    status = payload.get("call_status")
    parsed = line_result(status, payload.get("sip_status"), payload.get("duration")) if isinstance(status, str) else None
    if parsed is None or not call_id:
        return None
    return call_id, *parsed
