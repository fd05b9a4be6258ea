"""Turn clip ids and templates into the words the bot says (the same words on every channel)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from dialogue.schema import Persona

_FORMATTER = string.Formatter()
_PERIODS = ((0, 5, "凌晨"), (5, 9, "早上"), (9, 12, "上午"), (12, 13, "中午"), (13, 18, "下午"), (18, 24, "晚上"))


def speak_datetime(value: datetime) -> str:
    """How a person says a time on the phone: 11月24日下午3点半."""
    period = next(name for lo, hi, name in _PERIODS if lo <= value.hour < hi)
    hour = value.hour % 12 or 12
    minute = "" if value.minute == 0 else ("半" if value.minute == 30 else f"{value.minute}分")
    return f"{value.month}月{value.day}日{period}{hour}点{minute}"


def speak_value(value: Any) -> str:
    """A slot or variable value as spoken text (ISO datetimes become spoken times)."""
    if isinstance(value, datetime):
        return speak_datetime(value)
    if isinstance(value, str) and len(value) >= 16 and value[4] == "-" and "T" in value:
        try:
            return speak_datetime(datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_text(template: str, variables: Mapping[str, Any]) -> str:
    """Fill `{name}` placeholders; an unknown name is left visible rather than crashing a call."""
    out = []
    for literal, name, _spec, _conv in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(speak_value(variables[name]) if name in variables else "{" + name + "}")
    return "".join(out)


def clip_variables(persona: Persona, clip: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(persona.clips[clip].text) if name]


def clip_url(base: str, persona: Persona, clip: str, variables: Mapping[str, Any]) -> str:
    """URL of the clip's audio; clips with variables carry them so the server can splice them."""
    url = f"{base.rstrip('/')}/{quote(persona.id)}/{quote(clip)}.wav"
    names = clip_variables(persona, clip)
    if names:
        url += "?" + urlencode({n: speak_value(variables.get(n, "")) for n in names})
    return url
