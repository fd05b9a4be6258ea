"""The CLI's one reading of a time option (`--at`, `--now`, `--start`): ISO 8601, a naive time
is in HUASHU_TIMEZONE, no value is now; a bad value exits 2 naming the option."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer

from huashu.cli._lazy import console

if TYPE_CHECKING:
    from core.settings import Settings

_err = console(stderr=True)


def instant(settings: Settings, value: str | None, option: str = "--at") -> datetime:
    """The option's time, timezone-aware."""
    tz = ZoneInfo(settings.timezone)
    if not value:
        return datetime.now(tz)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _err.print(f"{option} must be ISO 8601 (e.g. 2026-11-11T10:00:00+08:00), got {value!r}",
                   style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
