"""WeCom callback handling: URL verification (echostr), message verification/decryption, stale
timestamps and duplicate deliveries.

WeCom retries a callback it got no answer to within 5 s, up to three times, with the same MsgId
(events carry no MsgId: FromUserName + CreateTime + Event identify them), so each message is
processed once per process here, and the store write it may cause is exactly-once on its own id.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from wecom.crypto import PARSE_XML_ERROR, CryptoError, WeComCrypto

MAX_XML_BYTES = 256_000


class CallbackRejected(Exception):
    """The request is not a valid, fresh WeCom callback. `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class CallbackMessage:
    """A decrypted callback message: its fields, flat (`Content`, `MsgType`, `FromUserName`…)."""

    fields: dict[str, str]
    xml: str

    @property
    def dedupe_key(self) -> str:
        f = self.fields
        if f.get("MsgId"):
            return f"msg:{f['MsgId']}"
        return f"event:{f.get('FromUserName', '')}:{f.get('CreateTime', '')}:{f.get('Event', '')}"

    @property
    def msg_type(self) -> str:
        return self.fields.get("MsgType", "")

    @property
    def sender(self) -> str:
        f = self.fields
        return f.get("ExternalUserID") or f.get("FromUserName", "")

    @property
    def text(self) -> str:
        return self.fields.get("Content", "")


def parse_xml(text: str) -> dict[str, str]:
    """Child elements of the root, flat. Refuses DTDs and entities (no XXE / entity expansion)."""
    if len(text) > MAX_XML_BYTES:
        raise CryptoError(PARSE_XML_ERROR, "XML body too large")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise CryptoError(PARSE_XML_ERROR, "XML with a DTD or entities is refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CryptoError(PARSE_XML_ERROR, f"not valid XML: {exc}") from None
    return {child.tag: (child.text or "").strip() for child in root}


class SeenStore(Protocol):
    """Which callbacks were processed: `SeenIds` in one process, Redis for N workers."""

    def first_time(self, key: str, now: float | None = None) -> bool: ...

    def forget(self, key: str) -> None: ...


class SeenIds:
    """Bounded set of recently processed ids with a time to live (thread-safe)."""

    def __init__(self, ttl_s: float = 3600.0, max_items: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str, now: float | None = None) -> bool:
        """True the first time `key` is seen within the TTL (and records it)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            while self._items and (len(self._items) >= self.max_items
                                   or next(iter(self._items.values())) < t - self.ttl_s):
                self._items.popitem(last=False)
            if key in self._items:
                return False
            self._items[key] = t
            return True

    def forget(self, key: str) -> None:
        """Let a redelivery through again (processing the first delivery failed)."""
        with self._lock:
            self._items.pop(key, None)


class CallbackVerifier:
    """Checks signature, freshness and receive id, then decrypts."""

    def __init__(self, crypto: WeComCrypto, max_skew_s: int = 300, seen: SeenStore | None = None) -> None:
        self.crypto = crypto
        self.max_skew_s = max_skew_s
        self.seen: SeenStore = seen or SeenIds()

    def _fresh(self, timestamp: str, now: float | None) -> None:
        # ASCII digits, bounded: int() also takes "²", " 1_700 " and 5,000 digits (then raises)
        if not isinstance(timestamp, str) or not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            raise CallbackRejected(400, "timestamp must be unix seconds")
        ts = int(timestamp)
        current = time.time() if now is None else now
        if abs(current - ts) > self.max_skew_s:
            raise CallbackRejected(401, f"stale timestamp (more than {self.max_skew_s}s from now)")

    def _open(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str, now: float | None) -> str:
        if not (msg_signature and timestamp and nonce and encrypted):
            raise CallbackRejected(400, "msg_signature, timestamp, nonce and the ciphertext are required")
        self._fresh(timestamp, now)
        try:
            return self.crypto.verify_and_decrypt(msg_signature, timestamp, nonce, encrypted)
        except CryptoError as exc:
            raise CallbackRejected(401, f"{exc} ({exc.code})") from None

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str,
                   now: float | None = None) -> str:
        """GET check when the callback URL is saved in the WeCom admin: returns the plain echostr."""
        return self._open(msg_signature, timestamp, nonce, echostr, now)

    def open_message(self, msg_signature: str, timestamp: str, nonce: str, body: str,
                     now: float | None = None) -> CallbackMessage | None:
        """The decrypted message of a POST, or None when this message was already processed."""
        try:
            outer = parse_xml(body)
        except CryptoError as exc:
            raise CallbackRejected(400, str(exc)) from None
        encrypted = outer.get("Encrypt", "")
        if not encrypted:
            raise CallbackRejected(400, "callback XML has no Encrypt element")
        plain = self._open(msg_signature, timestamp, nonce, encrypted, now)
        try:
            message = CallbackMessage(parse_xml(plain), plain)
        except CryptoError as exc:
            raise CallbackRejected(400, f"decrypted message: {exc}") from None
        if not self.seen.first_time(message.dedupe_key):
            return None
        return message
