"""WeCom JS-SDK on the server side: the `agentConfig` signature and the app's jsapi_ticket.

The sidebar page runs inside WeCom's chat toolbar; before it may call `getCurExternalContact` or
`sendChatMessage` it injects the app's identity with `wx.agentConfig`, whose signature only the
server can compute (it needs the app's jsapi_ticket, which needs the app's secret). WeCom's
documented algorithm: sha1 of `jsapi_ticket=T&noncestr=N&timestamp=S&url=U`, values raw (not
URL-encoded), the URL without its `#` fragment.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

# The JS APIs the sidebar uses (agentConfig's jsApiList).
JS_APIS = ("getCurExternalContact", "sendChatMessage")
_MARGIN_S = 300  # refresh a token/ticket this long before WeCom says it expires


class WecomApiError(Exception):
    """WeCom's server API answered an error (errcode != 0) or could not be reached."""


def signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """WeCom's JS-SDK signature (same for config and agentConfig; only the ticket differs)."""
    page = url.split("#", 1)[0]
    text = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What the page passes to `wx.agentConfig` (plus its callbacks)."""

    corpid: str
    agentid: str
    timestamp: int
    nonce: str
    signature: str
    js_apis: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """In `wx.agentConfig`'s own field names."""
        return {"corpid": self.corpid, "agentid": self.agentid, "timestamp": self.timestamp,
                "nonceStr": self.nonce, "signature": self.signature, "jsApiList": list(self.js_apis)}


class TicketClient:
    """Fetches and caches the app's access_token and agent_config jsapi_ticket (both valid 7200 s;
    WeCom rate-limits fetching them, so every process keeps one of each until shortly before expiry)."""

    def __init__(self, base_url: str, corp_id: str, secret: str, *, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time, timeout_s: float = 5.0) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self._clock = clock
        self._http = httpx.Client(base_url=base_url.rstrip("/"), transport=transport, timeout=timeout_s)
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self._ticket: tuple[str, float] | None = None

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = self._http.get(path, params=params)
            data: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WecomApiError(f"WeCom API {path}: {exc}") from None
        if data.get("errcode", 0) != 0:
            raise WecomApiError(f"WeCom API {path}: errcode {data.get('errcode')} {data.get('errmsg', '')}")
        return data

    def _fresh(self, cached: tuple[str, float] | None) -> str | None:
        return cached[0] if cached is not None and self._clock() < cached[1] else None

    def access_token(self) -> str:
        with self._lock:
            token = self._fresh(self._token)
            if token is None:
                data = self._get("/cgi-bin/gettoken", {"corpid": self.corp_id, "corpsecret": self._secret})
                token = str(data["access_token"])
                self._token = (token, self._clock() + int(data.get("expires_in", 7200)) - _MARGIN_S)
            return token

    def agent_ticket(self) -> str:
        """The jsapi_ticket for `agentConfig` (type=agent_config; `config` uses another one)."""
        token = self.access_token()
        with self._lock:
            ticket = self._fresh(self._ticket)
            if ticket is None:
                data = self._get("/cgi-bin/ticket/get", {"access_token": token, "type": "agent_config"})
                ticket = str(data["ticket"])
                self._ticket = (ticket, self._clock() + int(data.get("expires_in", 7200)) - _MARGIN_S)
            return ticket

    def agent_config(self, agent_id: str, url: str) -> AgentConfig:
        """A signed agentConfig for the page at `url`."""
        ticket = self.agent_ticket()
        now = int(self._clock())
        nonce = secrets.token_urlsafe(12)
        return AgentConfig(self.corp_id, agent_id, now, nonce, signature(ticket, nonce, now, url), JS_APIS)
