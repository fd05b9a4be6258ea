"""/docs (Swagger UI) and /redoc (ReDoc) render in a real headless Chromium with every request
that leaves the server refused: the assets come from the fastapi-offline package, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from huashu.app import create_app
from tests.conftest import ROOT
from tests.live import CHROMIUM, CHROMIUM_ARGS, serve
from tests.server.conftest import make_runtime

SHOTS = ROOT / "test-output"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    runtime = make_runtime(settings)
    yield from serve(create_app(settings, runtime=runtime))
    if runtime.store is not None:
        runtime.store.close()


def test_docs_pages_reference_no_outside_host(base_url: str) -> None:
    import httpx

    for page in ("/docs", "/redoc"):
        html = httpx.get(base_url + page).text
        assert "cdn." not in html and "https://" not in html and "fonts.googleapis" not in html, page
    assert httpx.get(base_url + "/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(base_url + "/docs-assets/redoc.standalone.js").status_code == 200



@contextmanager
def offline_page(base_url: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A Chromium page that may reach only `base_url`; yields (page, page errors, outside requests)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium (CI: .ci/run installs it)")
    from playwright.sync_api import Route, sync_playwright

    SHOTS.mkdir(exist_ok=True)
    outside: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.route("**/*", offline)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors, outside
        finally:
            browser.close()


@pytest.mark.browser
def test_docs_render_with_the_network_off(base_url: str) -> None:
    from playwright.sync_api import expect

    with offline_page(base_url) as (page, errors, outside):
        page.goto(f"{base_url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("huashu")
        expect(page.locator(".opblock-summary-path", has_text="/v1/calls").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "api-docs-swagger.png"))
        page.locator(".opblock-summary-path", has_text="/v1/calls").first.click()
        expect(page.locator(".opblock-body").first).to_be_visible()  # the operation opens
        assert not errors, errors
        assert not outside, outside


@pytest.mark.browser
def test_redoc_renders_the_api_title_with_the_network_off(base_url: str) -> None:
    from playwright.sync_api import expect

    with offline_page(base_url) as (page, errors, outside):
        blocked: list[str] = []  # what the page's CSP stopped before it left the browser
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{base_url}/redoc")
        expect(page.locator(".api-info h1")).to_contain_text("huashu")  # the API title, from /openapi.json
        expect(page.get_by_role("menuitem", name="campaigns")).to_be_visible()  # the tags' menu
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / "api-docs-redoc.png"))
        assert not errors, errors
        assert not outside, outside
        assert all("cdn.redoc.ly" in b for b in blocked), blocked  # only the bundle's logo
