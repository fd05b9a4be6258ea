"""The campaign routes inside the real app (huashu.app): signed, idempotent POST /v1/events, the run
status and report page, and the embedded dispatcher of `huashu serve` (in-process broker)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from campaign import tables as ct
from campaign.repo import Touches
from campaign.spec import load
from core.callstatus import unreached_result
from core.settings import Settings
from store import schema as t
from tests.campaign.conftest import customers
from tests.conftest import SCRIPTS
from tests.server.conftest import client_for, signed

SECRET = "s3cret"
AGENT = "agent-key"
CAMPAIGN = """\
name: route_push
crowd: deposit_unpaid
steps:
  - id: invite
    channel: wecom
    text: "{name}您好"
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", gateway_secret=SECRET,
                    agent_keys=AGENT, calling_window="00:00-24:00")


def _post(client: Any, body: dict[str, Any], secret: str | None = SECRET) -> Any:
    raw = json.dumps(body).encode()
    headers = signed(secret, raw) if secret else {"Content-Type": "application/json"}
    return client.post("/v1/events", content=raw, headers=headers)


def test_events_are_signed_and_idempotent(settings: Settings) -> None:
    with client_for(settings) as client:
        store = client.app.state.huashu.runtime.store  # type: ignore[attr-defined]
        store.upsert_customers(customers(2))
        event = {"event_id": "shop-42", "type": "deposit_paid", "customer_id": "c0001",
                 "at": "2026-06-01T10:00:00+08:00"}
        assert _post(client, event, secret=None).status_code == 401
        assert _post(client, event, secret="wrong").status_code == 401
        first = _post(client, event)
        assert first.status_code == 200 and first.json()["duplicate"] is False
        again = _post(client, event)
        assert again.status_code == 200 and again.json() == {"event_id": "shop-42", "duplicate": True}
        with store.engine.connect() as conn:
            paid = conn.execute(sa.select(t.orders.c.deposit_paid).where(t.orders.c.customer_id == "c0001")).scalar()
            tags = conn.execute(sa.select(sa.func.count()).select_from(t.tags)
                                .where(t.tags.c.customer_id == "c0001", t.tags.c.tag == "deposit_paid")).scalar()
        assert paid is True and tags == 1
        bad = _post(client, {"event_id": "x", "type": "teleported", "customer_id": "c0001"})
        assert bad.status_code == 422 and bad.json()["code"] == "unknown_event_type"


class Provider:
    """A WeCom provider double (our provider webhook contract): accepts every message."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                keys = [m["task_id"] for m in body["messages"]]
                provider.keys.extend(keys)
                data = json.dumps({"accepted": keys}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wecom"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.server.shutdown()


def test_embedded_dispatcher_runs_a_campaign_registered_before_the_start(
        settings: Settings, provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from store import open_store

    store = open_store(settings)
    store.upsert_customers(customers(30))
    path = tmp_path / "route_push.yml"
    path.write_text(CAMPAIGN, encoding="utf-8")
    Touches.open(store).register(load(path, SCRIPTS), datetime.now(UTC))
    store.close()
    monkeypatch.setenv("HUASHU_CAMPAIGN_EMBEDDED", "1")
    monkeypatch.setenv("HUASHU_CAMPAIGN_TICK_S", "0.2")
    monkeypatch.setenv("HUASHU_WECOM_WEBHOOK_URL", provider.url)
    monkeypatch.setenv("HUASHU_GATEWAY_SECRET", SECRET)
    with client_for(settings) as client:
        deadline = time.monotonic() + 30
        while len(set(provider.keys)) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(set(provider.keys)) == [f"route_push:invite:c{i:04d}" for i in range(30)]
        status = client.get("/v1/campaigns/route_push/status", headers=signed(SECRET, b""))
        assert status.status_code == 200
        step = status.json()["steps"][0]
        assert (step["step"], step["touches"], step["sent"]) == ("invite", 30, 30)
        assert client.get("/v1/campaigns/route_push/status").status_code == 401
        page = client.get("/v1/reports/campaigns/route_push", headers={"Authorization": f"Bearer {AGENT}"})
        assert page.status_code == 200 and "<table id=steps>" in page.text and ">30<" in page.text
        assert client.get("/v1/campaigns/nope/status", headers=signed(SECRET, b"")).status_code == 404


CALL_STEP = """\
name: status_push
crowd: deposit_unpaid
steps:
  - id: call
    channel: call
    track: presale_deposit
"""


def test_jambonz_campaign_status_records_a_never_answered_call_once_and_applies_the_retry_rules(
        tmp_path: Path, db_url: str) -> None:
    """jambonz's status hook for calls the runner placed: busy, unanswered and failed calls (SIP
    cause) are stored once as `unreachable` with their reason, and the touch follows its rule."""
    from campaign.runner import Runner
    from server.security import sign
    from tests.campaign.conftest import Recorder, at, make_settings

    jsecret = "jambonz-secret"
    settings = make_settings(tmp_path, db_url, gateway_secret=SECRET, agent_keys=AGENT, jambonz_secret=jsecret,
                             calling_window="00:00-24:00")
    with client_for(settings) as client:
        store = client.app.state.huashu.runtime.store  # type: ignore[attr-defined]
        store.upsert_customers(customers(7))
        path = tmp_path / "status_push.yml"
        path.write_text(CALL_STEP, encoding="utf-8")
        touches = Touches.open(store)
        now = at("2026-06-01T14:00")
        touches.register(load(path, SCRIPTS), now)
        calls = Recorder()
        runner = Runner(touches, lambda: now, sms=calls, wecom=calls, calls=calls)  # places; the app's runner hears
        for touch_id in runner.tick(now):
            runner.execute(touch_id)
        assert len([k for ch, k in calls.requests if ch == "call"]) == 7

        def status(customer: str, call_status: str, sip: int, **extra: Any) -> Any:
            body = json.dumps({"call_sid": f"jb-{customer}", "direction": "outbound", "call_status": call_status,
                               "sip_status": sip, "from": "4008208820", "to": "13800000000", **extra,
                               "customerData": {"huashu_call_id": f"status_push:call:{customer}",
                                                "customer_id": customer, "track": "presale_deposit"}}).encode()
            r = client.post("/jambonz/campaign-status", content=body,
                            headers={"Content-Type": "application/json", "Jambonz-Signature": sign(jsecret, body)})
            assert r.status_code == 200, r.text
            return r.json()

        assert status("c0000", "ringing", 180) == {"ignored": True}
        cases = {"c0000": ("busy", 486, {}, "retry", "busy"), "c0001": ("failed", 404, {}, "unreachable", "invalid_number"),
                 "c0002": ("failed", 480, {}, "retry", "no_answer"), "c0003": ("failed", 503, {}, "retry", "no_answer"),
                 "c0004": ("completed", 200, {"duration": 0}, "retry", "no_answer"),
                 "c0005": ("no-answer", 487, {}, "retry", "no_answer")}
        for customer, (call_status, sip, extra, outcome, _tag) in cases.items():
            assert status(customer, call_status, sip, **extra)["touch"] == outcome, customer
        assert status("c0001", "failed", 404)["duplicate"] is True  # jambonz repeating the hook
        # Answered, but the conversation (stored by server.jambonz under jambonz' call_sid) met a
        # voicemail greeting: the touch follows the voicemail rule (SMS instead), not `answered`.
        store.write_result(unreached_result("jb-c0006", "c0006", "presale_deposit", "voicemail", now))
        assert status("c0006", "completed", 200, duration=25)["touch"] == "fallback_sms"
        for customer, (*_, tag) in cases.items():
            rows = [(r.conversation_id, r.outcome, r.grade, tuple(r.tags)) for r in store.list_conversations(customer_id=customer)]
            assert rows == [(f"status_push:call:{customer}", "unreachable", "E", ("unreachable", tag))], customer
        with store.engine.connect() as conn:
            touch = {r.customer_id: r for r in conn.execute(sa.select(ct.touches))}
        assert (touch["c0001"].status, touch["c0001"].reason) == ("unreachable", "invalid_number")  # never again
        assert (touch["c0000"].state, touch["c0000"].reason) == ("pending", "busy")  # busy: 30 minutes later
        assert (touch["c0003"].state, touch["c0003"].reason) == ("pending", "sip_503")  # the `failed` rule
        assert store.check_contact("c0001", datetime.now(UTC)) == "invalid_number"  # the gate read it
