"""`huashu actions serve`: our actions on rasa-sdk's own Sanic action server."""

from __future__ import annotations

from rasa_sdk.endpoint import create_app

from core.settings import Settings
from dialogue.actions import build_executor


def serve(settings: Settings, host: str, port: int, modules: tuple[str, ...] | None = None) -> None:
    """Blocking: serve the built-in actions (store-backed ones use the configured store)."""
    from store import open_store
    from store.actions import bound_to

    actions = bound_to(open_store(settings))
    executor = build_executor(modules, actions=actions) if modules else build_executor(actions=actions)
    app = create_app(executor)
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)
