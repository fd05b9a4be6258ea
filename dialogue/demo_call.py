"""The demo call: what the customer says in `huashu demo` and in `huashu gateway-sim`'s default run."""

from __future__ import annotations

DEMO_TRACK = "wecom_add_gift"
DEMO_CALL: tuple[str, ...] = ("喂，你好", "你是机器人吗？", "哦，那这个要钱吗", "行吧，怎么加", "好的，我现在就加")
