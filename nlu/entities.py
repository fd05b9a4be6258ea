"""Entities with values normalised for the engine.

- `time`: ISO-8601 datetime (Asia/Shanghai) relative to the call's clock: 明天下午三点, 周六上午,
  下周, 晚点, 半小时后, 十号, 月底… Date-only expressions resolve to 10:00 (a callable hour).
- `amount`: int yuan (float when there are jiao: 九块九 → 9.9): 两百九十九 → 299, 299元.
- `digits`: digit strings read one by one: 幺三五七 → "1357", order numbers, phone tails.
- `product`: canonical product name from the lookup table (scripts_zh/nlu/lookups.yml).
- `goal`: what the customer says they will do now: `add_wecom` (我加一下企业微信, 我现在就加)
  or `pay` (我这就去付, 把尾款交了); never for what is already done (加过了, 付了定金).
Numerals go through cn2an; digit strings are mapped per character so leading zeros survive.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import cn2an

from core.parse import Entity

EXTRACTOR = "huashu.entities"
DEFAULT_TZ = "Asia/Shanghai"
DATE_ONLY_HOUR = 10

_N = r"[0-9零〇一二两三四五六七八九十百]+"
_DIGIT_CHARS = "0123456789零〇一二三四五六七八九幺"
_DIGIT_MAP = {**{str(i): str(i) for i in range(10)}, "零": "0", "〇": "0", "幺": "1", "一": "1",
              "二": "2", "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
            "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_PERIOD_HOUR = {"凌晨": 5, "早上": 8, "早晨": 8, "一早": 8, "明早": 8, "上午": 10, "中午": 12,
                "午休": 12, "下午": 15, "傍晚": 18, "晚上": 20, "今晚": 20, "明晚": 20, "晚": 20,
                "夜里": 22, "半夜": 23}
_PM_PERIODS = {"下午", "傍晚", "晚上", "今晚", "明晚", "晚", "夜里", "半夜"}
_DAY_OFFSET = {"今天": 0, "今儿": 0, "今日": 0, "明天": 1, "明儿": 1, "明日": 1, "后天": 2,
               "大后天": 3, "昨天": -1, "昨儿": -1, "前天": -2, "大前天": -3, "今晚": 0,
               "明早": 1, "明晚": 1}
_FUZZY_MINUTES = {"晚点": 120, "晚一点": 120, "晚些": 120, "晚点儿": 120, "等会": 30, "等会儿": 30,
                  "等一会": 30, "等一会儿": 30, "一会": 30, "一会儿": 30, "待会": 30, "待会儿": 30,
                  "过会": 30, "过会儿": 30, "过一会": 30, "过一会儿": 30, "等下": 30, "稍后": 30}

# One time expression: optional parts in the order people say them. Each group is optional, but
# the match must contain at least one part (checked in code).
_TIME_RE = re.compile(
    r"(?P<day>大后天|后天|明天|明儿|明日|今天|今儿|今日|大前天|前天|昨天|昨儿)?"
    r"(?P<week>(?P<wprefix>这|本|下下|下|上)?个?(?:周|星期|礼拜)(?P<wday>[一二三四五六日天1-7]|末))?"
    r"(?P<nextweek>下个?(?:周|星期|礼拜)(?![一二三四五六日天1-7末]))?"
    r"(?P<monthday>(?P<month>" + _N + r")月(?P<mday>" + _N + r")[号日]?)?"
    r"(?P<dom>(?<![月年])(?P<domn>" + _N + r")[号日](?!子))?"
    r"(?P<mpart>下个?月[初底中]?|月底|月初|月中)?"
    r"(?P<period>凌晨|早上|早晨|一早|明早|上午|中午|午休|下午|傍晚|晚上|今晚|明晚|夜里|半夜)?"
    r"(?P<clock>(?P<hour>" + _N + r")(?:点|:|：)(?P<minute>半|一刻|三刻|[0-9]{2}|" + _N + r"分?)?(?:钟)?)?"
    r"(?P<rel>(?:过)?(?P<reln>" + _N + r"|半|一个半)个?(?P<relu>小时|钟头|分钟)(?:后|以后|之后)?)?"
    r"(?P<fuzzy>晚一点|晚点儿?|晚些|等一会儿?|等会儿?|过一会儿?|过会儿?|待会儿?|一会儿?|等下|稍后)?"
    r"(?P<multiday>过(?P<mdn>两|几|" + _N + r")天)?"
)
_CLOCK_SUFFIX_OK = re.compile(r"^(钟|半|[0-9]|[一二三四五六七八九十]+分|以后|之后|以前|之前|前|后|左右|再|付|打|过|到)")
_MONEY_RE = re.compile(
    r"(?P<num>[0-9]+(?:\.[0-9]+)?万?|[零〇一二两三四五六七八九十百千万]+)"
    r"(?P<unit>块钱|块|元|圆|米)?(?P<jiao>[一二三四五六七八九]|[1-9])?(?P<jiaou>毛|角)?"
)
_NON_MONEY_AFTER = re.compile(r"^(点|分|号|日|月|年|天|个|小时|钟头|周|星期|瓶|盒|粒|片|袋|岁|斤|次|件|段|套|位|楼|层|倍|折)")
_MONEY_CONTEXT = re.compile(r"(定金|尾款|付了|付|抵|减|满|花了|价|优惠|便宜|贵|交了|补)$")
_DIGITS_RE = re.compile(r"[" + _DIGIT_CHARS + r"]{3,}")


def _zone(now: datetime | None) -> tuple[datetime, ZoneInfo]:
    tz = ZoneInfo(DEFAULT_TZ)
    if now is None:
        return datetime.now(tz), tz
    if now.tzinfo is None:
        return now.replace(tzinfo=tz), tz
    return now.astimezone(tz), tz


def _num(s: str) -> int | None:
    try:
        v = cn2an.cn2an(s, "smart")
    except (ValueError, KeyError, IndexError):
        return None
    return int(v) if float(v).is_integer() else None


def _next_month(d: date, day: int = 1) -> date:
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return date(y, m, min(day, calendar.monthrange(y, m)[1]))


class _NoTime(Exception):
    """The expression names no valid time (13月, 25点, 32号…): no entity."""


def _resolve_time(m: re.Match[str], now: datetime, following: str) -> datetime | None:
    g = m.groupdict()
    try:
        relative = _relative_time(g, now)
        if relative is not None:
            return relative
        day = _day(g, now.date())
        hour, minute, midnight = _clock(g)
    except _NoTime:
        return None
    return _combine(g, now, day, hour, minute, midnight)


def _relative_time(g: dict[str, str | None], now: datetime) -> datetime | None:
    """两个小时后, 半小时, 等会儿: counted from now (None: not a relative expression)."""
    if g["rel"]:
        n = g["reln"] or ""
        qty = 0.5 if n == "半" else 1.5 if n == "一个半" else _num(n)
        if qty is None:
            raise _NoTime
        minutes = qty * (60 if g["relu"] in ("小时", "钟头") else 1)
        return now + timedelta(minutes=minutes)
    if g["fuzzy"] and not any(g[k] for k in ("day", "week", "clock", "period")):
        return now + timedelta(minutes=_FUZZY_MINUTES.get(g["fuzzy"], 30))
    return None


def _day(g: dict[str, str | None], today: date) -> date | None:
    """The day named, each later part refining the earlier (明天, 周六, 5月3号, 月底, 过两天)."""
    day: date | None = None
    if g["day"]:
        day = today + timedelta(days=_DAY_OFFSET[g["day"]])
    elif g["period"] in ("今晚", "明早", "明晚"):
        day = today + timedelta(days=_DAY_OFFSET[g["period"]])
    if g["week"]:
        day = _week_day(g, today)
    elif g["nextweek"]:
        day = today - timedelta(days=today.weekday()) + timedelta(weeks=1)
    if g["monthday"] or g["dom"]:
        day = _month_day(g, today)
    if g["mpart"]:
        day = _month_part(g["mpart"], today)
    if g["multiday"]:
        n = g["mdn"] or ""
        day = today + timedelta(days=3 if n == "几" else _num(n) or 2)
    return day


def _week_day(g: dict[str, str | None], today: date) -> date:
    monday = today - timedelta(days=today.weekday())
    wd = 5 if g["wday"] == "末" else _WEEKDAY[g["wday"] or ""]
    prefix = g["wprefix"] or ""
    weeks = {"下": 1, "下下": 2, "上": -1}.get(prefix, 0)
    day = monday + timedelta(weeks=weeks, days=wd)
    if not prefix and day < today:  # a bare 周六 means the coming one
        day += timedelta(weeks=1)
    return day


def _month_day(g: dict[str, str | None], today: date) -> date:
    """5月3号 (this year, else next) or 3号 (this month, else next)."""
    if g["monthday"]:
        mo, md = _num(g["month"] or ""), _num(g["mday"] or "")
        if not mo or not md or not 1 <= mo <= 12 or not 1 <= md <= calendar.monthrange(today.year, mo)[1]:
            raise _NoTime
        day = date(today.year, mo, md)
        if day < today:
            day = date(today.year + 1, mo, min(md, calendar.monthrange(today.year + 1, mo)[1]))
        return day
    md = _num(g["domn"] or "")
    if not md or not 1 <= md <= 31:
        raise _NoTime
    if md >= today.day:
        return date(today.year, today.month, min(md, calendar.monthrange(today.year, today.month)[1]))
    return _next_month(today, md)


def _month_part(part: str, today: date) -> date:
    """月底, 月中, 月初, 下个月初/中/底."""
    if part.startswith("下"):
        base = _next_month(today)
        if part.endswith("底"):
            return base.replace(day=calendar.monthrange(base.year, base.month)[1])
        if part.endswith("中"):
            return base.replace(day=15)
        return base
    if part == "月底":
        return today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if part == "月中":
        return today.replace(day=15) if today.day <= 15 else _next_month(today, 15)
    return _next_month(today)


def _clock(g: dict[str, str | None]) -> tuple[int | None, int, bool]:
    """(hour 0-23, minute, midnight) from 三点半 / 晚上八点 / 下午; hour None: no time of day."""
    period = g["period"]
    if not g["clock"]:
        return (_PERIOD_HOUR[period] if period else None), 0, False
    h = _num(g["hour"] or "")
    if h is None or h > 24:
        raise _NoTime
    mm = g["minute"] or ""
    minute = {"半": 30, "一刻": 15, "三刻": 45}.get(mm, 0)
    if mm and minute == 0:
        parsed = _num(mm.rstrip("分"))
        if parsed is None or parsed >= 60:
            raise _NoTime
        minute = parsed
    midnight = False
    if period in _PM_PERIODS and h == 12:
        h, midnight = 0, True  # 今晚十二点 is the coming midnight
    elif (period in _PM_PERIODS and h < 12) or (period == "中午" and h <= 2):
        h += 12
    elif period is None and 1 <= h <= 6:
        h += 12  # 三点 in a call about paying means 15:00
    return h % 24, minute, midnight


def _combine(g: dict[str, str | None], now: datetime, day: date | None, hour: int | None, minute: int,
             midnight: bool) -> datetime | None:
    """Day and time of day as one instant; a bare time of day is the next one to come."""
    today = now.date()
    if day is None and hour is None:
        return None
    if day is None and midnight:
        day = today
    elif day is None:
        assert hour is not None
        day = today

        def at(h: int) -> datetime:
            return datetime(today.year, today.month, today.day, h, minute, tzinfo=now.tzinfo)

        if at(hour) <= now:
            if g["clock"] and g["period"] is None and hour < 12 and at(hour + 12) > now:
                hour += 12  # 八点半 said at 10:00 means this evening
            else:
                day = today + timedelta(days=1)
    if hour is None:
        hour = DATE_ONLY_HOUR
    if midnight and day is not None:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=now.tzinfo)


def _times(text: str, now: datetime) -> list[Entity]:
    out: list[Entity] = []
    pos = 0
    while pos < len(text):
        m = _TIME_RE.match(text, pos)
        if not m or m.end() == pos:
            pos += 1
            continue
        g = m.groupdict()
        following = text[m.end():]
        only_clock = g["clock"] and not any(g[k] for k in ("day", "week", "period", "monthday", "dom"))
        # 一点 alone is usually "a little" (便宜一点): need a clock-like neighbour.
        if only_clock and _num(g["hour"]) == 1 and not g["minute"] and not _CLOCK_SUFFIX_OK.match(following):
            pos = m.end()
            continue
        value = _resolve_time(m, now, following)
        if value is not None:
            out.append(Entity("time", value.isoformat(), m.start(), m.end(), EXTRACTOR, m.group()))
        pos = m.end()
    return out


def _amount_value(m: re.Match[str]) -> int | float | None:
    num = m.group("num")
    if num[0].isdigit():
        v = float(num.rstrip("万")) * (10000 if num.endswith("万") else 1)
    else:
        parsed = _num(num)
        if parsed is None:
            return None
        v = float(parsed)
    if m.group("jiao"):
        j = m.group("jiao")
        v += (int(j) if j.isdigit() else int(_DIGIT_MAP[j])) / 10
    return int(v) if v.is_integer() else round(v, 2)


def _amounts(text: str, taken: list[tuple[int, int]]) -> list[Entity]:
    out = []
    for m in _MONEY_RE.finditer(text):
        num = m.group("num")
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        unit = m.group("unit")
        after = text[m.end("num"):] if not unit else ""
        has_big = any(c in num for c in "百千万")
        context = _MONEY_CONTEXT.search(text[:m.start()])
        if unit == "米" and not has_big:
            continue
        if not unit and (_NON_MONEY_AFTER.match(after) or not (has_big or context)):
            continue
        if not unit and num.isdigit() and len(num) >= 3 and not context:
            continue  # a bare long digit run is an order/phone number
        value = _amount_value(m)
        if value is None or value == 0:
            continue
        end = m.end() if unit else m.end("num")
        out.append(Entity("amount", value, m.start(), end, EXTRACTOR, text[m.start():end]))
    return out


def _digits(text: str, taken: list[tuple[int, int]]) -> list[Entity]:
    out = []
    for m in _DIGITS_RE.finditer(text):
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        out.append(Entity("digits", "".join(_DIGIT_MAP[c] for c in m.group()), m.start(), m.end(),
                          EXTRACTOR, m.group()))
    return out


class ProductTable:
    """Spoken name → canonical product name, matched longest first."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = dict(names)
        keys = sorted(self.names, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, keys)), re.IGNORECASE) if keys else None
        self._lower = {k.lower(): v for k, v in self.names.items()}

    def find(self, text: str, taken: list[tuple[int, int]]) -> list[Entity]:
        if self._pattern is None:
            return []
        out = []
        for m in self._pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            canon = self.names.get(m.group()) or self._lower.get(m.group().lower(), m.group())
            out.append(Entity("product", canon, m.start(), m.end(), EXTRACTOR, m.group()))
        return out


def product_table(nlu_dir: str | Path) -> ProductTable:
    """The `product` lookup and its synonyms from an NLU data directory (lookups*.yml)."""
    from nlu.data import load_file

    names: dict[str, str] = {}
    for path in sorted(Path(nlu_dir).glob("lookups*.yml")):
        data = load_file(path)
        for item in data.lookup("product"):
            names[item] = item
        for syn in data.synonyms:
            if syn.name in names:
                for variant in syn.items:
                    names[variant] = syn.name
    return ProductTable(names)


@lru_cache(maxsize=1)
def _default_products() -> ProductTable:
    import scripts_zh

    return product_table(Path(scripts_zh.__file__).parent / "nlu")


_GOALS = (
    ("add_wecom", re.compile(r"(?<!已经)(?<!没)(?:加|添加|扫)(?:一下|下|个)?(?:你们?的?)?"
                             r"(?:企业微信|企微|微信|威信|好友|客服)"
                             r"|(?:现在|马上|这就|立刻|等下|待会儿?|一会儿?|回头|晚点)就?去?(?:加|添加|扫)(?![过了])")),
    ("pay", re.compile(r"(?<!已经)(?:付|交|支付|补)(?:一下|下|上)?(?:定金|尾款|钱|款)"
                       r"|(?:现在|马上|这就|立刻|今天|今晚|明天|一会儿?|待会儿?)就?去?(?:付|交|支付|下单)(?![过了])")),
)


def _goals(text: str) -> list[Entity]:
    norm = text.replace(" ", "")
    out = []
    for value, pattern in _GOALS:
        m = pattern.search(norm)
        if m and norm == text:  # spans only when they point into the original text
            out.append(Entity("goal", value, m.start(), m.end(), EXTRACTOR, m.group()))
        elif m:
            out.append(Entity("goal", value, 0, len(text), EXTRACTOR, text))
    return out


def extract(text: str, now: datetime | None = None, *, products: ProductTable | None = None
            ) -> tuple[Entity, ...]:
    """All entities in `text`, spans on the original text, values normalised (see module doc)."""
    now, _ = _zone(now)
    found: list[Entity] = _times(text, now)
    taken = [(e.start, e.end) for e in found]
    for finder in (_amounts, _digits):
        new = finder(text, taken)
        found += new
        taken += [(e.start, e.end) for e in new]
    table = products if products is not None else _default_products()
    found += table.find(text, taken)
    found += _goals(text)
    return tuple(sorted(found, key=lambda e: e.start))


def entity_values(entities: Sequence[Entity], name: str) -> list[str | int | float]:
    return [e.value for e in entities if e.entity == name]
