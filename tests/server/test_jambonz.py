"""jambonz adapter: webhook payloads in, verb arrays out — validated by jambonz's own schema
package (`@jambonz/verb-specifications` from npm, run with node)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from server.jambonz import to_verbs
from server.security import sign
from tests.conftest import skip_or_fail
from tests.server.conftest import TRACK, client_for, record

HERE = Path(__file__).parent / "jambonz"
SECRET = "jambonz-webhook-secret"


@pytest.fixture(scope="session")
def verb_validator() -> Callable[[list[list[dict[str, Any]]]], list[dict[str, Any]]]:
    """npm-installs the spec package next to validate.js once (node_modules is git-ignored)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        skip_or_fail("node/npm not installed")
    if not (HERE / "node_modules" / "@jambonz" / "verb-specifications").is_dir():
        proc = subprocess.run([str(npm), "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            skip_or_fail(f"npm install @jambonz/verb-specifications failed: {proc.stderr[-500:]}")

    def validate(docs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        proc = subprocess.run([str(node), "validate.js"], cwd=HERE, input=json.dumps(docs), capture_output=True,
                              text=True, timeout=60, check=True)
        return [json.loads(line) for line in proc.stdout.splitlines()]
    return validate


def _post(client, path: str, payload: dict[str, Any]):
    body = json.dumps(payload).encode()
    return client.post(path, content=body, headers={"Content-Type": "application/json",
                                                    "Jambonz-Signature": sign(SECRET, body)})


def _hook(verbs: list[dict[str, Any]]) -> str:
    for v in verbs:
        if "actionHook" in v:
            return str(v["actionHook"])
    raise AssertionError(f"no actionHook in {verbs}")


def _speech(sid: str, text: str) -> dict[str, Any]:
    return {"call_sid": sid, "reason": "speechDetected",
            "speech": {"is_final": True, "alternatives": [{"transcript": text, "confidence": 0.9}]}}


def test_a_jambonz_call_speaks_valid_verbs(make_settings: Callable[..., Settings], verb_validator) -> None:
    documents: list[list[dict[str, Any]]] = []
    with client_for(make_settings(jambonz_secret=SECRET)) as client:
        webhook = {"call_sid": "jb-1", "direction": "outbound", "from": "4008208820", "to": "13812345678",
                   "call_status": "in-progress", "customerData": {"customer_id": "cust-jb", "track": TRACK}}
        first = _post(client, "/jambonz/calls", webhook)
        assert first.status_code == 200, first.text
        verbs = first.json()
        documents.append(verbs)
        assert verbs[0]["verb"] == "tag"  # the SMS of the opening travels as call data
        assert verbs[-1]["verb"] == "gather" and verbs[-1]["play"]["url"].startswith("http")
        hook = _hook(verbs)
        assert hook == "/jambonz/calls/jb-1/action?seq=1"
        again = _post(client, "/jambonz/calls", webhook)
        assert again.content == first.content
        r = _post(client, hook, _speech("jb-1", "你是机器人吗"))
        documents.append(r.json())
        replay = _post(client, hook, _speech("jb-1", "别的话"))
        assert replay.content == r.content
        r = _post(client, _hook(r.json()), {"call_sid": "jb-1", "reason": "timeout"})
        documents.append(r.json())
        r = _post(client, _hook(r.json()), {"call_sid": "jb-1", "reason": "dtmfDetected", "digits": "0"})
        documents.append(r.json())
        assert any(v["verb"] == "dial" for v in r.json())
        assert record(client, "jb-1").state["outcome"] == "transferred"
        assert _post(client, "/jambonz/status", {"call_sid": "jb-1", "call_status": "completed"}).status_code == 200
        # an opt-out call ends with a hangup verb; the next call to that customer is refused
        webhook2 = {**webhook, "call_sid": "jb-2", "customerData": {"customer_id": "cust-jb2", "track": TRACK}}
        r = _post(client, "/jambonz/calls", webhook2)
        r = _post(client, _hook(r.json()), _speech("jb-2", "别再给我打电话了"))
        documents.append(r.json())
        assert r.json()[-1]["verb"] == "hangup"
        refused = _post(client, "/jambonz/calls", {**webhook2, "call_sid": "jb-3"})
        documents.append(refused.json())
        assert refused.json()[-1]["verb"] == "hangup"
        unsigned = client.post("/jambonz/calls", json=webhook)
        assert unsigned.status_code == 401
        stale = json.dumps(webhook).encode()
        assert client.post("/jambonz/calls", content=stale, headers={
            "Jambonz-Signature": sign(SECRET, stale, int(time.time()) - 301)}).status_code == 401
    documents += [
        to_verbs([{"type": "play", "clip": "a", "url": "http://x/a.wav", "text": "", "barge_in": True}], "s", 3),
        to_verbs([{"type": "transfer", "to": "sip:agent@pbx.example"}], "s", 3),
        to_verbs([{"type": "transfer", "to": "+862150001234"}], "s", 3),
        to_verbs([{"type": "listen", "timeout_ms": 5000}], "s", 3),
    ]
    results = verb_validator(documents)
    assert len(results) == len(documents)
    bad = [(doc, res["error"]) for doc, res in zip(documents, results, strict=True) if not res["ok"]]
    assert not bad, bad
    broken = verb_validator([[{"verb": "gather", "timeout": "soon"}]])
    assert not broken[0]["ok"]  # the validator does reject bad verbs


def test_malformed_jambonz_payloads_are_4xx(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        assert client.post("/jambonz/calls", content=b"{").status_code == 400
        assert client.post("/jambonz/calls", content=b"[1]").status_code == 422
        assert client.post("/jambonz/calls", json={"call_sid": "x"}).status_code == 422  # no track
        assert client.post("/jambonz/calls/x/action", json={}).status_code == 422  # no seq
        r = client.post("/jambonz/calls/unknown/action?seq=1", json={"reason": "timeout"})
        assert r.status_code == 200 and r.json() == [{"verb": "hangup"}]
