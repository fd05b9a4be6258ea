"""`huashu customers import FILE.csv`: validate every row first, then import all rows or none."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
import typing
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, field_validator

from core.customers import CustomerRecord
from core.vocab import PRICE_TIERS
from store.codec import as_aware
from store.errors import ImportValidationError, StoreError
from store.gate import zone
from store.phones import PhoneError, mask_phone, normalize_phone

log = logging.getLogger(__name__)

REQUIRED = ("customer_id", "phone")
# Every field of core.customers.CustomerRecord is a column: the contract's, then our additions
# (membership, cart/interest, activity, the customer's own timezone, import tags, WeCom id, gender,
# the last product and the presale balance).
COLUMNS = tuple(f.name for f in dataclasses.fields(CustomerRecord))

_TRUE = {"1", "true", "yes", "y", "t", "是", "已付", "已支付"}
_FALSE = {"", "0", "false", "no", "n", "f", "否", "未付", "未支付"}
_GENDER = {"": "", "女": "F", "f": "F", "female": "F", "男": "M", "m": "M", "male": "M"}
_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,64}$")
_TAG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class _CsvRules(BaseModel):
    """How a CSV cell becomes a CustomerRecord field; empty cells are defaults. Errors name the
    column. The fields themselves are CustomerRecord's (CsvRow below)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("customer_id", check_fields=False)
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be 1-64 letters, digits or _.:@-")
        return v

    @field_validator("external_userid", check_fields=False)
    @classmethod
    def _external(cls, v: str | None) -> str | None:
        if v is not None and not _ID.match(v):
            raise ValueError("must be 1-64 letters, digits or _.:@- (WeCom's external_userid)")
        return v

    @field_validator("gender", check_fields=False)
    @classmethod
    def _gender(cls, v: str) -> str:
        key = v.strip().lower()
        if key in _GENDER:
            return _GENDER[key]
        raise ValueError("must be 女/男 (or F/M, female/male)")

    @field_validator("phone", check_fields=False)
    @classmethod
    def _phone(cls, v: str) -> str:
        try:
            return normalize_phone(v)
        except PhoneError as err:
            raise ValueError(str(err)) from None

    @field_validator("price_sensitivity", check_fields=False)
    @classmethod
    def _tier(cls, v: str) -> str:
        if v not in PRICE_TIERS:
            raise ValueError("must be low, medium or high")
        return v

    @field_validator("deposit_paid", "balance_paid", "is_member", mode="before", check_fields=False)
    @classmethod
    def _bool(cls, v: Any) -> bool:
        text = "" if v is None else str(v).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true/false (or 1/0, yes/no, 是/否)")

    @field_validator("deposit_amount", "total_spent", "purchase_count", "balance_amount", check_fields=False)
    @classmethod
    def _non_negative(cls, v: float | int | None) -> float | int | None:
        if v is not None and v < 0:
            raise ValueError("must not be negative")
        return v

    @field_validator("cycle_days", check_fields=False)
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("must be a positive number of days")
        return v

    @field_validator("last_purchase_at", "birthday", "member_since", "joined_at", mode="before", check_fields=False)
    @classmethod
    def _date(cls, v: Any) -> Any:
        return v.replace("/", "-") if isinstance(v, str) else v

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            zone(v, "timezone")
        return v

    @field_validator("tags", mode="before", check_fields=False)
    @classmethod
    def _tags(cls, v: Any) -> Any:
        if isinstance(v, str):
            items = tuple(x.strip() for x in re.split(r"[|,;]", v) if x.strip())
            bad = [x for x in items if not _TAG.match(x)]
            if bad:
                raise ValueError(f"tags must be lower_snake_case ids, got {bad[0]!r}")
            return items
        return v


def _record_fields() -> dict[str, Any]:
    hints = typing.get_type_hints(CustomerRecord)
    return {f.name: (hints[f.name], ... if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(CustomerRecord)}


CsvRow = create_model("CsvRow", __base__=_CsvRules, **_record_fields())


def _fields(row: BaseModel, tz: tzinfo) -> CustomerRecord:
    data = row.model_dump()
    for key in ("cart_at", "last_active_at"):
        if data[key] is not None:
            data[key] = as_aware(data[key], tz)
    return CustomerRecord(**data)


def read_text(path: Path) -> str:
    """UTF-8 (with or without BOM), else GB18030 as Excel in China writes it."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise StoreError(f"{path}: cannot read: {err.strerror}") from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise StoreError(f"{path}: not UTF-8 or GB18030 text")


def parse_csv(path: Path, tz: tzinfo, warn: Callable[[str], None] | None = None,
              lines: dict[str, int] | None = None) -> list[CustomerRecord]:
    """Every row validated; raises ImportValidationError listing all bad rows by line number.
    Columns we do not know (SCRM exports carry many, e.g. vip_level) are ignored with one
    warning naming them, passed to `warn` (default: the log). `lines`, when given, is filled
    with each customer id's line number (for errors the store finds later)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportValidationError(str(path), [(1, f"missing required column(s): {', '.join(missing)}")])
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        (warn or log.warning)(f"{path}:1: ignored unknown column(s): {', '.join(unknown)}")
    problems: list[tuple[int, str]] = []
    reader.fieldnames = header
    records: list[CustomerRecord] = []
    first_line: dict[str, int] = {}
    first_external: dict[str, tuple[int, str]] = {}
    for raw in reader:
        line_start = reader.line_num  # the record's last physical line (its only one, usually)
        if None in raw:
            problems.append((line_start, "more cells than header columns"))
            continue
        try:
            row = CsvRow.model_validate({k: v for k, v in raw.items() if k in COLUMNS and v and v.strip()})
        except ValidationError as err:
            problems.append((line_start, "; ".join(_problem(e) for e in err.errors())))
            continue
        record = _fields(row, tz)
        if record.customer_id in first_line:
            problems.append((line_start, f"customer_id {record.customer_id!r} repeats line "
                                         f"{first_line[record.customer_id]}"))
            continue
        first_line[record.customer_id] = line_start
        if record.external_userid:
            if record.external_userid in first_external:
                first, other = first_external[record.external_userid]
                problems.append((line_start, f"external_userid {record.external_userid!r} of customer "
                                             f"{record.customer_id!r} repeats line {first} (customer {other!r}); "
                                             "a WeCom contact belongs to one customer"))
                continue
            first_external[record.external_userid] = (line_start, record.customer_id)
        records.append(record)
    if problems:
        raise ImportValidationError(str(path), problems)
    if lines is not None:
        lines.update(first_line)
    if not records:
        raise ImportValidationError(str(path), [(1, "no data rows")])
    return records


def _problem(error: Any) -> str:
    """`column: problem (value)`, the value masked where it is a phone number."""
    column = ".".join(str(p) for p in error["loc"]) or "row"
    message = _clean(error["msg"])
    value = error.get("input")
    if not isinstance(value, str) or error["type"] == "missing":
        return f"{column}: {message}"
    return f"{column}: {message} ({shown_value(column, value)!r})"


def shown_value(column: str, value: str) -> str:
    """A cell as an error message may show it: phones masked (139****0001), long text cut."""
    if column == "phone":
        digits = re.sub(r"\D", "", value)
        return mask_phone(digits) if len(digits) >= 8 else digits[:3] + "*" * max(0, len(digits) - 3)
    return value if len(value) <= 40 else value[:39] + "…"


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def external_conflict_problems(conflicts: list[tuple[str, str, str]],
                               lines: dict[str, int]) -> list[tuple[int, str]]:
    """The store's external_userid conflicts as (line, message) pairs of the import file."""
    return sorted((lines.get(cid, 1), f"external_userid {ext!r} of customer {cid!r} already belongs to customer "
                                      f"{holder!r} in the store (clear it there first, or import both customers "
                                      "in one file)")
                  for ext, cid, holder in conflicts)
