"""NLU stage: rules → calibrated transformer + n-gram ensemble → context prior → entities.

Public API (the engine and server import exactly these):
    load_classifier(settings, *, train_if_missing=True) -> HuashuClassifier
    CONFIDENCE_THRESHOLD, NluModelError, HuashuClassifier
    nlu.rules (load_rules, RuleSet), nlu.entities.extract(text, now)
Names are resolved lazily so importing a submodule (nlu.rules, nlu.data) stays light (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nlu.classifier import (
        CONFIDENCE_THRESHOLD,
        CONTEXT_BOOST,
        HuashuClassifier,
        NluModelError,
        load_classifier,
    )

__all__ = ["CONFIDENCE_THRESHOLD", "CONTEXT_BOOST", "HuashuClassifier", "NluModelError", "load_classifier"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nlu import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'nlu' has no attribute {name!r}")
