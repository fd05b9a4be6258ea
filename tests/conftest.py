"""Shared fixtures: settings isolated in a temp data dir, service availability policy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts_zh"

# Servers refuse to open an area whose secret/keys are unset (secure by default). Tests of other
# behaviour build apps and start `huashu serve` without secrets, as the demo does, so the test
# process (and every subprocess it starts) runs in insecure dev mode; the security tests
# (tests/server/test_secure_default.py) set insecure_dev=False or drop this variable explicitly.
os.environ.setdefault("HUASHU_INSECURE_DEV", "1")


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


@pytest.fixture(scope="session")
def nlu_model_dir(request: pytest.FixtureRequest) -> Path:
    """The real intent model on this checkout's scripts_zh/nlu, trained once per data hash into
    pytest's cache directory (per checkout: worktrees with other training data never retrain over
    each other's model) and shared by every test and subprocess of the session. An explicit
    HUASHU_NLU_MODEL_DIR is used as given."""
    from nlu.classifier import ensure_model
    from nlu.data import data_hash

    nlu = SCRIPTS / "nlu"
    given = os.environ.get("HUASHU_NLU_MODEL_DIR")
    if given:
        path = Path(given)
    else:
        cache = Path(request.config.cache.mkdir("huashu-nlu-model"))
        path = cache / data_hash(nlu)
        for old in cache.iterdir():  # keep only the current hash
            if old.is_dir() and old.name != path.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    ensure_model(nlu, path)
    os.environ["HUASHU_NLU_MODEL_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def classifier(nlu_model_dir: Path):
    """The real classifier (session-wide, loaded once)."""
    from nlu import load_classifier

    return load_classifier(Settings(nlu_model_dir=str(nlu_model_dir)), train_if_missing=False)
