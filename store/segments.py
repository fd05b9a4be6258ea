"""Crowd packages (人群包): named, declarative segment definitions in scripts_zh/segments/*.yml.

A segment is a `where` mapping of predicates, all of which must hold (`any_of` / `not` combine
them). Evaluation (store.segment_sql) compiles it to one SQL query, excludes do-not-contact
customers (by id and by phone) and test customers, and keeps one target per phone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.yamlio import load_yaml_text
from store.errors import StoreError

REPURCHASE = ("repeat", "once", "never")
QUADRANTS = ("new", "unpurchased_nonmember", "unpurchased_member", "purchased_nonmember", "purchased_member")
RFM_CLASSES = {  # id: (R high, F high, M high), the classic eight classes
    "important_value": (True, True, True), "important_develop": (True, False, True),
    "important_keep": (False, True, True), "important_retain": (False, False, True),
    "general_value": (True, True, False), "general_develop": (True, False, False),
    "general_keep": (False, True, False), "general_retain": (False, False, False),
}


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None


class RfmMin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=0, ge=0, le=5)
    f: int = Field(default=0, ge=0, le=5)
    m: int = Field(default=0, ge=0, le=5)


class Rfm(BaseModel):
    """Score thresholds: a customer scores 5 when within the first bound, 4 within the second, …
    1 beyond the last; never purchased scores 0. `high_from` splits high from low for classes."""

    model_config = ConfigDict(extra="forbid")
    recency_days: tuple[int, int, int, int] = (30, 60, 90, 180)  # ≤ these days since last purchase
    frequency: tuple[int, int, int, int] = (6, 4, 3, 2)  # ≥ these purchases
    monetary: tuple[float, float, float, float] = (2000, 1000, 500, 200)  # ≥ this total spent (yuan)
    high_from: int = Field(default=3, ge=1, le=5)


class CallBackDue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after_hours: float = 2.0


class Where(BaseModel):
    """All predicates that are set must hold. Ids and units are documented in docs/store.md."""

    model_config = ConfigDict(extra="forbid")

    persona_group: list[str] | None = None
    price_sensitivity: list[str] | None = None
    channel: list[str] | None = None
    member: bool | None = None
    deposit_paid: bool | None = None
    balance_paid: bool | None = None
    repurchase: list[str] | None = None
    purchase_count: Range | None = None
    total_spent: Range | None = None
    cart_without_purchase: bool | None = None
    active_within_days: int | None = Field(default=None, gt=0)
    inactive_for_days: int | None = Field(default=None, gt=0)
    joined_within_days: int | None = Field(default=None, gt=0)
    cycle_due: float | None = Field(default=None, gt=0)  # fraction of the consumption cycle elapsed
    rfm_class: list[str] | None = None
    rfm_min: RfmMin | None = None
    quadrant: list[str] | None = None
    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    tags_none: list[str] | None = None
    tag_within_days: int | None = Field(default=None, gt=0)  # applies to tags_any / tags_all
    last_outcome: list[str] | None = None
    call_back_due: CallBackDue | None = None
    birthday_within_days: int | None = Field(default=None, ge=0, le=366)
    any_of: list[Where] | None = None
    not_: Where | None = Field(default=None, alias="not")

    def model_post_init(self, _ctx: Any) -> None:
        for key, allowed in (("repurchase", REPURCHASE), ("quadrant", QUADRANTS),
                             ("rfm_class", tuple(RFM_CLASSES))):
            for value in getattr(self, key) or ():
                if value not in allowed:
                    raise ValueError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


Where.model_rebuild()


class SegmentFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    description: str = ""
    where: Where = Field(default_factory=lambda: Where())
    include_test: bool = False
    rfm: Rfm = Field(default_factory=lambda: Rfm())


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    title: str
    description: str
    where: Where
    include_test: bool
    rfm: Rfm
    path: Path


def _listify(data: Any) -> Any:
    """Single values for list predicates are allowed in YAML (`persona_group: 孕妇`)."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            field = Where.model_fields.get(k)
            is_list = field is not None and "list[str]" in str(field.annotation)
            out[k] = [v] if is_list and isinstance(v, str) else _listify(v)
        cb = out.get("call_back_due")
        if cb is True:
            out["call_back_due"] = {}
        elif cb is False:
            out.pop("call_back_due")
        elif isinstance(cb, int | float):
            out["call_back_due"] = {"after_hours": cb}
        return out
    if isinstance(data, list):
        return [_listify(v) for v in data]
    return data


def parse_where(data: Any, origin: str) -> Where:
    """A `where` mapping (also used by campaign steps); errors name `origin`."""
    try:
        return Where.model_validate(_listify(data or {}))
    except ValidationError as err:
        raise StoreError(f"{origin}: {_errors(err)}") from None


def load_segment(path: Path) -> Segment:
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise StoreError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: a segment file is a mapping with name, title, where")
    if isinstance(data.get("where"), dict):
        data["where"] = _listify(data["where"])
    try:
        seg = SegmentFile.model_validate(data)
    except ValidationError as err:
        raise StoreError(f"{path}: {_errors(err)}") from None
    if seg.name != path.stem:
        raise StoreError(f"{path}: name {seg.name!r} must match the file name {path.stem!r}")
    return Segment(seg.name, seg.title, seg.description, seg.where, seg.include_test, seg.rfm, path)


def _errors(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in err.errors())


def segments_dir(scripts_dir: Path) -> Path:
    return scripts_dir / "segments"


def load_segments(scripts_dir: Path) -> dict[str, Segment]:
    """All segments under <scripts_dir>/segments, by name."""
    directory = segments_dir(scripts_dir)
    if not directory.is_dir():
        raise StoreError(f"no segments directory at {directory} (HUASHU_SCRIPTS_DIR)")
    out: dict[str, Segment] = {}
    for path in sorted(directory.glob("*.yml")):
        seg = load_segment(path)
        out[seg.name] = seg
    return out


def get_segment(scripts_dir: Path, name: str) -> Segment:
    segs = load_segments(scripts_dir)
    if name not in segs:
        raise StoreError(f"unknown segment {name!r}; known: {', '.join(segs) or 'none'} "
                         f"(in {segments_dir(scripts_dir)})")
    return segs[name]
