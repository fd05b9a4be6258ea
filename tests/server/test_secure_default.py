"""Secure by default: an area whose credential is unset is closed, unless insecure_dev says this
is a local demo (and then every start says so, loudly); `huashu serve` refuses to start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.server.conftest import TRACK, client_for, signed

START = {"call_id": "c-1", "customer_id": "cust-1", "track": TRACK}
SUGGEST = {"customer_id": "cust-1", "message": "多少钱"}


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(**{"data_dir": tmp_path / "data", "cache_dir": tmp_path / "cache", "insecure_dev": False,
                       **overrides})


def test_nothing_configured_closes_every_protected_area(tmp_path: Path) -> None:
    with client_for(_settings(tmp_path)) as client:
        for method, path, body in [("POST", "/v1/calls", START), ("GET", "/v1/customers/cust-1", None),
                                   ("POST", "/v1/wecom/suggest", SUGGEST), ("GET", "/v1/wecom/customers/cust-1", None),
                                   ("GET", f"/v1/reports/{TRACK}", None),
                                   ("POST", "/jambonz/calls", {"call_sid": "jb-1", "customerData": START})]:
            r = client.request(method, path, json=body)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["code"] == "not_configured" and "--insecure-dev" in r.json()["detail"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/wecom/sidebar").status_code == 200  # a static shell, no data
        assert client.app.state.huashu.runtime.store.get_customer("cust-1") is None  # type: ignore[attr-defined]


def test_customer_profiles_take_a_signature_or_an_agent_key(tmp_path: Path) -> None:
    with client_for(_settings(tmp_path, gateway_secret="s", agent_keys="k")) as client:
        assert client.get("/v1/customers/cust-1").status_code == 401
        assert client.get("/v1/customers/cust-1", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/v1/customers/cust-1", headers={"Authorization": "Bearer k"}).status_code == 404
        assert client.get("/v1/customers/cust-1", headers=signed("s", b"")).status_code == 404
        assert client.post("/v1/wecom/suggest", json=SUGGEST).status_code == 401
        assert client.post("/v1/wecom/suggest", json=SUGGEST, headers={"Authorization": "Bearer k"}).status_code == 200


def test_only_a_gateway_secret_keeps_the_agent_area_closed(tmp_path: Path) -> None:
    with client_for(_settings(tmp_path, gateway_secret="s")) as client:
        body = b'{"call_id":"c-1","customer_id":"cust-1","track":"%s"}' % TRACK.encode()
        assert client.post("/v1/calls", content=body, headers=signed("s", body)).status_code == 200
        assert client.get("/v1/customers/cust-1", headers=signed("s", b"")).status_code == 200
        r = client.post("/v1/wecom/suggest", json=SUGGEST, headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "HUASHU_AGENT_KEYS" in r.json()["detail"]


def test_insecure_dev_opens_and_warns_at_every_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="huashu.server")
    for i in range(2):
        with client_for(_settings(tmp_path, insecure_dev=True)) as client:
            assert client.post("/v1/calls", json={**START, "call_id": f"c-{i}", "customer_id": f"cust-{i}"}).status_code == 200
            assert client.post("/v1/wecom/suggest", json=SUGGEST).status_code == 200
    warnings = [r for r in caplog.records if "INSECURE DEV MODE" in r.getMessage()]
    assert len(warnings) == 2 and "HUASHU_GATEWAY_SECRET and HUASHU_AGENT_KEYS" in warnings[0].getMessage()


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUASHU_")}
    clean.update(HUASHU_DATA_DIR=str(tmp_path / "data"), HUASHU_CACHE_DIR=str(tmp_path / "cache"), **env)
    huashu = str(Path(sys.executable).parent / "huashu")
    return subprocess.run([huashu, "serve", "--port", "1", *args], env=clean, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("env", [{}, {"HUASHU_GATEWAY_SECRET": "s"}, {"HUASHU_AGENT_KEYS": "k"}])
def test_serve_refuses_to_start_without_credentials(tmp_path: Path, env: dict[str, str]) -> None:
    result = _serve(tmp_path, **env)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "--insecure-dev" in message and "HUASHU_INSECURE_DEV=1" in message
    assert "HUASHU_GATEWAY_SECRET" in message and "HUASHU_AGENT_KEYS" in message
    assert "Uvicorn running" not in result.stderr
