"""Call placers: the jambonz createCall body against jambonz's published schema (api-server swagger),
the signed originate webhook, and `gateway-sim --serve`'s gateway playing a customer against a real
server (uvicorn, keyword NLU) whose result comes back as a call_result event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from campaign import behaviour as bh
from campaign.channels import CallRequest, PlaceError
from campaign.gateways import JambonzPlacer, WebhookPlacer, jambonz_body, jambonz_result
from campaign.repo import Touches
from campaign.simgateway import SimGateway
from campaign.spec import load
from core.settings import Settings
from server.security import verify
from tests.campaign.conftest import customers
from tests.conftest import SCRIPTS
from tests.live import serve
from tests.server.conftest import make_runtime

SCHEMA = json.loads((Path(__file__).parent / "data" / "jambonz_create_call.schema.json").read_text())
CALL = CallRequest("push:call:c0001", "c0001", "presale_deposit", {"product": "DHA"}, "+8613800000001",
                   "push", "call")


def test_jambonz_body_matches_the_published_schema() -> None:
    body = jambonz_body(CALL, application_sid="2531329f-fb09-4ef7-887e-84e648214436", caller="+862150001234",
                        status_hook="https://huashu.example/jambonz/campaign-status", trunk="carrier-a")
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    assert not list(validator.iter_errors(body))
    broken = {**body, "to": {"number": "+8613800000001"}}  # the schema requires to.type
    assert list(validator.iter_errors(broken))


def test_jambonz_placer_posts_to_the_accounts_calls_route() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "2531329f-fb09-4ef7-887e-84e648214436"})
    placer = JambonzPlacer("https://jambonz.example/api", "acc-1", "key-1", "app-1", "+862150001234",
                           "https://huashu.example/jambonz/campaign-status",
                           client=httpx.Client(transport=httpx.MockTransport(handler)))
    placer.place(CALL)
    assert seen[0].url.path == "/api/v1/Accounts/acc-1/Calls"
    assert seen[0].headers["authorization"] == "Bearer key-1"
    assert seen[0].headers["idempotency-key"] == CALL.call_id
    assert json.loads(seen[0].content)["tag"]["huashu_call_id"] == CALL.call_id
    assert jambonz_result({"call_status": "busy", "tag": {"huashu_call_id": CALL.call_id}}) == \
        (CALL.call_id, "busy", "busy")
    assert jambonz_result({"call_status": "failed", "sip_status": 404,
                           "tag": {"huashu_call_id": CALL.call_id}}) == (CALL.call_id, "unreachable", "invalid_number")
    assert jambonz_result({"call_status": "ringing", "tag": {"huashu_call_id": CALL.call_id}}) is None


def test_webhook_placer_signs_and_maps_refusals() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(422 if b"c0002" in request.content else 202)
    placer = WebhookPlacer("https://gw.example/originate", "s3cret", "https://huashu.example/v1/events",
                           client=httpx.Client(transport=httpx.MockTransport(handler)))
    placer.place(CALL)
    verify(seen[0].headers["x-huashu-signature"], seen[0].content, ["s3cret"])
    assert json.loads(seen[0].content)["callback_url"] == "https://huashu.example/v1/events"
    with pytest.raises(PlaceError, match="gateway_422"):
        placer.place(CallRequest("push:call:c0002", "c0002", "presale_deposit"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The real app on uvicorn (keyword classifier instead of the trained model)."""
    from huashu.app import create_app

    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", gateway_secret="s3cret",
                        agent_keys="k", calling_window="00:00-24:00")
    runtime = make_runtime(settings)
    for url in serve(create_app(settings, runtime=runtime)):
        yield url, runtime.store
    assert runtime.store is not None
    runtime.store.close()


def test_sim_gateway_plays_customers_against_the_server(server: tuple[str, Any], tmp_path: Path) -> None:
    url, store = server
    store.upsert_customers(customers(40))
    answers = next(f"c{i:04d}" for i in range(40) if bh.call(0, f"c{i:04d}", 1).result == "answered")
    busy = next(f"c{i:04d}" for i in range(40) if bh.call(0, f"c{i:04d}", 1).result == "busy")
    path = tmp_path / "push.yml"
    path.write_text("name: push\ncrowd: deposit_unpaid\nsteps:\n  - id: call\n    channel: call\n"
                    "    track: wecom_add_gift\n", encoding="utf-8")
    touches = Touches.open(store)
    touches.register(load(path, SCRIPTS), datetime.now(UTC))
    from campaign.runner import Runner

    calls: list[CallRequest] = []

    class Collect:
        include_phone = False

        def place(self, call: CallRequest) -> None:
            calls.append(call)
    runner = Runner(touches, lambda: datetime.now(UTC), calls=Collect())
    for touch_id in runner.tick():
        runner.execute(touch_id)
    chosen = [c for c in calls if c.customer_id in (answers, busy)]

    async def play() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            gw = SimGateway(client, "s3cret", seed=0, callback_url=f"{url}/v1/events")
            for c in chosen:
                assert gw.accept(c.call_id, c.customer_id, c.track, {}, "")
                assert not gw.accept(c.call_id, c.customer_id, c.track, {}, "")  # same key: no second call
            while gw.tasks:
                await asyncio.sleep(0.05)
            return gw.calls
    played = asyncio.run(play())
    assert played[f"push:call:{answers}"]["result"] == ("answered", "")
    assert played[f"push:call:{busy}"]["result"] == ("busy", "")
    lines = {x["customer_id"]: x for x in touches.touch_lines("push")}
    assert lines[answers]["status"] == "answered"
    assert [r.conversation_id for r in store.list_conversations(customer_id=answers)] == [f"push:call:{answers}"]
    assert touches.get(touches.by_key(f"push:call:{busy}").id).state == "pending"  # type: ignore[union-attr]
