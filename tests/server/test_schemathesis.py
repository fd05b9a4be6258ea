"""schemathesis against the app's own OpenAPI, every operation, every check: no 5xx, only
documented statuses and content types, responses that match their schemas. A fixed example
budget per operation and mode (hypothesis, derandomized), so a run is repeatable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import Settings
from huashu.app import create_app
from tests.server.conftest import NOW, make_runtime

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25  # per operation and generation mode


def _wecom_api() -> Any:
    """A local stand-in of WeCom's server API (gettoken, ticket/get) for the JS-SDK route."""
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/cgi-bin/gettoken")
    def gettoken(corpid: str, corpsecret: str) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "ok", "access_token": "ACCESS", "expires_in": 7200}

    @api.get("/cgi-bin/ticket/get")
    def ticket(access_token: str, type: str) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "ok", "ticket": "TICKET", "expires_in": 7200}

    return api


def _schema(tmp: Path, **overrides: Any) -> Iterator[Any]:
    from tests.wecom.test_sidebar_jssdk_browser import serve

    for wecom_api in serve(_wecom_api()):
        s = Settings(data_dir=tmp / "data", cache_dir=tmp / "cache", max_calls_per_day=10**6,
                     max_calls_per_week=10**6, max_body_bytes=20_000,
                     # the WeCom routes mounted in the app, configured as deployed
                     wecom_token="tok", wecom_aes_key="a" * 43, wecom_corp_id="corp", wecom_agent_id="1000002",
                     wecom_secret="app-secret", wecom_api_base=wecom_api, **overrides)
        runtime = make_runtime(s)
        app = create_app(s, runtime=runtime, clock=lambda: NOW)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
        runtime.store.close()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def open_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """No credentials, insecure_dev: every handler is reached."""
    yield from _schema(tmp_path_factory.mktemp("open"), insecure_dev=True)


@pytest.fixture(scope="module")
def closed_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Credentials configured, requests unsigned: the guard's answers must be documented too."""
    yield from _schema(tmp_path_factory.mktemp("closed"), insecure_dev=False, gateway_secret="s",
                       agent_keys="k", jambonz_secret="j")


def _fuzz(operation: Any, mode: GenerationMode, examples: int) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def _run_all(api_schema: Any, modes: tuple[GenerationMode, ...], examples: int) -> list[str]:
    tested, failures = [], []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in modes:
            try:
                _fuzz(operation, mode, examples)
            except Unsatisfiable:
                if mode is not GenerationMode.NEGATIVE:
                    raise
                continue  # nothing of this operation can be made invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
        tested.append(operation.label)
    assert not failures, "\n\n".join(failures)
    return tested


@pytest.mark.slow
def test_every_operation_valid_and_invalid_inputs(open_schema: Any) -> None:
    """The pytest plugin is not used (it does not support this pytest): hypothesis drives each
    operation directly, with data that fits the schema and data that does not."""
    tested = _run_all(open_schema, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE), EXAMPLES)
    assert {"POST /v1/calls/{call_id}/events", "POST /jambonz/calls", "POST /v1/wecom/callback",
            "GET /v1/reports/{track}", "POST /v1/wecom/feedback"} <= set(tested) and len(tested) >= 19


@pytest.mark.slow
def test_unsigned_requests_to_a_secured_server(closed_schema: Any) -> None:
    _run_all(closed_schema, (GenerationMode.POSITIVE,), 10)
