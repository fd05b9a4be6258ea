"""Request authentication: gateway HMAC signatures (ours and jambonz's), agent and admin keys.

Gateway signature (contract): header `X-Huashu-Signature: t=<unix>,v1=<hex>`, v1 =
HMAC-SHA256(secret, "<t>.<raw body>"); |now − t| ≤ 300 s; every configured secret is tried (the
first signs; all verify, for rotation); comparison in constant time. jambonz signs its webhooks
the same way in the `Jambonz-Signature` header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

from server.errors import Forbidden, Unauthorized

SIGNATURE_HEADER = "x-huashu-signature"
JAMBONZ_HEADER = "jambonz-signature"
TOLERANCE_S = 300
# ASCII digits only ("²".isdigit() is true, int("²") fails), at most 12 (int() of 5,000 digits raises
# past Python's digit limit); v1 is a SHA-256 hex digest.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_MAC = re.compile(r"[0-9a-fA-F]{64}")
MAX_SIGNATURE_HEADER = 1024


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """The header value for `body` signed now (or at unix time `t`)."""
    ts = int(time.time()) if t is None else int(t)
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(header: str | None, body: bytes, secrets: Sequence[str], *, now: float | None = None,
           tolerance_s: int = TOLERANCE_S, name: str = "X-Huashu-Signature") -> None:
    """Raise Unauthorized unless `header` signs `body` with one of `secrets` within the window."""
    if not header:
        raise Unauthorized(f"missing {name} header")
    ts: str | None = None
    candidates: list[str] = []
    for part in header[:MAX_SIGNATURE_HEADER].split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            ts = value
        elif key == "v1" and _HEX_MAC.fullmatch(value):
            candidates.append(value.lower())
    if len(header) > MAX_SIGNATURE_HEADER or ts is None or not _TIMESTAMP.fullmatch(ts) or not candidates:
        raise Unauthorized(f"malformed {name} header (want t=<unix seconds>,v1=<64 hex digits>)")
    current = time.time() if now is None else now
    if abs(current - int(ts)) > tolerance_s:
        raise Unauthorized(f"{name} timestamp outside the {tolerance_s} s window")
    message = f"{ts}.".encode() + body
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()
        for candidate in candidates:
            # compare_digest on every pair (no early exit): timing reveals nothing
            ok |= hmac.compare_digest(expected, candidate.encode("ascii"))
    if not ok:
        raise Unauthorized(f"{name} does not match the body")


def bearer_ok(authorization: str | None, keys: Sequence[str]) -> bool:
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    token_b = token.strip().encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token_b, key.encode())
    return ok


def check_agent(authorization: str | None, keys: Sequence[str]) -> None:
    """Agent key (Authorization: Bearer) for /v1/wecom… when HUASHU_AGENT_KEYS is set."""
    if keys and not bearer_ok(authorization, keys):
        raise Unauthorized("missing or wrong agent key (Authorization: Bearer <key>)",
                           headers={"WWW-Authenticate": "Bearer"})


def check_admin(authorization: str | None, x_admin_key: str | None, admin_key: str) -> None:
    """Admin endpoints: disabled until HUASHU_ADMIN_KEY is set; then that key is required."""
    if not admin_key:
        raise Forbidden("admin endpoints are disabled: set HUASHU_ADMIN_KEY")
    if x_admin_key is not None and hmac.compare_digest(x_admin_key.encode(), admin_key.encode()):
        return
    if bearer_ok(authorization, [admin_key]):
        return
    raise Unauthorized("missing or wrong admin key (X-Admin-Key or Authorization: Bearer)",
                       headers={"WWW-Authenticate": "Bearer"})
