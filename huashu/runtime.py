"""Assemble a ready engine from settings: scripts, classifier, store and actions, loaded once."""

from __future__ import annotations

from rasa_sdk import Action

from core.customers import CustomerStore
from core.parse import IntentClassifier
from core.settings import Settings
from dialogue.actions import ActionRunner, build_executor
from dialogue.assembly import Runtime, load_scripts
from dialogue.engine import DialogueEngine, EngineConfig


def open_default_store(settings: Settings) -> CustomerStore:
    from store import open_store

    return open_store(settings)


def build_runtime(settings: Settings, *, classifier: IntentClassifier | None = None,
                  with_store: bool = True, train_if_missing: bool = True) -> Runtime:
    """Load everything a call needs. The store also backs the store actions (rasa-sdk)."""
    store = open_default_store(settings) if with_store else None
    actions = ActionRunner(build_executor(actions=_store_actions(store)) if store is not None else None)
    bundle = load_scripts(settings, actions)
    if classifier is None:
        from nlu import load_classifier

        classifier = load_classifier(settings, train_if_missing=train_if_missing)
    engine = DialogueEngine(bundle, classifier, store=store, actions=actions,
                            config=EngineConfig(clip_base_url=settings.public_base_url.rstrip("/") + "/v1/clips"))
    return Runtime(settings, bundle, engine, store, actions)


def _store_actions(store: CustomerStore) -> list[Action]:
    from store.actions import bound_to

    return bound_to(store)
