"""The WeCom routes inside the real server app (guard, error mapping), on a real SQLite store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dialogue.assembly import Runtime
from huashu.app import create_app
from tests.wecom.conftest import AES_KEY, AGENT_KEY, CORP_ID, TOKEN
from wecom.crypto import WeComCrypto

AUTH = {"Authorization": f"Bearer {AGENT_KEY}"}


@pytest.fixture
def client(kw_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(kw_runtime.settings, runtime=kw_runtime)) as c:
        yield c


def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def signed_post(client: TestClient, plain: str, timestamp: int | None = None, nonce: str = "n1") -> Any:
    c = crypto()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    enc = c.encrypt(plain)
    body = f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    return client.post("/v1/wecom/callback", params={"msg_signature": c.signature(ts, nonce, enc), "timestamp": ts,
                                                     "nonce": nonce}, content=body.encode())


def text_message(sender: str, text: str, msg_id: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")


def test_suggest_contract_shape_and_agent_key(client: TestClient) -> None:
    assert client.post("/v1/wecom/suggest", json={"customer_id": "c_high", "message": "这个多少钱"}).status_code == 401
    wrong = client.post("/v1/wecom/suggest", json={"customer_id": "c_high", "message": "这个多少钱"},
                        headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    r = client.post("/v1/wecom/suggest", json={"customer_id": "c_high", "message": "这个多少钱"}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["intent"] == "ask_price"
    assert len(body["suggestions"]) == 3
    for s in body["suggestions"]:
        assert isinstance(s["text"], str) and s["text"] and isinstance(s["score"], float)
    assert body["context"]["price_sensitivity"] == "high"
    assert body["context"]["phone"] == "138****0001"  # masked, never the number


@pytest.mark.parametrize("payload", [{}, {"customer_id": "c_high"}, {"customer_id": "", "message": "x"},
                                     {"customer_id": "c_high", "message": "x", "k": 0},
                                     {"customer_id": "c_high", "message": "x", "stage": "sleeping"}])
def test_suggest_bad_input_is_4xx(client: TestClient, payload: dict[str, object]) -> None:
    r = client.post("/v1/wecom/suggest", json=payload, headers=AUTH)
    assert 400 <= r.status_code < 500


def test_feedback_writes_tags_exactly_once(client: TestClient, kw_runtime: Runtime) -> None:
    store: Any = kw_runtime.store
    pick = {"customer_id": "c_high", "message": "这个多少钱", "suggestion_id": "price_promo_value",
            "event_id": "evt-0001-abcdef"}
    first = client.post("/v1/wecom/feedback", json=pick, headers=AUTH).json()
    assert first["written"] is True
    assert "price_sensitive" in first["tags"] and first["grade"] == "B"
    again = client.post("/v1/wecom/feedback", json=pick, headers=AUTH).json()
    assert again["written"] is False and again["conversation_id"] == first["conversation_id"]
    chats = store.list_conversations(track="wecom_chat", customer_id="c_high")
    assert len(chats) == 1 and chats[0].channel == "wecom"
    assert chats[0].turns[0].user == "这个多少钱" and chats[0].turns[0].bot[0].clip == "price_promo_value"
    assert "price_sensitive" in store.get_customer("c_high").tags
    # a pick without an outcome keeps what the phone concluded (and its promised time)
    r = client.post("/v1/wecom/feedback", headers=AUTH, json={"customer_id": "c_promised", "message": "这个多少钱",
                                                                "suggestion_id": "price_efficacy"}).json()
    assert r["written"] and r["outcome"] == "promised_to_pay"
    ctx = client.get("/v1/wecom/customers/c_promised", headers=AUTH).json()
    assert ctx["last_call"]["outcome"] == "promised_to_pay" and ctx["last_call"]["promised_pay_time"]
    assert [m["role"] for m in ctx["messages"]] == ["agent"]


def test_feedback_unknown_reply_and_nothing_to_record(client: TestClient) -> None:
    r = client.post("/v1/wecom/feedback", headers=AUTH,
                    json={"customer_id": "c_high", "message": "你好", "suggestion_id": "no_such_reply"})
    assert r.status_code == 404
    r = client.post("/v1/wecom/feedback", headers=AUTH,
                    json={"customer_id": "c_high", "message": "你好", "suggestion_id": "greet_default"})
    assert r.status_code == 200 and r.json()["written"] is False  # a greeting reveals nothing


def test_chat_revealed_outcome_is_written(client: TestClient, kw_runtime: Runtime) -> None:
    r = client.post("/v1/wecom/feedback", headers=AUTH,
                    json={"customer_id": "c_medium", "message": "不需要，别推了", "suggestion_id": "deny_respect"}).json()
    assert r["written"] and r["outcome"] == "not_interested" and r["grade"] == "D"
    customer: Any = kw_runtime.store.get_customer("c_medium")  # type: ignore[union-attr]
    assert customer.last_outcome == "not_interested"


def test_callback_url_verification_needs_no_agent_key(client: TestClient) -> None:
    c = crypto()
    ts = str(int(time.time()))
    echostr = c.encrypt("8675309")
    params = {"msg_signature": c.signature(ts, "abc", echostr), "timestamp": ts, "nonce": "abc", "echostr": echostr}
    r = client.get("/v1/wecom/callback", params=params)
    assert r.status_code == 200 and r.text == "8675309"
    bad = client.get("/v1/wecom/callback", params={**params, "msg_signature": "0" * 40})
    assert bad.status_code == 401
    stale_ts = str(int(time.time()) - 3600)
    stale = {"msg_signature": c.signature(stale_ts, "abc", echostr), "timestamp": stale_ts, "nonce": "abc",
             "echostr": echostr}
    assert client.get("/v1/wecom/callback", params=stale).status_code == 401


def test_callback_message_opt_out_is_honoured_once(client: TestClient, kw_runtime: Runtime) -> None:
    store: Any = kw_runtime.store
    r = signed_post(client, text_message("c_low", "别再给我发了", "7001"))
    assert r.status_code == 200 and r.text == "success"
    again = signed_post(client, text_message("c_low", "别再给我发了", "7001"), nonce="n2")  # WeCom's retry
    assert again.status_code == 200
    assert store.get_customer("c_low").do_not_contact
    chats = store.list_conversations(track="wecom_chat", customer_id="c_low")
    assert len(chats) == 1 and chats[0].outcome == "do_not_contact" and chats[0].grade == "F"
    ctx = client.get("/v1/wecom/customers/c_low", headers=AUTH).json()
    assert [m["text"] for m in ctx["messages"]] == ["别再给我发了"]
    assert ctx["do_not_contact"] is True


def test_callback_message_lands_in_the_sidebar_inbox(client: TestClient) -> None:
    assert signed_post(client, text_message("c_medium", "这个多少钱", "7002")).status_code == 200
    ctx = client.get("/v1/wecom/customers/c_medium", headers=AUTH).json()
    assert ctx["messages"][-1] == {**ctx["messages"][-1], "role": "customer", "text": "这个多少钱", "intent": "ask_price"}


def test_callback_rejects_bad_requests(client: TestClient) -> None:
    stale = signed_post(client, text_message("c_low", "你好", "7003"), timestamp=int(time.time()) - 301)
    assert stale.status_code == 401
    r = client.post("/v1/wecom/callback", params={"msg_signature": "x", "timestamp": "1", "nonce": "n"},
                    content=b"<xml><nope/></xml>")
    assert r.status_code == 400
    r = client.post("/v1/wecom/callback", params={"msg_signature": "x", "timestamp": "1", "nonce": "n"},
                    content=b"\xff\xfe")
    assert r.status_code == 400


def test_callback_not_configured_is_503(kw_runtime: Runtime) -> None:
    kw_runtime.settings = kw_runtime.settings.model_copy(update={"wecom_token": ""})
    with TestClient(create_app(kw_runtime.settings, runtime=kw_runtime)) as c:
        r = c.get("/v1/wecom/callback", params={"msg_signature": "x", "timestamp": "1", "nonce": "n", "echostr": "e"})
    assert r.status_code == 503


def test_sidebar_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/v1/wecom/sidebar", params={"customer_id": "c_high"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/wecom/static/sidebar.js" in page.text and "http" not in page.text.split("<body>")[0].replace(
        'name="viewport"', "")
    js = client.get("/v1/wecom/static/sidebar.js")
    assert js.status_code == 200 and "text/javascript" in js.headers["content-type"]
    assert client.get("/v1/wecom/static/sidebar.css").status_code == 200
    assert client.get("/v1/wecom/static/secret.py").status_code in (401, 404)
    assert client.get("/v1/wecom/customers/c_high").status_code == 401  # the data needs the key


def test_report_route(client: TestClient) -> None:
    assert client.get("/v1/reports/wecom_add_gift").status_code == 401
    r = client.get("/v1/reports/wecom_add_gift", headers=AUTH)
    assert r.status_code == 200 and "活动报告" in r.text and 'id="report-data"' in r.text
    assert client.get("/v1/reports/no_such_track", headers=AUTH).status_code == 404
    assert client.get("/v1/reports/wecom_add_gift", params={"since": "yesterday"}, headers=AUTH).status_code == 422


def test_scripts_reload_rebuilds_the_library_and_keeps_the_inbox(client: TestClient, kw_runtime: Runtime) -> None:
    from dialogue.assembly import load_scripts

    assert signed_post(client, text_message("c_high", "你好", "7100")).status_code == 200
    before = client.app.state.wecom_service  # type: ignore[attr-defined]
    kw_runtime.bundle = load_scripts(kw_runtime.settings)  # what POST /admin/tracks/reload does
    assert client.post("/v1/wecom/suggest", json={"customer_id": "c_high", "message": "你好"}, headers=AUTH).status_code == 200
    after = client.app.state.wecom_service  # type: ignore[attr-defined]
    assert after is not before and after.bundle is kw_runtime.bundle
    assert [m.text for m in after.inbox.messages("c_high")] == ["你好"]
    assert signed_post(client, text_message("c_high", "你好", "7100"), nonce="n9").status_code == 200
    assert len(after.inbox.messages("c_high")) == 1  # the redelivery is still recognised
