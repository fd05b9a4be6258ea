"""Swagger UI (/docs) and ReDoc (/redoc) served from this machine: their JavaScript, CSS and
icon come from the fastapi-offline package's files (ReDoc 2.3.9's standalone bundle), so the API
docs render with the network off. ReDoc's page is FastAPI's without Google Fonts (the bundle's
own font stack instead) and with our icon instead of fastapi.tiangolo.com's. The bundle itself
draws the "API docs by Redocly" logo from cdn.redoc.ly (an <img>, unconditionally, no option
turns it off): the page's Content-Security-Policy allows only this server (plus data:/blob: for
ReDoc's inline styles and search worker), so the browser never makes that request and the
logo's own onError hides it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
REDOC_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:")


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def register(app: FastAPI) -> None:
    """Mount the assets and the page (create the app with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} — Swagger UI",
                                   swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} — ReDoc",
                              redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = REDOC_CSP
        return page
