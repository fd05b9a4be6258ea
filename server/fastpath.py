"""The two callbacks of every live call, answered without the framework's routing.

At 1,000 concurrent calls the gateway sends ~200 callbacks a second, and most of them are
`POST /v1/calls/{call_id}/events`. Starlette and FastAPI route each one through five more
middleware layers, a scan of every route, a Request object and dependency solving: about a
tenth of the server's CPU (py-spy, bench/server.py). This ASGI layer sits just inside the
Guard (so sizes and signatures are already checked) and answers the call-start and event
callbacks itself, with the same handlers (server.routes_calls), the same body parsing
(server.models.parse) and the same error mapping (server.errors.error_response). Every other
request, and every method other than POST on these paths, goes on to the app as before; the
FastAPI routes stay registered, so /openapi.json still documents both endpoints.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from server import models as m
from server.errors import Unprocessable, error_response

if TYPE_CHECKING:
    from server.context import ServerContext

EVENTS = re.compile(r"/v1/calls/([^/]+)/events")
START = "/v1/calls"
_HEADERS = [(b"content-type", b"application/json")]


class FastCalls:
    """ASGI middleware: call start and call events straight to the CallService."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        match = None if path == START else EVENTS.fullmatch(path)
        if match is None and path != START:
            await self.app(scope, receive, send)
            return
        context = getattr(scope["app"].state, "huashu", None)
        if context is None:  # not started (no lifespan): let the app answer as it would
            await self.app(scope, receive, send)
            return
        t0 = time.monotonic()
        label = "start" if match is None else "event"
        try:
            await context.ensure_current()
            raw = await _body(receive)
            body = await (start_call(context, raw) if match is None else call_event(context, match.group(1), raw, t0))
        except Exception as exc:  # the app's single mapping, as its exception handlers would answer
            await error_response(exc)(scope, receive, send)
            return
        finally:
            context.metrics.latency.labels(label).observe(time.monotonic() - t0)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), *_HEADERS]})
        await send({"type": "http.response.body", "body": body})


async def start_call(context: ServerContext, raw: bytes) -> bytes:
    """`POST /v1/calls`: the raw body → the answer (shared by this layer and the FastAPI route)."""
    start = m.parse(m.StartCallIn, raw)
    return await context.calls.start(start.call_id, start.customer_id, start.track, dict(start.vars))


def check_call_id(call_id: str) -> None:
    """A call id from a URL path: the body's rules (no control characters, at most 128)."""
    problem = m.id_problem(call_id, m.CALL_ID_MAX)
    if problem:
        raise Unprocessable(f"call_id: {problem}")


async def call_event(context: ServerContext, call_id: str, raw: bytes, t0: float) -> bytes:
    """`POST /v1/calls/{call_id}/events`: the raw body → the answer (shared, as above)."""
    check_call_id(call_id)
    event = m.parse(m.EventIn, raw)
    return await context.calls.event(call_id, event.seq, event.to_event(), t0=t0)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
