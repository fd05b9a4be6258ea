"""nlu.sound: toneless and fuzzy pinyin per character, everyday homophones."""

from __future__ import annotations

from nlu.sound import everyday_syllables, fuzzy, fuzzy_syllables, homophones, syllable


def test_syllables_are_toneless_and_fuzzy_ones_merge_confusable_sounds() -> None:
    assert syllable("是") == "shi" and fuzzy("是") == "si" == fuzzy("四")
    assert fuzzy("男") == fuzzy("蓝") and fuzzy("明") == fuzzy("民")
    assert fuzzy_syllables("ok尾款") == ["wei", "kuan"]  # Latin letters have no syllable


def test_homophones_are_everyday_characters_of_the_same_sound() -> None:
    near = homophones("钱")
    assert "前" in near and "浅" in near and "钱" not in near
    assert all(syllable(c) == "qian" for c in near)
    assert "四" not in homophones("是") and "四" in homophones("是", exact=False)
    assert homophones("a") == () and homophones("，") == ()
    assert "龘" not in homophones("大")  # rare characters are not what a recogniser writes


def test_everyday_syllables_are_the_fuzzy_inventory() -> None:
    syl = everyday_syllables()
    assert syl == sorted(set(syl)) and "si" in syl and "shi" not in syl and 250 < len(syl) < 400
