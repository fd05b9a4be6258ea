"""Provider adapters that actually send campaign SMS / WeCom messages, and the dispatcher.

Sending is the provider's job; we hand it message tasks. The webhook adapter POSTs JSON batches
(httpx) to the merchant's SMS gateway or WeCom bridge. Phones go to a provider only when the
adapter is built with `include_phone=True` (documented, opt-in); agents never see them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import httpx

from store.campaigns import StepPlan
from store.errors import StoreError
from store.segment_sql import provider_phones

if TYPE_CHECKING:
    from store.sql import SqlStore


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    task_id: str
    customer_id: str
    channel: str  # sms | wecom
    template: str
    text: str
    phone: str = ""  # unmasked, only for providers that were given it
    phone_masked: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"task_id": self.task_id, "customer_id": self.customer_id, "channel": self.channel,
               "template": self.template, "text": self.text, "phone_masked": self.phone_masked}
        if self.phone:
            out["phone"] = self.phone
        return out


class MessageProvider(Protocol):
    """Sends a batch; returns the task ids the provider accepted."""

    include_phone: bool

    def send(self, messages: Sequence[OutboundMessage]) -> set[str]: ...


class WebhookProvider:
    """POST {"channel", "messages": [...]} to `url`; 2xx accepts the whole batch, or the response
    may list `{"accepted": [task ids]}`. With a secret, signed like gateway callbacks:
    `X-Huashu-Signature: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")`."""

    def __init__(self, url: str, secret: str = "", include_phone: bool = False, timeout_s: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise StoreError(f"provider webhook URL must be http(s), got {url!r} "
                             "(HUASHU_SMS_WEBHOOK_URL / HUASHU_WECOM_WEBHOOK_URL)")
        self.url = url
        self.secret = secret
        self.include_phone = include_phone
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, messages: Sequence[OutboundMessage]) -> set[str]:
        if not messages:
            return set()
        body = json.dumps({"channel": messages[0].channel, "messages": [m.to_json() for m in messages]},
                          ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            ts = str(int(time.time()))
            sig = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers["X-Huashu-Signature"] = f"t={ts},v1={sig}"
        try:
            resp = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise StoreError(f"provider webhook {self.url} failed: {err}") from None
        if resp.status_code // 100 != 2:
            raise StoreError(f"provider webhook {self.url} answered {resp.status_code}: {resp.text[:200]}")
        try:
            accepted = resp.json().get("accepted")
        except (ValueError, AttributeError):
            accepted = None
        sent = {m.task_id for m in messages}
        return sent if accepted is None else sent & {str(x) for x in accepted}

    def close(self) -> None:
        self._client.close()


def dispatch(store: SqlStore, campaign: str, step: StepPlan, provider: MessageProvider, at: datetime,
             batch: int = 200) -> int:
    """Send a due message step through `provider`; each accepted task becomes a contact attempt
    (so caps count it and a second dispatch skips it). Returns how many were accepted."""
    spec = step.step.spec
    if spec.channel == "call":
        raise StoreError(f"step {spec.id} is a call step: hand its call tasks to the gateway instead")
    if not step.due:
        return 0
    phones = provider_phones(store, [tg.customer_id for tg in step.targets]) if provider.include_phone else {}
    accepted = 0
    for i in range(0, len(step.targets), batch):
        chunk = step.targets[i:i + batch]
        messages = []
        for tg in chunk:
            task = step.task(campaign, tg)
            messages.append(OutboundMessage(task["task_id"], tg.customer_id, spec.channel, spec.template,
                                            task["text"], phones.get(tg.customer_id, ""), tg.phone_masked))
        ok = provider.send(messages)
        store.record_attempts([(m.customer_id, m.task_id, at, spec.channel) for m in messages if m.task_id in ok])
        accepted += len(ok)
    return accepted
