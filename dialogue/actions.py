"""Custom actions: rasa-sdk `Action` classes run through rasa-sdk's own executor, in process,
or over rasa-sdk's webhook protocol against a merchant's action server.

Actions never mutate engine state: they return rasa events (`SlotSet`…) that the engine applies.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor

from core.conversation import SessionState
from core.vocab import INTENTS

log = logging.getLogger(__name__)
T = TypeVar("T")

# Modules whose rasa-sdk Action subclasses are built in. Merchants add theirs with
# HUASHU_ACTION_MODULES or by pointing a track's action_endpoint at their own server.
BUILTIN_ACTION_MODULES = ("store.actions",)


class ActionFailed(Exception):
    """An action raised, timed out or its server answered badly; the track's fallback applies."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    events: tuple[dict[str, Any], ...]
    responses: tuple[dict[str, Any], ...]


def _actions_in(module_name: str) -> list[type[Action]]:
    module = importlib.import_module(module_name)
    found = []
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Action) and value is not Action \
                and value.__module__ == module.__name__:
            found.append(value)
    return found


def build_executor(modules: Iterable[str] = BUILTIN_ACTION_MODULES, *,
                   actions: Iterable[Action] = ()) -> ActionExecutor:
    """A rasa-sdk executor with every Action class of `modules` registered, then the ready-built
    `actions` (which replace a class of the same name: e.g. store actions bound to a store)."""
    executor = ActionExecutor()
    for name in modules:
        try:
            classes = _actions_in(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                log.warning("action module %s not found; its actions are unavailable", name)
                continue
            raise
        for cls in classes:
            executor.register_action(cls)
    for action in actions:
        executor.register_action(action)
    return executor


def tracker_payload(state: SessionState, action: str, latest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The request body of rasa-sdk's webhook protocol for one action call on this session."""
    slots = {**state.slots, "customer_id": state.customer_id, "call_id": state.call_id,
             "track": state.track_id, "tags": list(state.tags), "outcome": state.outcome}
    return {
        "next_action": action,
        "sender_id": state.call_id,
        "version": "3.10.0",
        "tracker": {
            "sender_id": state.call_id,
            "slots": slots,
            "latest_message": dict(latest or {"text": "", "intent": {}, "entities": []}),
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": state.pending_node,
            "latest_input_channel": state.channel,
        },
        "domain": {"slots": {name: {"type": "any"} for name in slots}, "intents": list(INTENTS)},
    }


def _run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when called inside a running event loop's thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


class ActionRunner:
    """Runs named actions for the engine: in process when registered, else over HTTP."""

    def __init__(self, executor: ActionExecutor | None = None) -> None:
        self.executor = executor if executor is not None else build_executor()
        self._http = httpx.Client()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.executor.actions)

    def run(self, action: str, state: SessionState, latest: Mapping[str, Any] | None = None,
            endpoint: str | None = None, timeout_ms: int = 1500) -> ActionResult:
        payload = tracker_payload(state, action, latest)
        if endpoint:
            return self._run_http(endpoint, payload, timeout_ms)
        if action not in self.executor.actions:
            raise ActionFailed(f"action {action!r} is not registered (known: {sorted(self.names)})")
        try:
            result = _run_coro(self.executor.run(payload))
        except Exception as exc:
            raise ActionFailed(f"action {action!r} failed: {exc}") from exc
        if result is None:
            raise ActionFailed(f"action {action!r} returned nothing")
        return ActionResult(tuple(result.events), tuple(result.responses))

    def _run_http(self, url: str, payload: dict[str, Any], timeout_ms: int) -> ActionResult:
        try:
            response = self._http.post(url, json=payload, timeout=timeout_ms / 1000)
        except httpx.HTTPError as exc:
            raise ActionFailed(f"action server {url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ActionFailed(f"action server {url} answered {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
            return ActionResult(tuple(body.get("events") or ()), tuple(body.get("responses") or ()))
        except (ValueError, AttributeError) as exc:
            raise ActionFailed(f"action server {url} sent a body that is not rasa-sdk JSON") from exc


def apply_events(state: SessionState, events: Iterable[Mapping[str, Any]]) -> SessionState:
    """Apply rasa events to a session: `slot` events set slots; a `tags` slot adds tags."""
    slots = dict(state.slots)
    tags: list[str] = []
    for event in events:
        if event.get("event") == "slot":
            name, value = event.get("name"), event.get("value")
            if name == "tags" and isinstance(value, list):
                tags.extend(str(t) for t in value)
            elif isinstance(name, str):
                slots[name] = value
        elif event.get("event") == "reset_slots":
            slots = {}
    return state.with_(slots=slots).add_tags(*tags)
