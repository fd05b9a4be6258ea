"""Compliance gate rules that need no database: calling window, timezones, cap windows.

Reason codes are the contract's: do_not_contact, outside_calling_window, frequency_cap, and from
what an unreachable call found: invalid_number (never again), powered_off (not again today).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from store.errors import StoreError

DO_NOT_CONTACT = "do_not_contact"
OUTSIDE_CALLING_WINDOW = "outside_calling_window"
FREQUENCY_CAP = "frequency_cap"
# What an unreachable call taught us about the number (the reason tags of `unreachable`):
# an empty number (空号) is never called again; a phone that was off is retried from tomorrow.
INVALID_NUMBER = "invalid_number"
POWERED_OFF = "powered_off"
REASONS = (DO_NOT_CONTACT, OUTSIDE_CALLING_WINDOW, FREQUENCY_CAP, INVALID_NUMBER, POWERED_OFF)
LINE_CHANNELS = frozenset({"call", "sms"})  # an empty number takes no SMS either

# Channels the gate judges. Inbound chat (the customer wrote first) is never refused.
GATED_CHANNELS = frozenset({"call", "sms", "wecom"})


def zone(name: str, setting: str = "HUASHU_TIMEZONE") -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise StoreError(f"{setting}={name!r} is not an IANA timezone (e.g. Asia/Shanghai)") from None


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local wall-clock window [start, end). `21:00-09:00` wraps midnight; `24:00` is end of day."""

    start: time
    end: time | None  # None: 24:00

    @classmethod
    def parse(cls, text: str) -> CallingWindow:
        try:
            a, b = text.split("-")
            return cls(_hhmm(a), None if b.strip() == "24:00" else _hhmm(b))
        except ValueError:
            raise StoreError(f"HUASHU_CALLING_WINDOW must look like 09:00-21:00, got {text!r}") from None

    def allows(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.end is None:
            return t >= self.start
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def __str__(self) -> str:
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


def _hhmm(text: str) -> time:
    hh, mm = text.strip().split(":")
    return time(int(hh), int(mm))


@dataclass(frozen=True, slots=True)
class Caps:
    """At most `per_day` contacts in any 24 h and `per_week` in any 7 days, per channel."""

    per_day: int
    per_week: int

    def windows(self, at: datetime) -> tuple[datetime, datetime]:
        return at - timedelta(hours=24), at - timedelta(days=7)

    def exceeded(self, last_24h: int, last_7d: int) -> bool:
        return last_24h >= self.per_day or last_7d >= self.per_week


def line_reason(channel: str, at_local: datetime, invalid_since: datetime | None,
                powered_off_at: datetime | None, tz: tzinfo) -> str | None:
    """invalid_number when the number was found empty (calls and SMS, forever); powered_off when
    a call found the phone off earlier the same local day (calls only)."""
    if channel not in LINE_CHANNELS:
        return None
    if invalid_since is not None:
        return INVALID_NUMBER
    if channel == "call" and powered_off_at is not None and powered_off_at.astimezone(tz).date() == at_local.date():
        return POWERED_OFF
    return None
