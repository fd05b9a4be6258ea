"""Deterministic demo customers (`huashu customers demo`); their earlier calls: dialogue.history.

Realistic enough for segments, campaigns and reports: Chinese names, persona groups with their
products and consumption cycles, presale deposits, repurchase tiers, members, birthdays, a few
shared phone numbers (families) and earlier calls with outcomes, opt-outs and contact attempts.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from core.customers import CustomerRecord
from core.vocab import PERSONA_GROUPS
from store.importer import COLUMNS

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN_F = "秀芳丽敏静娟艳娜霞玲婷雪慧莉琳晶欣怡佳悦雯倩颖露瑶"
GIVEN_M = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊"
CHANNELS = ("tmall", "jd", "douyin", "miniapp", "store")


@dataclass(frozen=True, slots=True)
class Persona:
    group: str
    share: float
    female: float
    age: tuple[int, int]
    products: tuple[tuple[str, float, int], ...]  # name, unit price (yuan), consumption cycle days
    price_high: float  # share of price-sensitive customers


# One row per core.vocab.PERSONA_GROUPS entry, in its order: share, female, age, products, price_high.
PERSONAS = tuple(Persona(group, *row) for group, row in zip(PERSONA_GROUPS, (
    (0.15, 1.0, (24, 38), (("DHA藻油软胶囊", 268, 60), ("孕期叶酸片", 98, 30)), 0.3),
    (0.35, 1.0, (23, 40), (("胶原蛋白肽饮", 399, 30), ("维生素C泡腾片", 79, 45)), 0.25),
    (0.20, 0.5, (60, 82), (("钙维D软胶囊", 158, 60), ("深海鱼油", 218, 90)), 0.55),
    (0.30, 0.6, (30, 52), (("儿童复合维生素", 168, 60), ("益生菌冻干粉", 239, 30)), 0.4),
), strict=True))
MOBILE_PREFIXES = ("138", "139", "137", "136", "135", "150", "151", "158", "159", "186", "187", "188",
                   "130", "131", "132", "155", "156", "185", "133", "153", "180", "189", "199", "177")

def _pick_persona(rng: random.Random) -> Persona:
    return rng.choices(PERSONAS, weights=[p.share for p in PERSONAS])[0]


def generate_customers(n: int, seed: int, today: date) -> Iterator[CustomerRecord]:
    """`n` customers; the same (n, seed, today) always gives the same customers."""
    rng = random.Random(seed)
    phones: list[str] = []
    for i in range(n):
        persona = _pick_persona(rng)
        female = rng.random() < persona.female
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN_F if female else GIVEN_M)
                                              for _ in range(rng.choice((1, 2))))
        if phones and rng.random() < 0.015:  # a family sharing one number
            phone = rng.choice(phones)
        else:
            phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            phones.append(phone)
        product, price, cycle = rng.choice(persona.products)
        count = rng.choices((0, 1, 2, 3, 4, 6, 9), weights=(30, 30, 14, 10, 7, 6, 3))[0]
        last = today - timedelta(days=rng.randrange(1, 300)) if count else None
        spent = round(sum(price * rng.uniform(0.7, 1.1) for _ in range(count)), 2)
        deposit = rng.random() < 0.35
        age = rng.randint(*persona.age)
        birthday = date(today.year - age, rng.randint(1, 12), rng.randint(1, 28))
        joined = today - timedelta(days=rng.randrange(0, 30) if rng.random() < 0.1 else rng.randrange(30, 900))
        member = rng.random() < (0.55 if count else 0.2)
        cart = (datetime.combine(today - timedelta(days=rng.randrange(0, 30)), datetime.min.time(), UTC)
                + timedelta(hours=rng.randrange(24))) if not count and rng.random() < 0.3 else None
        active = datetime.combine(today - timedelta(days=rng.choice((rng.randrange(0, 15),
                                                                      rng.randrange(15, 120)))),
                                  datetime.min.time(), UTC) + timedelta(hours=rng.randrange(8, 23))
        yield CustomerRecord(
            customer_id=f"demo{i:06d}", phone=phone, name=name, persona_group=persona.group,
            price_sensitivity="high" if rng.random() < persona.price_high
            else rng.choice(("low", "medium", "medium")),
            channel=rng.choice(CHANNELS), deposit_paid=deposit,
            deposit_product=product if deposit else "",
            deposit_amount=(amount := float(rng.choice((20, 50, 100)))) if deposit else None,
            balance_amount=_balance(price, amount) if deposit else None,
            last_product=product if count else "",
            balance_paid=deposit and rng.random() < 0.55, purchase_count=count, last_purchase_at=last,
            total_spent=spent, cycle_days=cycle, birthday=birthday, is_member=member,
            member_since=joined if member else None, joined_at=joined, cart_at=cart,
            last_active_at=active,
        )


def _balance(price: float, deposit: float) -> float:
    """The balance of a presale order: the product's price less the deposit's offset (twice it)."""
    return float(max(round(price - 2 * deposit), round(price / 2)))


def write_csv(customers: list[CustomerRecord], path: Path) -> None:
    """An importable CSV of the demo customers (raw phones: this is an import file, not an export)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for c in customers:
            w.writerow([_cell(getattr(c, col)) for col in COLUMNS])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "|".join(value)
    return str(value)
