"""The reply library loads from scripts_zh/replies and rejects bad data with file:line messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.vocab import INTENTS
from core.yamlio import ScriptError
from tests.conftest import SCRIPTS
from wecom.library import Library, load_library

REPLIES = SCRIPTS / "replies"


def test_shipped_library_covers_every_intent(library: Library) -> None:
    assert library.spec.persona == "xiaomei"
    for intent in INTENTS:
        assert library.for_intent(intent), intent
    # the playbook of the issue, as data
    assert library.spec.playbook["low"].avoid == ("promotion",)
    assert set(library.spec.playbook["low"].prefer) == {"professional", "service"}
    assert library.spec.playbook["high"].prefer == ("promotion",)
    assert set(library.spec.playbook["medium"].prefer) == {"efficacy", "origin", "craft"}


def test_replies_are_joined_without_spaces(library: Library) -> None:
    text = library.replies["price_promo_value"].text
    assert "\n" not in text and " " not in text


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "replies"
    shutil.copytree(REPLIES, root)
    return root


def _problem(root: Path) -> str:
    with pytest.raises(ScriptError) as info:
        load_library(root, frozenset({"hotline", "agent_name", "brand"}), frozenset({"xiaomei"}))
    return str(info.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("intents: [ask_price]", "intents: [ask_prize]", "unknown intent 'ask_prize'"),
    ("angle: promotion\n    price_tiers: [high]\n    tags: [price_sensitive]",
     "angle: promotion\n    price_tiers: [high]\n    tags: [price_senstive]", "unknown value 'price_senstive'"),
    ("price_tiers: [high]\n    tags: [price_sensitive]", "price_tiers: [low]\n    tags: [price_sensitive]",
     "angle 'promotion' is avoided for price tier 'low'"),
    ("{product}日常价", "{produkt}日常价", "unknown variable {produkt}"),
])
def test_bad_reply_is_reported_with_file_and_line(tmp_path: Path, field: str, value: str, message: str) -> None:
    root = _copy(tmp_path)
    path = root / "price.yml"
    text = path.read_text(encoding="utf-8")
    assert field in text
    path.write_text(text.replace(field, value, 1), encoding="utf-8")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "price_promo_value:")
    out = _problem(root)
    assert f"{path}:{line}: price_promo_value:" in out
    assert message in out


def test_duplicate_reply_id_across_files(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "zz_extra.yml").write_text("replies:\n  greet_default:\n    intents: [greet]\n    angle: greeting\n"
                                       "    text: 您好\n", encoding="utf-8")
    out = _problem(root)
    assert "zz_extra.yml:2: greet_default: reply defined twice" in out


def test_unknown_playbook_angle_and_missing_tier(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "library.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  high: {prefer: [promotion]}\n", "  hgh: {prefer: [discounts]}\n"), encoding="utf-8")
    out = _problem(root)
    assert "unknown price tier 'hgh'" in out and "unknown angle 'discounts'" in out
    assert "price tier 'high' missing" in out


def test_every_intent_needs_a_reply_for_every_tier(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "general.yml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  generic_here:")
    path.write_text(text[:start], encoding="utf-8")  # drop the "*" reply
    # ask_deposit_rules still has replies; an intent left with none must be reported
    payment = root / "payment.yml"
    ptext = payment.read_text(encoding="utf-8")
    payment.write_text(ptext.replace("    intents: [ask_logistics]\n", "    intents: [ask_detail]\n"), encoding="utf-8")
    out = _problem(root)
    assert "no unconditional reply for intent 'ask_logistics' at price tier 'low'" in out


def test_schema_error_names_the_field(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "product.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    angle: origin\n", "    angle: origin\n    colour: red\n", 1), encoding="utf-8")
    out = _problem(root)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "product_origin:")
    assert f"product.yml:{line}: product_origin: colour: Extra inputs are not permitted" in out
