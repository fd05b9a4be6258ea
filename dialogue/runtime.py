"""Assemble a ready engine from settings: scripts, classifier, store and actions, loaded once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dialogue.actions import ActionRunner
from dialogue.engine import DialogueEngine, EngineConfig
from dialogue.loader import Bundle, load_bundle
from huashu.settings import Settings
from nlu.types import IntentClassifier

if TYPE_CHECKING:
    from store.types import CustomerStore


@dataclass
class Runtime:
    settings: Settings
    bundle: Bundle
    engine: DialogueEngine
    store: CustomerStore | None
    actions: ActionRunner


def load_scripts(settings: Settings, actions: ActionRunner | None = None) -> Bundle:
    """Every track and persona, validated against the registered action names."""
    runner = actions or ActionRunner()
    return load_bundle(settings.effective_scripts_dir, runner.names)


def open_default_store(settings: Settings) -> CustomerStore:
    from store import open_store

    return open_store(settings)


def build_runtime(settings: Settings, *, classifier: IntentClassifier | None = None,
                  with_store: bool = True, train_if_missing: bool = True) -> Runtime:
    """Load everything a call needs. The store also backs the store actions (rasa-sdk)."""
    store = open_default_store(settings) if with_store else None
    if store is not None:
        import store.actions as store_actions

        store_actions.configure(store)
    actions = ActionRunner()
    bundle = load_scripts(settings, actions)
    if classifier is None:
        from nlu import load_classifier

        classifier = load_classifier(settings, train_if_missing=train_if_missing)
    engine = DialogueEngine(bundle, classifier, store=store, actions=actions,
                            config=EngineConfig(clip_base_url=settings.public_base_url.rstrip("/") + "/v1/clips"))
    return Runtime(settings, bundle, engine, store, actions)
