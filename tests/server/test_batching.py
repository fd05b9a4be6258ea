"""NLU micro-batching: concurrent classify calls share classify_batch passes, answers unchanged."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from core.parse import ClassifyContext, Parse
from server.batching import BatchingClassifier, batching
from tests.dialogue.keywords import KeywordClassifier


class SlowBatch(KeywordClassifier):
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def classify_batch(self, texts: Sequence[str],
                       contexts: Sequence[ClassifyContext | None] | None = None) -> list[Parse]:
        self.sizes.append(len(texts))
        time.sleep(0.05)
        if "boom" in texts:
            raise RuntimeError("model broke")
        return [self.classify(t) for t in texts]


def test_concurrent_calls_are_batched_and_answered_correctly() -> None:
    inner = SlowBatch()
    wrapped = BatchingClassifier(inner)
    texts = ["多少钱", "你是机器人吗", "好的", "不需要", "喂"] * 4
    results: dict[int, Parse] = {}

    def run(i: int) -> None:
        results[i] = wrapped.classify(texts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wrapped.close()
    assert [results[i].intent for i in range(len(texts))] == [inner.classify(t).intent for t in texts]
    assert sum(inner.sizes) == len(texts) and max(inner.sizes) > 1  # fewer passes than utterances


def test_errors_reach_every_caller_and_plain_classifiers_are_left_alone() -> None:
    wrapped = BatchingClassifier(SlowBatch())
    with pytest.raises(RuntimeError, match="model broke"):
        wrapped.classify("boom")
    assert wrapped.classify("多少钱").intent == "ask_price"  # the batcher keeps going
    wrapped.close()
    plain = KeywordClassifier()
    assert batching(plain) is plain
