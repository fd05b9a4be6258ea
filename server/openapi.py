"""`/openapi.json` that tells the truth: every status an operation can answer, with its body.

Routes declare what their handlers raise (`responses=` in their decorators). What the edge adds
to every route of an area is declared here, from the same prefixes the Guard uses: 401/403 where
a signature or key is checked, 400/413 where a body is read, 404 where a path parameter holding
an encoded "/" matches no route. Every 4xx/5xx body is the one `Error` shape of server.errors (the
409 of a call start may also be `Refused`), 503 carries `Retry-After`, and FastAPI's default 422
schema (`detail` as an array) is replaced, because server.errors never answers it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from server import guard
from server.models import ERROR_TEXT, Error, Refused

ERROR_REF = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
_BODY_METHODS = {"post", "put", "patch"}


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with the generated schema completed by `complete`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags)
            complete(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def edge_statuses(path: str, method: str) -> set[int]:
    """The statuses the Guard (and routing) may answer for this operation before its handler runs."""
    statuses: set[int] = set()
    if method in _BODY_METHODS:
        statuses |= {400, 413}  # a JSON body nested too deep; a body over the size limit
    if path.startswith(guard.SIGNED_PREFIXES) or (
            path.startswith(guard.AGENT_PREFIXES) and not path.startswith(guard.AGENT_OPEN_PREFIXES)):
        statuses |= {401, 403}  # bad signature/key; credentials of the area not configured
    if path.startswith(guard.JAMBONZ_PREFIX):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    return statuses


def complete(schema: dict[str, Any]) -> None:
    """Add the edge's statuses and the one error body to every operation of `schema`, in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = Error.model_json_schema()
    components["Refused"] = Refused.model_json_schema()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in edge_statuses(path, method):
                responses.setdefault(str(status), {"description": ERROR_TEXT.get(status, "Error")})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    _error_response(int(status), response)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str(schema["paths"]):
            components.pop(unused, None)


def _error_response(status: int, response: dict[str, Any]) -> None:
    content = response.setdefault("content", {})
    current = content.get("application/json", {}).get("schema") or {}
    if not current or "HTTPValidationError" in str(current):  # keep what a route declared (Refused, Health)
        current = ERROR_REF
    response["content"] = {"application/json": {"schema": current}}
    if status == 503:
        response.setdefault("headers", {}).update(RETRY_AFTER)
