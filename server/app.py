"""`create_app(settings)`: the gateway-facing FastAPI app (CONTRACT.md "HTTP").

The Runtime (tracks, NLU model, store) is loaded once in the lifespan and kept on `app.state`;
sessions live in-process or in Redis (server.sessions). Errors map to statuses in server.errors
only; the guard middleware checks sizes, signatures and keys before any route runs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core.parse import IntentClassifier
from core.settings import Settings
from dialogue.assembly import Runtime
from server import models as m
from server.batching import BatchingClassifier, batching
from server.calls import CallService
from server.context import ServerContext, ctx, open_sessions
from server.drain import drain_forever, drainable
from server.errors import NotFound, Unavailable, Unprocessable, error_response, json_response
from server.fastpath import FastCalls
from server.guard import Guard
from server.metrics import Metrics
from store.phones import mask_id

log = logging.getLogger("huashu.server")
RuntimeBuilder = Callable[[Settings, IntentClassifier | None], Runtime]


def default_clock(settings: Settings) -> Callable[[], datetime]:
    tz = ZoneInfo(settings.timezone)
    return lambda: datetime.now(tz)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               build_runtime: RuntimeBuilder | None = None, routers: Sequence[APIRouter] = (),
               classifier: IntentClassifier | None = None, clock: Callable[[], datetime] | None = None,
               turn_threads: int = 32, start_threads: int = 8) -> FastAPI:
    """The app around a loaded `runtime`, or one `build_runtime(settings, classifier)` loads in the
    lifespan; `routers` are mounted after the call routes. huashu.app.create_app is the wired one
    (default builder, WeCom routes); `clock` is for tests."""
    settings = settings or Settings()
    if runtime is None and build_runtime is None:
        raise TypeError("create_app needs a runtime or a build_runtime (huashu.app.create_app wires both)")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(max_workers=turn_threads, thread_name_prefix="huashu-turn")
        start_executor = ThreadPoolExecutor(max_workers=start_threads, thread_name_prefix="huashu-start")
        loop = asyncio.get_running_loop()
        rt: Runtime = runtime if runtime is not None else await loop.run_in_executor(
            executor, _builder(build_runtime), settings, classifier)
        if runtime is None:  # our own process: one torch thread (see nlu.bert.set_inference_threads)
            await loop.run_in_executor(executor, _torch_threads, settings.nlu_threads)
        classifier_ = batching(rt.engine.classifier, metrics.nlu_batch.observe)  # concurrent turns share NLU passes
        engine = rt.engine.with_classifier(classifier_)
        sessions = open_sessions(settings)
        calls = CallService(lambda: engine, sessions, metrics, clock=clock or default_clock(settings),
                            budget_ms=settings.callback_budget_ms, lock_ttl_ms=settings.lock_ttl_ms,
                            filler_clip=settings.filler_clip, executor=executor, start_executor=start_executor,
                            opt_out_rule=_opt_out_rule(settings, rt.engine.classifier), failpoint=settings.failpoint)
        context = ServerContext(settings, rt, sessions, calls, metrics, executor, engine)
        try:
            context.generation = await sessions.generation()
        except Exception as exc:  # Redis down at boot: serve anyway, /healthz says degraded
            log.warning("session store not reachable at startup: %s", exc)
        await sessions.start()
        store = drainable(rt.store)
        drain = None if store is None else asyncio.ensure_future(
            drain_forever(store, metrics, settings.outbox_drain_interval_ms / 1000))
        app.state.huashu = context
        # Models, tokenizer vocabularies and talk tracks are ~500k objects that live as long as the
        # process; moved out of the cyclic GC's reach, its full passes stop walking them (measured:
        # 200-500 ms pauses at 1,000 calls before). Refcounting frees them as usual.
        gc.collect()
        gc.freeze()
        log.info("huashu server ready: %d track(s), sessions=%s", len(rt.bundle.tracks), sessions.kind)
        warn_if_insecure(settings)
        try:
            yield
        finally:
            if drain is not None:
                drain.cancel()
            if calls.background:
                await asyncio.wait(set(calls.background), timeout=settings.lock_ttl_ms / 1000)
            await sessions.close()
            executor.shutdown(wait=False, cancel_futures=True)
            start_executor.shutdown(wait=False, cancel_futures=True)
            if isinstance(classifier_, BatchingClassifier):
                classifier_.close()
            if runtime is None and rt.store is not None:
                rt.store.close()

    return _http_app(settings, metrics, lifespan, routers)


def _http_app(settings: Settings, metrics: Metrics, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
              routers: Sequence[APIRouter]) -> FastAPI:
    """The HTTP side: error mapping, the guard and fast-path middleware, every route."""
    # FastAPI's built-in OpenTelemetry looks up the global providers on every request (5 % of the
    # event loop at 1,000 calls); off unless asked for (Prometheus /metrics is always there).
    otel = bool(settings.otel)
    app = FastAPI(title="huashu 话术 gateway API", version="1.0.0", lifespan=lifespan,
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel}, docs_url=None, redoc_url=None,
                  description="Telephony gateway callbacks, customer profiles, NLU parse (docs/server.md).")

    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    for exc_type in handled_exceptions():
        app.add_exception_handler(exc_type, handle)
    # Added first, so it runs inside the Guard: call start and events skip the framework's routing.
    app.add_middleware(FastCalls)
    app.add_middleware(Guard, max_body=settings.max_body_bytes, gateway_secrets=lambda: settings.gateway_secrets,
                       agent_keys=lambda: settings.agent_key_list, jambonz_secret=lambda: settings.jambonz_secret,
                       metrics=metrics, insecure_dev=lambda: settings.insecure_dev)
    _register_basic_routes(app)
    from server import apidocs, clips, jambonz, routes_calls

    apidocs.register(app)
    routes_calls.register(app)
    clips.register(app)
    jambonz.register(app)
    for router in routers:
        app.include_router(router)
    from server import openapi

    openapi.install(app)
    return app


def _builder(build_runtime: RuntimeBuilder | None) -> RuntimeBuilder:
    if build_runtime is None:
        raise TypeError("create_app needs a runtime or a build_runtime")
    return build_runtime


def insecure_warning(settings: Settings) -> str | None:
    """The start-up warning of an insecure server (None when every area needs its credential)."""
    missing = settings.missing_credentials
    if not settings.insecure_dev or not missing:
        return None
    return (f"INSECURE DEV MODE: {' and '.join(missing)} not set; the routes they protect are OPEN to "
            "anyone who can reach this port (customer profiles, WeCom, call control). "
            "Never expose this server; set the secrets and drop --insecure-dev / HUASHU_INSECURE_DEV.")


def warn_if_insecure(settings: Settings) -> None:
    message = insecure_warning(settings)
    if message:
        bar = "!" * 100  # one record per line: the log formatter escapes newlines inside a record
        for line in (bar, message, bar):
            log.warning("%s", line)


def _opt_out_rule(settings: Settings, classifier: IntentClassifier) -> Callable[[str], bool]:
    """The NLU's high-precision opt-out rules alone (no model): the classifier's own rule set
    when it has one, else scripts/nlu/rules.yml (the same file)."""
    from nlu.rules import RuleSet, load_rules

    rules = getattr(classifier, "rules", None)
    if not isinstance(rules, RuleSet):
        rules = load_rules(settings.effective_scripts_dir / "nlu" / "rules.yml")
    found = rules

    def is_opt_out(text: str) -> bool:
        hit = found.match(text)
        return hit is not None and hit.intent == "opt_out"
    return is_opt_out


def _torch_threads(n: int) -> None:
    try:
        from nlu.bert import set_inference_threads
    except ImportError:  # an NLU without torch
        return
    set_inference_threads(n)


def handled_exceptions() -> tuple[type[Exception], ...]:
    """Every exception type server.errors maps (Exception last: a bug, answered 500)."""
    from pydantic import ValidationError

    from asr.errors import AsrError
    from core.shared_kv import SessionsUnavailable
    from dialogue.engine import CallRefused, UnknownVariable
    from server.errors import ApiError
    from store.db import CONNECTIVITY_ERRORS
    from store.errors import StoreUnavailableError

    # the database's outage errors too: answered 503 by the exception middleware, not re-raised
    # to uvicorn as a crash (server.errors maps them)
    return (ApiError, CallRefused, ValidationError, UnicodeDecodeError, UnknownVariable, SessionsUnavailable,
            StoreUnavailableError, *CONNECTIVITY_ERRORS, AsrError, RequestValidationError,
            StarletteHTTPException, Exception)


async def _outbox_counts(c: ServerContext) -> tuple[int, int]:
    """(queued, parked) store writes; (0, 0) without an outbox."""
    store = drainable(c.runtime.store)
    if store is None:
        return 0, 0
    loop = asyncio.get_running_loop()
    return (await loop.run_in_executor(c.executor, store.outbox_pending),
            await loop.run_in_executor(c.executor, store.outbox_parked))


def _register_basic_routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=m.Health, tags=["ops"], responses={503: {"model": m.Health}})
    async def healthz(request: Request) -> Response:
        c = ctx(request)
        body = {"status": "ok", "sessions": c.sessions.kind, "tracks": sorted(c.runtime.bundle.tracks),
                "detail": ""}
        try:
            await c.sessions.ping()
        except Exception as exc:
            body.update(status="degraded", detail=str(exc))
            return json_response(body, 503)
        return json_response(body)

    @app.get("/readyz", response_model=m.Ready, tags=["ops"], responses={503: {"model": m.Ready}})
    async def readyz(request: Request) -> Response:
        """Ready = the session store answers; the outbox backlog is reported either way (the server
        keeps serving while the database is down: its writes wait, durably, in the outbox)."""
        c = ctx(request)
        backlog, parked = await _outbox_counts(c)
        body = {"status": "ready", "sessions": c.sessions.kind, "outbox_backlog": backlog,
                "outbox_parked": parked, "detail": ""}
        try:
            await c.sessions.ping()
        except Exception as exc:
            body.update(status="not_ready", detail=str(exc))
            return json_response(body, 503)
        return json_response(body)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}})
    async def metrics_route(request: Request) -> Response:
        c = ctx(request)
        try:
            c.metrics.set_active(await c.sessions.active_calls())
        except Exception:
            c.metrics.set_active(None)
        if drainable(c.runtime.store) is not None:
            c.metrics.set_backlog((await _outbox_counts(c))[0])
        data, content_type = c.metrics.render()
        return Response(data, media_type=content_type)

    @app.post("/model/parse", response_model=m.RasaParse, tags=["nlu"], openapi_extra=m.body_doc(m.ParseIn),
              responses=m.error_docs(400, 413, 422))
    async def model_parse(request: Request) -> Response:
        c = ctx(request)
        body = m.parse(m.ParseIn, await request.body())
        parsed = await asyncio.get_running_loop().run_in_executor(
            c.executor, c.engine.classifier.classify, body.text)
        return json_response(parsed.to_rasa())

    @app.get("/v1/customers/{customer_id}", tags=["customers"],
             responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                              "description": "Tags, last outcome/grade, do-not-contact status (phone masked)"},
                        **m.error_docs(401, 404, 503)})
    async def customer(customer_id: str, request: Request) -> Response:
        c = ctx(request)
        problem = m.id_problem(customer_id, m.CUSTOMER_ID_MAX)
        if problem:
            raise Unprocessable(f"customer_id: {problem}")
        store = c.runtime.store
        if store is None:
            raise Unavailable("no customer store configured", code="store_unavailable")
        profile = await asyncio.get_running_loop().run_in_executor(c.executor, store.customer_profile, customer_id)
        if profile is None:
            raise NotFound(f"unknown customer {mask_id(customer_id)!r}")
        return json_response(profile)

    @app.post("/admin/tracks/reload", response_model=m.ReloadOut, tags=["admin"],
              responses=m.error_docs(401, 403, 422))
    async def reload_tracks(request: Request) -> Response:
        from core.yamlio import ScriptError
        from server.security import check_admin

        c = ctx(request)
        check_admin(request.headers.get("authorization"), request.headers.get("x-admin-key"),
                    c.settings.admin_key)
        try:
            tracks = await c.reload_tracks()
        except ScriptError as exc:
            problems = "; ".join(str(p) for p in exc.problems[:5])
            raise Unprocessable(f"scripts are invalid, nothing reloaded: {problems}") from None
        c.generation = await c.sessions.bump_generation()
        log.info("tracks reloaded: %s (generation %d)", ", ".join(tracks), c.generation)
        return json_response({"tracks": tracks, "generation": c.generation})
