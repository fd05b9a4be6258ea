"""ASGI middleware in front of every route: body size limit, signatures and keys, before any effect.

The body is buffered here (at most `max_body_bytes`; a larger Content-Length is refused without
reading, a chunked body as soon as it passes the limit) so that the signature is checked over the
exact raw bytes before the route parses anything; a JSON body nested too deep is refused here too.
Errors go through `server.errors`.

Secure by default: an area whose credential is not configured is closed (403 `not_configured`),
unless the server runs with `insecure_dev` (HUASHU_INSECURE_DEV / `huashu serve --insecure-dev`).
`/v1/calls…` takes the gateway signature; `/v1/customers…` a gateway signature or an agent key;
`/v1/wecom/…` and `/v1/reports/…` an agent key; `/jambonz/…` jambonz's signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import security
from server.errors import ApiError, Forbidden, PayloadTooLarge, error_response
from server.metrics import Metrics
from server.models import check_json_depth

SIGNED_PREFIXES = ("/v1/calls", "/v1/customers", "/v1/events", "/v1/campaigns")
CUSTOMER_PREFIX = "/v1/customers"
AGENT_PREFIXES = ("/v1/wecom", "/v1/reports")
# WeCom's own callback (msg_signature, checked by wecom.callback) and the sidebar's static shell
# (no data in it; everything it shows comes through the key-protected APIs) take no agent key.
AGENT_OPEN_PREFIXES = ("/v1/wecom/callback", "/v1/wecom/sidebar", "/v1/wecom/static/")
JAMBONZ_PREFIX = "/jambonz"


class Guard:
    def __init__(self, app: ASGIApp, *, max_body: int, gateway_secrets: Callable[[], list[str]],
                 agent_keys: Callable[[], list[str]], jambonz_secret: Callable[[], str],
                 metrics: Metrics, insecure_dev: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.insecure_dev = insecure_dev
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
            if body and "json" in _headers(scope).get("content-type", ""):
                check_json_depth(body)
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
            if not (length.isascii() and length.isdigit()) or len(length) > 15:
                raise ApiError("Content-Length is not a number", code="invalid_header")
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
        if path.startswith(CUSTOMER_PREFIX):
            self._customer(headers, body)
        elif path.startswith(SIGNED_PREFIXES):
            secrets = self.gateway_secrets()
            if secrets:
                security.verify(headers.get(security.SIGNATURE_HEADER), body, secrets)
            elif not self.insecure_dev():
                raise Forbidden(NO_SECRET, code="not_configured")
        elif path.startswith(AGENT_PREFIXES) and not path.startswith(AGENT_OPEN_PREFIXES):
            keys = self.agent_keys()
            if keys:
                security.check_agent(headers.get("authorization"), keys)
            elif not self.insecure_dev():
                raise Forbidden(NO_AGENT_KEYS, code="not_configured")
        elif path.startswith(JAMBONZ_PREFIX):
            secret = self.jambonz_secret()
            if secret:
                security.verify(headers.get(security.JAMBONZ_HEADER), body, [secret], name="Jambonz-Signature")
            elif not self.insecure_dev():  # these routes start calls: never open to anyone by default
                raise Forbidden(NO_JAMBONZ_SECRET, code="not_configured")


    def _customer(self, headers: dict[str, str], body: bytes) -> None:
        """Customer profiles: the gateway's signature or an agent's key (either, when configured)."""
        secrets, keys = self.gateway_secrets(), self.agent_keys()
        if not secrets and not keys:
            if self.insecure_dev():
                return
            raise Forbidden(f"{NO_SECRET} / {NO_AGENT_KEYS}", code="not_configured")
        if keys and security.bearer_ok(headers.get("authorization"), keys):
            return
        if secrets:
            security.verify(headers.get(security.SIGNATURE_HEADER), body, secrets)
            return
        security.check_agent(headers.get("authorization"), keys)


NO_SECRET = ("HUASHU_GATEWAY_SECRET is not set, so gateway routes are closed "
             "(set it, or run with --insecure-dev / HUASHU_INSECURE_DEV=1 for a local demo)")
NO_JAMBONZ_SECRET = ("HUASHU_JAMBONZ_SECRET is not set, so the jambonz routes are closed "
                     "(set it to the jambonz application's webhook secret, or run with --insecure-dev)")
NO_AGENT_KEYS = ("HUASHU_AGENT_KEYS is not set, so agent routes are closed "
                 "(set it, or run with --insecure-dev / HUASHU_INSECURE_DEV=1 for a local demo)")


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
