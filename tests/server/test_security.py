"""Signatures, keys and log masking: a refused request has no effect."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest

from core.settings import Settings
from server import security
from server.errors import Unauthorized
from server.logs import MaskPhones
from tests.server.conftest import TRACK, client_for, record, signed

NEW, OLD = "new-secret", "old-secret"
START = json.dumps({"call_id": "c-1", "customer_id": "cust-1", "track": TRACK}).encode()


def _flip(body: bytes) -> bytes:
    i = body.index(b"cust-1")
    return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(gateway_secret=f"{NEW},{OLD}")


def test_both_rotation_secrets_verify(settings: Settings) -> None:
    with client_for(settings) as client:
        assert client.post("/v1/calls", content=START, headers=signed(OLD, START)).status_code == 200
        body = json.dumps({"seq": 1, "type": "speech", "text": "喂"}).encode()
        r = client.post("/v1/calls/c-1/events", content=body, headers=signed(NEW, body))
        assert r.status_code == 200
        assert client.get("/v1/customers/cust-1", headers=signed(NEW, b"")).status_code == 200


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "flipped_byte", "old_301s", "future_301s",
                                  "garbage", "no_v1"])
def test_bad_signatures_are_401_with_no_effect(settings: Settings, case: str) -> None:
    with client_for(settings) as client:
        _check_refused(client, case)


def _check_refused(client, case: str) -> None:
    now = int(time.time())
    headers = {
        "missing": {"Content-Type": "application/json"},
        "wrong_secret": signed("other", START),
        "flipped_byte": signed(NEW, START),
        "old_301s": signed(NEW, START, now - 301),
        "future_301s": signed(NEW, START, now + 301),
        "garbage": {"X-Huashu-Signature": "hello"},
        "no_v1": {"X-Huashu-Signature": f"t={now}"},
    }[case]
    body = _flip(START) if case == "flipped_byte" else START
    r = client.post("/v1/calls", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["detail"]
    assert record(client, "c-1") is None
    store = client.app.state.huashu.runtime.store
    assert store.get_customer("cust-1") is None and store.get_customer("cust-0") is None
    assert 'huashu_auth_failures_total{area="v1_calls"} 1.0' in client.get("/metrics").text


def test_a_signed_event_with_a_bad_signature_moves_nothing(settings: Settings) -> None:
    with client_for(settings) as client:
        client.post("/v1/calls", content=START, headers=signed(NEW, START))
        before = record(client, "c-1")
        body = json.dumps({"seq": 1, "type": "speech", "text": "别再打了"}).encode()
        for headers in (signed(NEW, body, int(time.time()) - 301), signed("x", body), {}):
            assert client.post("/v1/calls/c-1/events", content=body, headers=headers).status_code == 401
        assert client.post("/v1/calls/c-1/events", content=body[:-1] + b" }",
                           headers=signed(NEW, body)).status_code == 401
        assert record(client, "c-1") == before
        assert client.get("/v1/customers/cust-1").status_code == 401  # GET is signed too (empty body)
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_within_the_window_is_accepted() -> None:
    body = b'{"a":1}'
    security.verify(security.sign("k", body, 1000), body, ["k"], now=1300)
    with pytest.raises(Unauthorized):
        security.verify(security.sign("k", body, 1000), body, ["k"], now=1301)


def test_agent_key_guards_wecom_paths(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings(agent_keys="a1,a2")) as client:
        r = client.post("/v1/wecom/suggest", json={"customer_id": "x", "message": "多少钱"})
        assert r.status_code == 401
        ok = client.post("/v1/wecom/suggest", json={"customer_id": "x", "message": "多少钱"},
                         headers={"Authorization": "Bearer a2"})
        assert ok.status_code != 401


def test_phone_numbers_are_masked_in_log_lines(make_settings: Callable[..., Settings],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(MaskPhones())
    caplog.set_level(logging.INFO)
    with client_for(make_settings()) as client:
        start = {"call_id": "call-13812345678", "customer_id": "13987654321", "track": TRACK}
        assert client.post("/v1/calls", json=start).status_code == 200
        client.post("/v1/calls/call-13812345678/events", json={"seq": 1, "type": "hangup"})
    assert caplog.records, "the server logs calls"
    assert "13812345678" not in caplog.text and "13987654321" not in caplog.text
    assert "138****5678" in caplog.text
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", ("13812345678",), None)
    MaskPhones().filter(record)
    assert record.getMessage() == "phone 138****5678"


def test_wecom_callback_and_sidebar_shell_need_no_agent_key(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings(agent_keys="a1")) as client:
        assert client.get("/v1/wecom/sidebar").status_code == 200
        assert client.get("/v1/wecom/callback").status_code != 401  # WeCom signs it (msg_signature)
        assert client.get("/v1/reports/wecom_add_gift").status_code == 401
