"""WeCom JS-SDK signing: WeCom's documented example, and the ticket client against a local
stand-in of WeCom's API (httpx MockTransport shaped like its documented answers)."""

from __future__ import annotations

import httpx
import pytest

from wecom.jssdk import JS_APIS, TicketClient, WecomApiError, signature

# The example of WeCom's "JS-SDK使用权限签名算法" appendix.
DOC_TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"


def test_signature_matches_wecoms_documented_example() -> None:
    assert signature(DOC_TICKET, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value") \
        == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    # The fragment is not signed (the page's address after # changes without a reload).
    assert signature(DOC_TICKET, "Wm3WZYTPz0wzccnW", "1414587457", "http://mp.weixin.qq.com?params=value#key=1") \
        == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


class FakeWecom:
    """WeCom's gettoken and ticket/get endpoints, counting calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        q = request.url.params
        if request.url.path == "/cgi-bin/gettoken":
            if (q["corpid"], q["corpsecret"]) != ("ww123", "s3cret"):
                return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "access_token": "TOKEN", "expires_in": 7200})
        if request.url.path == "/cgi-bin/ticket/get":
            assert (q["access_token"], q["type"]) == ("TOKEN", "agent_config")
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "ticket": DOC_TICKET, "expires_in": 7200})
        return httpx.Response(404, json={"errcode": 404, "errmsg": "not found"})


def test_ticket_is_fetched_once_cached_and_refreshed_before_expiry() -> None:
    wecom = FakeWecom()
    now = [1_000_000.0]
    client = TicketClient("https://wecom.test", "ww123", "s3cret", transport=httpx.MockTransport(wecom),
                          clock=lambda: now[0])
    first = client.agent_config("1000002", "https://shop.test/v1/wecom/sidebar?x=1#key=k")
    again = client.agent_config("1000002", "https://shop.test/v1/wecom/sidebar?x=1")
    assert wecom.calls == ["/cgi-bin/gettoken", "/cgi-bin/ticket/get"]  # cached
    assert first.signature == signature(DOC_TICKET, first.nonce, first.timestamp, "https://shop.test/v1/wecom/sidebar?x=1")
    assert first.nonce != again.nonce and first.to_json()["jsApiList"] == list(JS_APIS)
    assert set(first.to_json()) == {"corpid", "agentid", "timestamp", "nonceStr", "signature", "jsApiList"}
    now[0] += 7200 - 200  # inside the refresh margin
    client.agent_config("1000002", "https://shop.test/")
    assert wecom.calls[2:] == ["/cgi-bin/gettoken", "/cgi-bin/ticket/get"]


def test_wecom_errors_are_reported_not_cached() -> None:
    client = TicketClient("https://wecom.test", "ww123", "wrong", transport=httpx.MockTransport(FakeWecom()))
    with pytest.raises(WecomApiError, match="40001"):
        client.agent_ticket()


def test_polite_address_uses_surname_and_recorded_gender_only() -> None:
    from wecom.context import polite_address

    assert polite_address("王芳", "F") == "王女士"
    assert polite_address("李强", "M") == "李先生"
    assert polite_address("欧阳娜娜", "F") == "欧阳女士"
    assert polite_address("刘娟", "") == "亲"  # gender unknown: no guess, and never the full name
    assert polite_address("", "F") == "亲"
