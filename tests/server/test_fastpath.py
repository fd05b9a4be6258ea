"""The thin ASGI layer that answers call start and events (server/fastpath.py): it must answer
exactly as the framework routes would, and leave every other request to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from server.fastpath import FastCalls
from tests.server.conftest import TRACK, client_for, context

START = {"call_id": "fp-1", "customer_id": "cust-fp", "track": TRACK}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")


def _requests(client: TestClient) -> list[Any]:
    """A call's start and events, then every kind of bad request, through `client`."""
    out = [client.post("/v1/calls", json=START)]
    out += [client.post("/v1/calls/fp-1/events", json={"seq": s, "type": "speech", "text": t})
            for s, t in [(1, "喂，你好"), (2, "你是机器人吗")]]
    out += [client.post("/v1/calls/fp-1/events", content=b"{not json"),
            client.post("/v1/calls/fp-1/events", json={"seq": -1, "type": "speech"}),
            client.post("/v1/calls/fp-1/events", json={"seq": 3, "type": "dtmf"}),
            client.post("/v1/calls/fp-1/events", content="\xff".encode("latin-1")),
            client.post("/v1/calls/nobody/events", json={"seq": 1, "type": "silence"}),
            client.post("/v1/calls", json={**START, "track": "no_such_track"})]
    return out


def test_fast_and_framework_routes_answer_the_same_bytes(settings: Settings) -> None:
    """Same start and events through the fast layer and through FastAPI's own routes (the layer
    removed from a second app): identical bodies and statuses, errors included."""
    with client_for(settings) as client:
        assert any(m.cls is FastCalls for m in client.app.user_middleware), "the fast layer is installed"  # type: ignore[attr-defined]
        fast = _requests(client)
        replays = [client.post("/v1/calls", json=START),
                   client.post("/v1/calls/fp-1/events", json={"seq": 1, "type": "speech", "text": "x"})]
        assert [r.content for r in replays] == [fast[0].content, fast[1].content]
        assert [r.status_code for r in fast] == [200, 200, 200, 400, 422, 422, 400, 200, 422]
    with client_for(settings.model_copy(update={"data_dir": settings.data_dir.parent / "data2"})) as plain:
        plain.app.user_middleware = [m for m in plain.app.user_middleware  # type: ignore[attr-defined]
                                     if m.cls is not FastCalls]
        plain.app.middleware_stack = plain.app.build_middleware_stack()  # type: ignore[attr-defined]
        slow = _requests(plain)
    assert [(r.status_code, r.content) for r in fast] == [(r.status_code, r.content) for r in slow]
    assert all(r.headers["content-type"] == "application/json" for r in fast)


def test_other_methods_and_paths_still_reach_the_framework(settings: Settings) -> None:
    with client_for(settings) as client:
        assert client.get("/v1/calls/fp-1/events").status_code == 405
        assert client.post("/v1/calls/fp-1/events/more", json={}).status_code == 404
        assert client.get("/healthz").status_code == 200
        before = _event_count(client.get("/metrics").text)
        client.post("/v1/calls", json=START)
        client.post("/v1/calls/fp-1/events", json={"seq": 1, "type": "silence"})
        assert _event_count(client.get("/metrics").text) == before + 1, \
            "the fast layer records callback latency as the routes did"


def _event_count(metrics: str) -> float:
    name = 'huashu_callback_latency_seconds_count{endpoint="event"}'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))


def test_the_signature_is_checked_before_the_fast_layer(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(gateway_secret="s3cret")
    with client_for(settings) as client:
        r = client.post("/v1/calls", json=START)
        assert r.status_code == 401
        assert context(client).runtime.store.get_customer("cust-fp") is None  # type: ignore[union-attr]
