"""`GET /readyz`: ready while the session store answers, with the outbox backlog in the body."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from tests.server.conftest import client_for


def test_ready_with_an_empty_outbox(tmp_path: Path) -> None:
    with client_for(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")) as client:
        r = client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "sessions": "memory", "outbox_backlog": 0, "outbox_parked": 0,
                            "detail": ""}
        assert "huashu_outbox_backlog 0.0" in client.get("/metrics").text


def test_not_ready_while_redis_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", redis_url="redis://127.0.0.1:1/0")
    with client_for(settings) as client:  # starts anyway (a Redis outage at boot is survivable)
        r = client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not_ready" and "HUASHU_REDIS_URL" in body["detail"] and body["outbox_backlog"] == 0
