"""Micro-batching of NLU calls: the concurrent turns of many calls share one model pass.

The classifier's `classify_batch` costs about 2 ms per utterance in batches of 16 against
~20 ms for a single one (CPU, see docs/server.md). Turns run in worker threads; each one's
`classify` is queued and a single batcher thread takes everything queued at that moment as one
batch — no waiting for a batch to fill, so a lone call is not delayed, and under load the
batches grow by themselves.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.parse import ClassifyContext, IntentClassifier, Parse


class BatchClassifier(IntentClassifier, Protocol):
    def classify_batch(self, texts: Sequence[str],
                       contexts: Sequence[ClassifyContext | None] | None = None) -> list[Parse]: ...


@dataclass
class _Item:
    text: str
    context: ClassifyContext | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Parse | None = None
    error: BaseException | None = None


class BatchingClassifier:
    """An IntentClassifier that merges concurrent `classify` calls into `classify_batch` passes."""

    def __init__(self, inner: BatchClassifier, max_batch: int = 32,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.inner = inner
        self.on_batch = on_batch
        self.max_batch = max_batch
        self.batches = 0
        self.items = 0
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="huashu-nlu-batch", daemon=True)
        self._thread.start()

    def classify(self, text: str, context: ClassifyContext | None = None) -> Parse:
        item = _Item(text, context)
        self._queue.put(item)
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            try:
                results = self.inner.classify_batch([i.text for i in batch], [i.context for i in batch])
                for i, result in zip(batch, results, strict=True):
                    i.result = result
            except BaseException as exc:  # every waiter gets the error (a bug, or a broken model)
                for i in batch:
                    i.error = exc
            self.batches += 1
            self.items += len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for i in batch:
                i.done.set()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def __getattr__(self, name: str) -> Any:  # the inner classifier's other attributes (intents…)
        return getattr(self.inner, name)


def batching(classifier: IntentClassifier, on_batch: Callable[[int], None] | None = None) -> IntentClassifier:
    """Wrap a classifier that has `classify_batch`; others are returned as they are."""
    if hasattr(classifier, "classify_batch") and not isinstance(classifier, BatchingClassifier):
        return BatchingClassifier(classifier, on_batch=on_batch)  # type: ignore[arg-type]
    return classifier
