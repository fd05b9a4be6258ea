"""The sidebar page in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright):
load it for a customer, type the customer's message, see live suggestions, copy one (written back),
and leave a screenshot in test-output/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dialogue.assembly import Runtime
from huashu.app import create_app
from tests.conftest import ROOT
from tests.live import CHROMIUM, CHROMIUM_ARGS, serve
from tests.wecom.conftest import AGENT_KEY

SHOTS = ROOT / "test-output"


@pytest.fixture
def base_url(real_runtime: Runtime) -> Iterator[str]:
    yield from serve(create_app(real_runtime.settings, runtime=real_runtime))


@pytest.mark.browser
def test_sidebar_shows_profile_last_call_and_live_suggestions(base_url: str, real_runtime: Runtime) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium (CI: .ci/run installs it)")
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(exist_ok=True)
    shot = SHOTS / "wecom-sidebar.png"
    shot.unlink(missing_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 420, "height": 1000}, locale="zh-CN",
                                          timezone_id="Asia/Shanghai")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base_url) else external.append(r.url))
            page.goto(f"{base_url}/v1/wecom/sidebar?customer_id=c_promised#key={AGENT_KEY}")
            expect(page.locator("#name")).to_have_text("刘娟")
            assert page.url.endswith("customer_id=c_promised")  # the key left the address bar
            expect(page.locator("#keybox")).to_be_hidden()
            expect(page.locator("#dnc")).to_be_hidden()
            expect(page.locator("#lastcall")).to_contain_text("7月7日 14:00")  # the call, in China time
            expect(page.locator("#phone")).to_have_text("138****0004")
            expect(page.locator("#badges")).to_contain_text("白领女性")
            expect(page.locator("#badges")).to_contain_text("大促中")
            expect(page.locator("#lastcall")).to_contain_text("承诺付款")
            expect(page.locator("#lastcall")).to_contain_text("7月9日晚上8点")
            expect(page.locator("#order")).to_contain_text("玻尿酸水光精华")

            page.locator("#message").fill("这个多少钱")
            cards = page.locator(".suggestion")
            expect(cards).to_have_count(3)
            expect(page.locator("#intent")).to_contain_text("问价格")  # the intent in Chinese
            texts = cards.locator(".text").all_inner_texts()
            assert all("349" in t for t in texts)  # the product's price, filled in
            assert all("{" not in t for t in texts)
            page.screenshot(path=str(shot), full_page=True)

            cards.nth(0).locator("button.copy").click()
            expect(page.locator("#toast")).to_contain_text("问过价格")
            feedback: dict[str, Any] = page.evaluate("JSON.parse(document.body.dataset.lastFeedback)")
            assert feedback["written"] is True and "price_sensitive" in feedback["tags"]
            expect(page.locator("#tags")).to_contain_text("问过价格")
            assert not errors, errors
            assert not external, external  # no CDN, nothing leaves the machine
        finally:
            browser.close()
    customer: Any = real_runtime.store.get_customer("c_promised")  # type: ignore[union-attr]
    assert "price_sensitive" in customer.tags and customer.last_outcome == "promised_to_pay"
    assert shot.stat().st_size > 10_000
