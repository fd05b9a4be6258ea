"""ASGI middleware in front of every route: body size limit, signatures and keys, before any effect.

The body is buffered here (at most `max_body_bytes`; a larger Content-Length is refused without
reading, a chunked body as soon as it passes the limit) so that the signature is checked over the
exact raw bytes before the route parses anything. Errors go through `server.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import security
from server.errors import ApiError, PayloadTooLarge, error_response
from server.metrics import Metrics

SIGNED_PREFIXES = ("/v1/calls", "/v1/customers", "/v1/events", "/v1/campaigns")
AGENT_PREFIXES = ("/v1/wecom", "/v1/reports")
# WeCom's own callback is signed by WeCom (msg_signature, checked by wecom.api); the sidebar page
# and its static files are a shell that gets the key from the URL fragment and calls the
# key-protected APIs with it.
AGENT_OPEN = ("/v1/wecom/callback", "/v1/wecom/sidebar", "/v1/wecom/static/")
# WeCom's own callback (msg_signature, checked by wecom.callback) and the sidebar's static shell
# (no data in it; everything it shows comes through the key-protected APIs) take no agent key.
AGENT_OPEN_PREFIXES = ("/v1/wecom/callback", "/v1/wecom/sidebar", "/v1/wecom/static/")
JAMBONZ_PREFIX = "/jambonz"


class Guard:
    def __init__(self, app: ASGIApp, *, max_body: int, gateway_secrets: Callable[[], list[str]],
                 agent_keys: Callable[[], list[str]], jambonz_secret: Callable[[], str],
                 metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body
        self.gateway_secrets = gateway_secrets
        self.agent_keys = agent_keys
        self.jambonz_secret = jambonz_secret
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            try:
                self._authenticate(scope, b"")
            except ApiError:
                self.metrics.auth_failures.labels("websocket").inc()
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
            self._authenticate(scope, body)
        except ApiError as exc:
            if exc.status == 401:
                self.metrics.auth_failures.labels(_area(scope["path"])).inc()
            response = error_response(exc)
            if exc.status == 413:
                response.headers["Connection"] = "close"  # the rest of the body is never read
            await response(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = _headers(scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ApiError("Content-Length is not a number")
            if int(length) > self.max_body:
                raise PayloadTooLarge(f"body of {length} bytes is over the {self.max_body}-byte limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"body is over the {self.max_body}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _authenticate(self, scope: Scope, body: bytes) -> None:
        path: str = scope["path"]
        headers = _headers(scope)
        if path.startswith(SIGNED_PREFIXES):
            secrets = self.gateway_secrets()
            if secrets:
                security.verify(headers.get(security.SIGNATURE_HEADER), body, secrets)
        elif path.startswith(AGENT_PREFIXES) and not path.startswith(AGENT_OPEN_PREFIXES):
            security.check_agent(headers.get("authorization"), self.agent_keys())
        elif path.startswith(JAMBONZ_PREFIX):
            secret = self.jambonz_secret()
            if secret:
                security.verify(headers.get(security.JAMBONZ_HEADER), body, [secret], name="Jambonz-Signature")


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        out[k.decode("latin-1").lower()] = v.decode("latin-1")
    return out


def _area(path: str) -> str:
    for prefix in (*SIGNED_PREFIXES, *AGENT_PREFIXES, JAMBONZ_PREFIX):
        if path.startswith(prefix):
            return prefix.strip("/").replace("/", "_")
    return "other"


def scope_headers(scope: dict[str, Any]) -> dict[str, str]:
    return _headers(scope)
