"""A tiny keyword classifier for policy/engine unit tests only (stories use the real NLU)."""

from __future__ import annotations

from core.parse import ClassifyContext, Parse

KEYWORDS = [
    ("opt_out", ("别再", "不要再打")), ("ask_robot", ("机器人", "真人")), ("wrong_person", ("打错",)),
    ("complaint", ("投诉",)), ("busy", ("在开会", "忙")), ("ask_identity", ("哪位", "哪家")),
    ("ask_price", ("多少钱", "要钱")), ("already_added", ("加了",)), ("not_received", ("没收到",)),
    ("ask_how_to_add", ("怎么加",)), ("deny", ("不需要", "不用")), ("affirm", ("好的", "可以", "行")),
    ("greet", ("喂", "你好")), ("thanks_bye", ("再见",)), ("repeat", ("再说一遍",)),
]


class KeywordClassifier:
    def classify(self, text: str, context: ClassifyContext | None = None) -> Parse:
        for intent, words in KEYWORDS:
            if any(w in text for w in words):
                return Parse(text, intent, 0.95, source="rule")
        return Parse(text, "out_of_scope", 0.2)
