"""Turn clip ids and templates into the words the bot says (the same words on every channel)."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from dialogue.schema import Persona

_FORMATTER = string.Formatter()
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PERIODS = ((0, 5, "凌晨"), (5, 9, "早上"), (9, 12, "上午"), (12, 13, "中午"), (13, 18, "下午"), (18, 24, "晚上"))


_RELATIVE_DAYS = {0: "今天", 1: "明天", 2: "后天"}


def speak_date(value: date) -> str:
    """How a date is said: 11月10日 (the year is never read out)."""
    return f"{value.month}月{value.day}日"


def speak_datetime(value: datetime, now: datetime | None = None) -> str:
    """How a person says a time on the phone, relative to the call when `now` is given:
    今天下午3点 / 明天上午10点半 / 后天晚上8点, else 11月24日下午3点半."""
    period = next(name for lo, hi, name in _PERIODS if lo <= value.hour < hi)
    hour = value.hour % 12 or 12
    minute = "" if value.minute == 0 else ("半" if value.minute == 30 else f"{value.minute}分")
    day = speak_date(value)
    if now is not None:
        # A naive value is a wall-clock time in the call's own zone (as slots store it).
        local_now = now.astimezone(value.tzinfo) if value.tzinfo and now.tzinfo else now
        day = _RELATIVE_DAYS.get((value.date() - local_now.date()).days, day)
    return f"{day}{period}{hour}点{minute}"


def speak_value(value: Any, now: datetime | None = None) -> str:
    """A slot or variable value as spoken text: ISO datetimes become spoken times (relative to
    `now` when given), ISO dates (YYYY-MM-DD) become 11月10日."""
    if isinstance(value, datetime):
        return speak_datetime(value, now)
    if isinstance(value, date):
        return speak_date(value)
    if isinstance(value, str) and len(value) >= 16 and value[4] == "-" and "T" in value:
        try:
            return speak_datetime(datetime.fromisoformat(value), now)
        except ValueError:
            return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return speak_date(date.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_text(template: str, variables: Mapping[str, Any], now: datetime | None = None) -> str:
    """Fill `{name}` placeholders; an unknown name is left visible rather than crashing a call.
    `now`: the call's time, so times are said as 今天/明天/后天."""
    out = []
    for literal, name, _spec, _conv in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(speak_value(variables[name], now) if name in variables else "{" + name + "}")
    return "".join(out)


def clip_variables(persona: Persona, clip: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(persona.clips[clip].text) if name]


def clip_url(base: str, persona: Persona, clip: str, variables: Mapping[str, Any],
             now: datetime | None = None) -> str:
    """URL of the clip's audio; clips with variables carry them so the server can splice them."""
    url = f"{base.rstrip('/')}/{quote(persona.id)}/{quote(clip)}.wav"
    names = clip_variables(persona, clip)
    if names:
        url += "?" + urlencode({n: speak_value(variables.get(n, ""), now) for n in names})
    return url
