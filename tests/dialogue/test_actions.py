"""Track actions run through rasa-sdk's executor in process and over a real action server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from core.conversation import CustomerEvent, EventKind, SessionState
from dialogue.actions import BUILTIN_ACTION_MODULES, ActionRunner, build_executor, tracker_payload
from dialogue.engine import DialogueEngine
from dialogue.loader import load_bundle
from tests.conftest import ROOT, SCRIPTS
from tests.dialogue.keywords import KeywordClassifier

AT = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
MODULE = "tests.dialogue.merchant_actions"


def _scripts(tmp_path: Path, endpoint: str | None) -> Path:
    """wecom_add_gift where "I already added you" is checked against the CRM by an action."""
    root = tmp_path / "scripts_zh"
    shutil.copytree(SCRIPTS / "personas", root / "personas")
    (root / "tracks").mkdir()
    text = (SCRIPTS / "tracks" / "wecom_add_gift.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text.replace("\n    on:", "\n    'on':"))
    data["slots"] = [*data["slots"], "wechat_status"]
    data["nodes"]["opening"]["on"]["already_added"] = "check_wechat"
    data["nodes"]["check_wechat"] = {
        "actions": ["action_check_wechat"],
        "next": {"slot": "wechat_status", "cases": {"yes": "close_added"}, "default": "how_to_add"},
    }
    if endpoint:
        data["action_endpoint"] = {"url": endpoint, "timeout_ms": 3000, "fallback": "how_to_add"}
    (root / "tracks" / "wecom_add_gift.yml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return root


def _call(engine: DialogueEngine, customer: str) -> SessionState:
    state, _ = engine.start(f"call-{customer}", customer, "wecom_add_gift", at=AT)
    state, _ = engine.step(state, CustomerEvent(EventKind.SPEECH, text="我早就加了"), AT)
    return state


def test_action_through_rasa_sdk_executor_changes_the_conversation(tmp_path: Path) -> None:
    runner = ActionRunner(build_executor([MODULE, *BUILTIN_ACTION_MODULES]))
    engine = DialogueEngine(load_bundle(_scripts(tmp_path, None), runner.names), KeywordClassifier(), actions=runner)
    vip = _call(engine, "vip-001")
    assert vip.slots["wechat_status"] == "yes"
    assert vip.outcome == "wechat_added" and vip.ended
    other = _call(engine, "c-002")
    assert other.slots["wechat_status"] == "no"
    assert other.node == "how_to_add" and not other.ended


def test_tracker_payload_is_what_rasa_sdk_parses() -> None:
    from rasa_sdk import Tracker

    state = SessionState("c1", "wecom_add_gift", "u9", "opening", AT.isoformat(), slots={"x": 1}, tags=("high_intent",))
    tracker = Tracker.from_dict(tracker_payload(state, "action_x")["tracker"])
    assert tracker.sender_id == "c1"
    assert tracker.get_slot("customer_id") == "u9" and tracker.get_slot("tags") == ["high_intent"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def action_server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rasa_sdk", "--actions", MODULE, "-p", str(port)],
                            cwd=ROOT, env={"SANIC_HOST": "127.0.0.1", "PYTHONPATH": str(ROOT),
                                           "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail(f"action server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    else:
        proc.kill()
        pytest.fail("action server did not start in 60 s")
    yield url + "/webhook"
    proc.terminate()
    proc.wait(10)


@pytest.mark.slow
def test_action_over_a_real_rasa_sdk_server(tmp_path: Path, action_server: str) -> None:
    runner = ActionRunner(build_executor(BUILTIN_ACTION_MODULES))  # nothing local: the merchant's server answers
    engine = DialogueEngine(load_bundle(_scripts(tmp_path, action_server), runner.names), KeywordClassifier(),
                            actions=runner)
    vip = _call(engine, "vip-7")
    assert vip.slots["wechat_status"] == "yes" and vip.outcome == "wechat_added"
    assert _call(engine, "c-8").node == "how_to_add"


def test_unreachable_action_server_takes_the_fallback(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/webhook"
    runner = ActionRunner(build_executor(BUILTIN_ACTION_MODULES))
    engine = DialogueEngine(load_bundle(_scripts(tmp_path, dead), runner.names), KeywordClassifier(), actions=runner)
    state = _call(engine, "vip-9")
    assert state.node == "how_to_add" and "wechat_status" not in state.slots
