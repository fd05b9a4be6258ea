"""What an assembled conversation application holds (`Runtime`), and how its scripts load.

The wiring that builds one from settings (store, classifier) is `huashu.runtime`; the edges
(server, wecom) only receive a Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.customers import CustomerStore
from core.settings import Settings
from dialogue.actions import ActionRunner
from dialogue.engine import DialogueEngine
from dialogue.loader import Bundle, load_bundle


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
