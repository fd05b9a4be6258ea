"""The one place where an exception becomes an HTTP status and a JSON body.

Every handler and the guard middleware raise; `error_response` answers. Client mistakes are 4xx
with a message that says what to fix; only a bug is a 500 (logged, no detail leaked).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core import fastjson
from core.shared_kv import SessionsUnavailable

log = logging.getLogger("huashu.server")


class ApiError(Exception):
    """A client-facing error: `status` and a message safe to show."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class Unprocessable(ApiError):
    status = 422


class Unavailable(ApiError):
    status = 503


def json_bytes(data: Any) -> bytes:
    """The server's one JSON encoding (compact, UTF-8): cached bodies replay byte for byte."""
    return fastjson.dumps(data)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(data), status_code=status, media_type="application/json", headers=headers)


def _validation_message(exc: ValidationError) -> tuple[int, str]:
    errors = exc.errors(include_url=False)
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        return 400, f"body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ())) or "body"
        parts.append(f"{where}: {e.get('msg')}")
    return 422, "; ".join(parts)


def error_response(exc: BaseException) -> Response:
    """Exception → response (the single mapping; see module docstring)."""
    from dialogue.engine import CallRefused, UnknownVariable

    if isinstance(exc, CallRefused):
        return json_response({"refused": exc.reason}, 409)
    if isinstance(exc, ApiError):
        return json_response({"detail": exc.message}, exc.status, exc.headers)
    if isinstance(exc, ValidationError):
        status, message = _validation_message(exc)
        return json_response({"detail": message}, status)
    if isinstance(exc, RequestValidationError):
        return json_response({"detail": "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])}, 422)
    if isinstance(exc, UnicodeDecodeError):
        return json_response({"detail": f"body is not valid UTF-8 (bad byte at offset {exc.start})"}, 400)
    if isinstance(exc, UnknownVariable):
        return json_response({"detail": str(exc)}, 422)
    if isinstance(exc, SessionsUnavailable):
        log.error("%s", exc)
        return json_response({"detail": "session store unavailable, retry"}, 503, {"Retry-After": "1"})
    if isinstance(exc, StarletteHTTPException):
        return json_response({"detail": exc.detail}, exc.status_code, dict(exc.headers or {}))
    from asr.errors import AsrError, AudioError

    if isinstance(exc, AudioError):
        return json_response({"detail": f"audio: {exc}"}, 422)
    if isinstance(exc, AsrError):  # a missing model or an audio-less backend: configuration
        log.error("ASR: %s", exc)
        return json_response({"detail": f"speech recognition unavailable: {exc}"}, 503)
    log.exception("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return json_response({"detail": "internal error"}, 500)
