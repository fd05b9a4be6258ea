"""The sidebar inside WeCom's chat toolbar, in real headless Chromium: the JS-SDK flow from
agentConfig (signed by our server with a ticket fetched from a local stand-in of WeCom's API)
to getCurExternalContact → the imported customer, suggestions at once for the message the
WeCom callback delivered, 发送 through sendChatMessage. `wx` is a test double shaped like
WeCom's documented API (tests/wecom/wx_double.js); a screenshot lands in docs/img/."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from core.customers import CustomerRecord
from core.settings import Settings
from dialogue.assembly import Runtime
from huashu.app import create_app
from store.sql import SqlStore
from tests.conftest import ROOT
from tests.live import CHROMIUM, CHROMIUM_ARGS, serve
from tests.wecom.conftest import AES_KEY, AGENT_KEY, CORP_ID, TOKEN
from wecom.callback import CallbackMessage

SHOTS = ROOT / "test-output"
TICKET = "agent-config-ticket-from-the-stand-in"
AGENT_ID = "1000002"
SECRET = "sidebar-app-secret"


@pytest.fixture
def wecom_api() -> Iterator[tuple[str, list[str]]]:
    """A local stand-in of WeCom's server API: gettoken and ticket/get, as documented."""
    calls: list[str] = []
    app = FastAPI()

    @app.get("/cgi-bin/gettoken")
    def gettoken(corpid: str, corpsecret: str) -> dict[str, Any]:
        calls.append("gettoken")
        if (corpid, corpsecret) != (CORP_ID, SECRET):
            return {"errcode": 40001, "errmsg": "invalid credential"}
        return {"errcode": 0, "errmsg": "ok", "access_token": "ACCESS", "expires_in": 7200}

    @app.get("/cgi-bin/ticket/get")
    def ticket(access_token: str, type: str) -> dict[str, Any]:
        calls.append(f"ticket/{type}")
        if access_token != "ACCESS" or type != "agent_config":
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        return {"errcode": 0, "errmsg": "ok", "ticket": TICKET, "expires_in": 7200}

    for url in serve(app):
        yield url, calls


@pytest.fixture
def wsettings(tmp_path: Path, wecom_api: tuple[str, list[str]]) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", phone_key="wecom-tests",
                    wecom_token=TOKEN, wecom_aes_key=AES_KEY, wecom_corp_id=CORP_ID, agent_keys=AGENT_KEY,
                    wecom_agent_id=AGENT_ID, wecom_secret=SECRET, wecom_api_base=wecom_api[0])


@pytest.fixture
def sidebar_app(kw_runtime: Runtime) -> Iterator[tuple[str, FastAPI]]:
    assert isinstance(kw_runtime.store, SqlStore)
    kw_runtime.store.upsert_customers([CustomerRecord(
        "w_wang", "13800000099", name="王芳", gender="F", external_userid="wmWangFang001",
        persona_group="白领女性", price_sensitivity="high", deposit_paid=True, deposit_product="玻尿酸水光精华",
        deposit_amount=50.0, purchase_count=1)])
    app = create_app(kw_runtime.settings, runtime=kw_runtime)
    for url in serve(app):
        yield url, app


@pytest.mark.browser
def test_sidebar_follows_the_jssdk_flow_from_agentconfig_to_sendchatmessage(
        sidebar_app: tuple[str, FastAPI], wecom_api: tuple[str, list[str]], kw_runtime: Runtime) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium (CI: .ci/run installs it)")
    import httpx
    from playwright.sync_api import expect, sync_playwright

    base_url, app = sidebar_app
    auth = {"Authorization": f"Bearer {AGENT_KEY}"}
    assert httpx.get(f"{base_url}/v1/wecom/contacts/wmWangFang001", headers=auth).json() == {
        "external_userid": "wmWangFang001", "customer_id": "w_wang", "mapped": True}
    # The customer writes in the chat: WeCom's callback (decrypted) delivers it to the service.
    app.state.wecom_service.on_message(CallbackMessage(
        {"ToUserName": CORP_ID, "FromUserName": "wmWangFang001", "MsgType": "text", "Content": "这个多少钱",
         "MsgId": "7001", "CreateTime": "1780000000"}, ""))
    double = {"ticket": TICKET, "corpid": CORP_ID, "agentid": AGENT_ID, "userId": "wmWangFang001"}
    SHOTS.mkdir(exist_ok=True)
    shot = SHOTS / "wecom-sidebar-jssdk.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 420, "height": 1000}, locale="zh-CN",
                                          timezone_id="Asia/Shanghai")
            context.add_init_script(f"window.__WX_DOUBLE__ = {json.dumps(double)};")
            context.add_init_script(path=str(ROOT / "tests" / "wecom" / "wx_double.js"))
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base_url) else outside.append(r.url))
            page.goto(f"{base_url}/v1/wecom/sidebar?from=chat_toolbar#key={AGENT_KEY}")
            expect(page.locator("#name")).to_have_text("王芳")  # no customer_id in the address
            assert page.evaluate("window.__wxDouble.configured") is True  # our signature was valid
            assert page.evaluate("window.__wxDouble.calls.slice(0, 2)") == ["agentConfig", "getCurExternalContact"]
            # Suggestions for the callback's message, at once, intent in Chinese.
            cards = page.locator(".suggestion")
            expect(cards.first).to_be_visible()
            expect(page.locator("#intent")).to_contain_text("问价格")
            expect(page.locator("#message")).to_have_value("这个多少钱")
            texts = cards.locator(".text").all_inner_texts()
            assert texts and all("王芳" not in t for t in texts)  # never the full name
            expect(page.locator("#tags")).not_to_contain_text("price_sensitive")
            page.screenshot(path=str(shot), full_page=True)
            cards.nth(0).locator("button.send").click()
            expect(page.locator("#toast")).to_contain_text("已发送")
            sent = page.evaluate("window.__wxDouble.sent")
            assert sent == [{"msgtype": "text", "text": {"content": texts[0]}}]
            assert not errors, errors
            assert not outside, outside
        finally:
            browser.close()
    assert wecom_api[1] == ["gettoken", "ticket/agent_config"]  # fetched once, through the stand-in
    assert kw_runtime.store is not None
    customer: Any = kw_runtime.store.get_customer("w_wang")
    assert "price_sensitive" in customer.tags  # the sent reply was written back
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "img" / "wecom-sidebar.png")
