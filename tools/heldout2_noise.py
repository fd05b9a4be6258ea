"""Write the ASR-noised copy of held-out set 2 (tests/data/nlu_heldout2_noisy.yml).

The confusion table below is written for this set alone and deliberately shares no mapping with
scripts_zh/nlu/asr_noise.yml (the training augmentation's table), so the noisy score is not
flattered by noise the model was trained on. The confusions are telephone-ASR ones: same or
near pinyin, lost tones, n/l, in/ing, an/ang, z/zh (尾款→尾宽, 顺丰→顺风, 过敏→过明, 买→卖).
Edits per utterance (seeded, so the file is reproducible): no punctuation, a homophone per site,
a dropped character (never a negation: dropping 不/没 would change the gold label), a stutter, a
hesitation filler before the utterance; every utterance gets at least one edit.

    .venv/bin/python -m tools.heldout2_noise            # rewrites the noisy file
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import replace
from pathlib import Path

from nlu.augment import dump_rasa
from nlu.data import load_file
from nlu.text import strip_punct

ROOT = Path(__file__).resolve().parents[1]
CLEAN = ROOT / "tests" / "data" / "nlu_heldout2_clean.yml"
NOISY = ROOT / "tests" / "data" / "nlu_heldout2_noisy.yml"
SEED = 2026

CONFUSIONS: dict[str, tuple[str, ...]] = {
    "微信": ("为新", "微新"), "企微": ("企为",), "电话": ("电化", "店话"), "投诉": ("投速", "偷诉"),
    "尾款": ("尾宽", "伟款"), "定金": ("定进", "订斤"), "短信": ("短新",), "快递": ("块递",),
    "付": ("富", "复"), "已经": ("一经",), "收到": ("受到", "首到"), "优惠": ("优汇",),
    "机器": ("机气",), "人工": ("人攻", "仁公"), "真人": ("真仁", "正人"), "录音": ("路音",),
    "号码": ("号马",), "多少": ("多烧",), "发货": ("法货",), "孕妇": ("韵妇",), "过敏": ("过明",),
    "开会": ("开灰",), "拜拜": ("摆摆",), "喂": ("威", "未"), "嗯": ("唔",), "知道": ("只到",),
    "骚扰": ("烧扰",), "预售": ("预受",), "礼品": ("礼聘",), "赠品": ("增品",), "活动": ("火动",),
    "福利": ("服利",), "价格": ("架格",), "便宜": ("偏宜",), "包邮": ("包油",), "物流": ("无流",),
    "地址": ("地质",), "顺丰": ("顺风",), "订单": ("定单",), "支付": ("之付",), "花呗": ("花被",),
    "链接": ("连接",), "二维码": ("二维马",), "好友": ("好有",), "扫码": ("扫马",), "方便": ("方面",),
    "上班": ("上般",), "再见": ("在见",), "谢谢": ("谢写",), "打错": ("大错",), "听不清": ("听不青",),
    "一遍": ("一变",), "兴趣": ("性趣",), "需要": ("须要",), "考虑": ("考律",), "算了": ("蒜了",),
    "别打": ("别大",), "删": ("山",), "联系": ("连系",), "名单": ("明单",), "举报": ("剧报",),
    "拉黑": ("拉嘿",), "退订": ("退定",), "质量": ("志量",), "过期": ("过七",), "假货": ("价货",),
    "售后": ("收后",), "客服": ("刻服",), "买过": ("卖过",), "本人": ("本任",), "保质期": ("保值期",),
    "成分": ("城分",), "功效": ("公效",), "宝宝": ("包包",), "效果": ("笑果",), "晚上": ("碗上",),
    "明天": ("名天",), "下班": ("下般",), "周末": ("周莫",), "现在": ("县在",), "忙": ("盲",),
    "带娃": ("带蛙",), "什么": ("什嘛",), "可以": ("可一",), "好的": ("号的",), "退": ("腿",),
    "加": ("夹",), "钱": ("前",), "吗": ("麻",), "是": ("似",), "没": ("梅",),
}
FILLERS = ("呃", "那个", "嗯")
NEGATIONS = frozenset("不没别未非无莫甭")
_SITES = re.compile("|".join(map(re.escape, sorted(CONFUSIONS, key=len, reverse=True))))


def _homophones(s: str, rng: random.Random, *, force: bool = False) -> str:
    sites = list(_SITES.finditer(s))
    if force and sites:
        m = rng.choice(sites)
        return s[:m.start()] + rng.choice(CONFUSIONS[m.group()]) + s[m.end():]

    def sub(m: re.Match[str]) -> str:
        p = 0.6 if len(m.group()) > 1 else 0.2  # single characters are frequent: rarer
        return rng.choice(CONFUSIONS[m.group()]) if rng.random() < p else m.group()
    return _SITES.sub(sub, s)


def _drop(s: str, rng: random.Random) -> str:
    spots = [i for i, c in enumerate(s) if c not in NEGATIONS]
    if len(s) < 3 or not spots:
        return s
    i = rng.choice(spots)
    return s[:i] + s[i + 1:]


def _stutter(s: str, rng: random.Random) -> str:
    i = rng.randrange(len(s))
    return s[:i + 1] + s[i] + s[i + 1:]


def noisy(text: str, rng: random.Random) -> str:
    """One telephone-ASR rendering of `text`, always different from the punctuation-free text."""
    clean = strip_punct(text)
    s = _homophones(clean, rng)
    if len(s) >= 4 and rng.random() < 0.25:
        s = _drop(s, rng)
    if rng.random() < 0.1:
        s = _stutter(s, rng)
    if rng.random() < 0.12:
        s = rng.choice(FILLERS) + s
    if s == clean:
        s = _homophones(s, rng, force=True)
    if s == clean:
        s = _drop(s, rng) if len(s) >= 4 else _stutter(s, rng)
    return s


def build(seed: int = SEED) -> str:
    """The noisy file's text for the clean set and `seed`."""
    examples = [replace(ex, text=noisy(ex.text, random.Random(f"{seed}:{ex.text}")), annotations=())
                for ex in load_file(CLEAN).examples]
    header = (f"# ASR-noised copy of {CLEAN.name}, written by tools/heldout2_noise.py (seed {seed};\n"
              "# its own confusion table, none shared with scripts_zh/nlu/asr_noise.yml). Do not edit.")
    return dump_rasa(examples, header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=NOISY)
    args = parser.parse_args()
    args.out.write_text(build(args.seed), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
