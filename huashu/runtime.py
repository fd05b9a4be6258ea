"""Assemble a ready engine from settings: scripts, classifier, store and actions, loaded once."""

from __future__ import annotations

from core.customers import CustomerStore
from core.parse import IntentClassifier
from core.settings import Settings
from dialogue.actions import ActionRunner
from dialogue.assembly import Runtime, load_scripts
from dialogue.engine import DialogueEngine, EngineConfig


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
