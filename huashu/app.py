"""`create_app(settings)`: the gateway app as `huashu serve` runs it (CONTRACT.md "HTTP").

Wiring only: server.app builds the HTTP app around a Runtime; here the Runtime is built from
settings in the lifespan (tracks, the trained NLU model, the store) and the WeCom and campaign
routes are mounted. Tests and embedders pass `runtime=` to skip the loading.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from campaign.routes import router as campaign_router
from core.parse import IntentClassifier
from core.settings import Settings
from dialogue.assembly import Runtime
from huashu.runtime import build_runtime
from server import app as server_app
from wecom.api import router as wecom_router


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               classifier: IntentClassifier | None = None, clock: Callable[[], datetime] | None = None,
               turn_threads: int = 32, start_threads: int = 8) -> FastAPI:
    """The gateway app; without `runtime` the lifespan loads one (training the NLU model if missing)."""
    return server_app.create_app(settings, runtime=runtime, build_runtime=_build, routers=(wecom_router, campaign_router),
                                 classifier=classifier, clock=clock, turn_threads=turn_threads,
                                 start_threads=start_threads)


def _build(settings: Settings, classifier: IntentClassifier | None) -> Runtime:
    return build_runtime(settings, classifier=classifier)
