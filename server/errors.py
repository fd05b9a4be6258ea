"""The one place where an exception becomes an HTTP status and a JSON body.

Every handler and the guard middleware raise; `error_response` answers, for every route (`/v1`,
`/jambonz`, WeCom, ops). Every error body has one shape, `{"code": <stable id>, "detail": <what to
fix>}` (`ERROR_CODES` lists the codes); a compliance refusal is `{"refused": <reason>, "code":
"refused"}` (409). Client mistakes are 4xx; an unreachable session store or database is 503 with
`Retry-After`; only a bug is a 500 (logged, no detail leaked).
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


RETRY_AFTER_S = "1"

# code → what it means (docs/server.md lists these; integrators branch on them, so never rename).
ERROR_CODES: dict[str, str] = {
    "invalid_utf8": "400: the body is not UTF-8",
    "invalid_json": "400: the body is not JSON, or nested deeper than the limit",
    "invalid_header": "400: a malformed header (Content-Length)",
    "invalid_request": "422: a field is missing, of the wrong type, too long, or has control characters",
    "unauthorized": "401: missing, malformed, stale or wrong signature / key",
    "not_configured": "403: the credentials of this area are not configured (see HUASHU_GATEWAY_SECRET, "
                      "HUASHU_AGENT_KEYS, HUASHU_ADMIN_KEY)",
    "not_found": "404: unknown customer, track, report, clip or suggestion",
    "method_not_allowed": "405: the path exists, not with this method",
    "refused": "409: the compliance gate refused the call (`refused` says why)",
    "conflict": "409: the call_id exists with other parameters",
    "body_too_large": "413: the body is over HUASHU_MAX_BODY_BYTES",
    "store_unavailable": "503: the database cannot be reached; retry after Retry-After",
    "sessions_unavailable": "503: the session store (Redis) cannot be reached; retry after Retry-After",
    "unavailable": "503: busy or not ready (a concurrent start, a missing model); retry after Retry-After",
    "internal": "500: a bug (logged; no detail in the body)",
}
_STATUS_CODES = {400: "invalid_json", 401: "unauthorized", 403: "not_configured", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "body_too_large", 422: "invalid_request",
                 503: "unavailable"}


class ApiError(Exception):
    """A client-facing error: `status`, a stable `code` and a message safe to show."""

    status = 400
    code = "invalid_json"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
            self.code = _STATUS_CODES.get(status, self.code)
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400
    code = "invalid_json"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "not_configured"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "body_too_large"


class Unprocessable(ApiError):
    status = 422
    code = "invalid_request"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": RETRY_AFTER_S, **(headers or {})})


def json_bytes(data: Any) -> bytes:
    """The server's one JSON encoding (compact, UTF-8): cached bodies replay byte for byte."""
    return fastjson.dumps(data)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(data), status_code=status, media_type="application/json", headers=headers)


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "detail": detail}


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(error_body(code, detail), status, headers)


def _loc(e: Any) -> str:
    return ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"


def _validation(errors: list[Any]) -> Response:
    bad_json = next((e for e in errors if e.get("type") in ("json_invalid", "json_type")), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", bad_json.get("msg"))
        return _error(400, "invalid_json", f"body is not valid JSON: {reason}")
    # the message names the field, never echoes the value (it may be a phone number or a control char)
    return _error(422, "invalid_request", "; ".join(f"{_loc(e)}: {e.get('msg')}" for e in errors[:5]))


def _store_unavailable(exc: BaseException) -> bool:
    from store.errors import StoreUnavailableError

    if isinstance(exc, StoreUnavailableError):
        return True
    from sqlalchemy import exc as sa_exc

    from store.db import is_connectivity_error

    return isinstance(exc, sa_exc.SQLAlchemyError) and is_connectivity_error(exc)


def error_response(exc: BaseException) -> Response:
    """Exception → response (the single mapping; see module docstring)."""
    from dialogue.engine import CallRefused, UnknownVariable

    if isinstance(exc, CallRefused):
        return json_response({"refused": exc.reason, "code": "refused"}, 409)
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, ValidationError | RequestValidationError):
        return _validation(list(exc.errors()))
    if isinstance(exc, UnicodeDecodeError):
        return _error(400, "invalid_utf8", f"body is not valid UTF-8 (bad byte at offset {exc.start})")
    if isinstance(exc, UnknownVariable):
        return _error(422, "invalid_request", str(exc))
    if isinstance(exc, SessionsUnavailable):
        log.error("%s", exc)
        return _error(503, "sessions_unavailable", "session store unavailable, retry", {"Retry-After": RETRY_AFTER_S})
    if _store_unavailable(exc):
        log.error("database unavailable: %s", exc)
        return _error(503, "store_unavailable", "database unavailable, retry", {"Retry-After": RETRY_AFTER_S})
    if isinstance(exc, StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 503:
            headers.setdefault("Retry-After", RETRY_AFTER_S)
        code = _STATUS_CODES.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "unavailable")
        return _error(exc.status_code, code, str(exc.detail), headers)
    from asr.errors import AsrError, AudioError

    if isinstance(exc, AudioError):
        return _error(422, "invalid_request", f"audio: {exc}")
    if isinstance(exc, AsrError):  # a missing model or an audio-less backend: configuration
        log.error("ASR: %s", exc)
        return _error(503, "unavailable", f"speech recognition unavailable: {exc}", {"Retry-After": RETRY_AFTER_S})
    log.exception("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return _error(500, "internal", "internal error")
