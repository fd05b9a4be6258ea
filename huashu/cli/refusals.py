"""What a refused call tells the person at the terminal: the reason and what changes it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings



def next_window_start(settings: Settings, at: datetime) -> datetime:
    """The next moment at or after `at` (in the default time zone) that the calling window allows."""
    from store.gate import CallingWindow, zone

    window = CallingWindow.parse(settings.calling_window)
    local = at.astimezone(zone(settings.timezone))
    start = local.replace(hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0)
    return start if start > local else start + timedelta(days=1)


def hint(reason: str, settings: Settings, customer_id: str, at: datetime) -> str:
    """One sentence naming the flag or setting that changes the outcome of `reason`."""
    if reason == "outside_calling_window":
        from store.gate import zone

        local = at.astimezone(zone(settings.timezone))
        later = next_window_start(settings, at).isoformat(timespec="minutes")
        return (f"{local:%H:%M} in {settings.timezone} is outside the calling window "
                f"{settings.calling_window} (HUASHU_CALLING_WINDOW). Simulate a time inside it with "
                f"--at {later}, or widen the window for a test: HUASHU_CALLING_WINDOW=00:00-24:00.")
    if reason == "do_not_contact":
        return (f"customer {customer_id} is on the do-not-contact list (an opt-out is forever). "
                "Leave out --customer-id to simulate with a fresh test customer.")
    if reason == "frequency_cap":
        return (f"customer {customer_id} already had the most calls allowed "
                f"({settings.max_calls_per_day} per 24 h, {settings.max_calls_per_week} per 7 days: "
                "HUASHU_MAX_CALLS_PER_DAY, HUASHU_MAX_CALLS_PER_WEEK). Leave out --customer-id for a "
                "fresh test customer, or --at a later time.")
    if reason == "carrier_limit":
        return (f"the carrier's rules for customer {customer_id}'s number forbid another call now; "
                "--at a later time.")
    kind, _, variable = reason.partition(":")
    if kind == "missing_fact":
        return (f"the call has no {variable}, which the track states: a customer fact missing from "
                f"customer {customer_id}'s record (import it: huashu customers import FILE.csv) or a campaign "
                f"value (pass --var {variable}=…); or leave out --customer-id for a test customer with the "
                "track's sample facts.")
    if kind == "expired":
        return (f"{variable} has passed at the call time; --at an earlier time, or give the campaign's "
                f"current date with --var {variable}=YYYY-MM-DD.")
    return "see docs/store.md (compliance gate)."
