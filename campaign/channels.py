"""What the runner sends through: message providers (store.providers) and call placers.

A call placer hands one originate request to a gateway; the call's result comes back later as an
event (`Runner.on_call_result`). Every request carries the touch's key as its idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class PlaceError(Exception):
    """The gateway refused the originate request (the touch fails with this reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CallRequest:
    call_id: str  # the touch key: idempotency key and the call id of POST /v1/calls
    customer_id: str
    track: str
    variables: dict[str, str] = field(default_factory=dict)
    phone: str = ""  # unmasked, only for placers built with include_phone
    campaign: str = ""
    step: str = ""
    caller_id: str = ""  # the number of the trunk's pool this callee is called from ("": the placer's own)
    trunk: str = ""  # the gateway's name of the trunk ("": the placer's own)


class CallPlacer(Protocol):
    include_phone: bool

    def place(self, call: CallRequest) -> None: ...
