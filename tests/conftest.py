"""Shared fixtures: settings isolated in a temp data dir, service availability policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from huashu.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts_zh"


def require_services() -> bool:
    """In CI (HUASHU_REQUIRE_SERVICES=1) a missing PostgreSQL/Redis is a failure, not a skip."""
    return os.environ.get("HUASHU_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if require_services():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite store in a temp dir (NLU model shared, see nlu fixtures)."""
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
