"""Hostile input at the edge (issue 13): every case is a 4xx with the one error shape (503 +
Retry-After for a database outage), the server stays up, and no unmasked phone number reaches
the log — in-process (the masking formatter on the captured log) and in the real log of a real
`huashu serve` process."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from server.logs import FORMAT, MaskingFormatter
from server.security import sign
from tests.conftest import ROOT
from tests.server.conftest import TRACK, client_for
from tests.store.conftest import pg_url  # noqa: F401 (fixture)

SECRET, AGENT, JAMBONZ = "hostile-secret", "hostile-agent-key", "hostile-jambonz-secret"
PHONE = "13812345678"
HEX = "0" * 64
UNMASKED = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
DEEP = b"[" * 100_000 + b"]" * 100_000


def _start(call_id: str = "c-1", customer_id: str = "cust-1", **extra: Any) -> dict[str, Any]:
    return {"call_id": call_id, "customer_id": customer_id, "track": TRACK, **extra}


def _raw(payload: dict[str, Any]) -> bytes:
    """JSON as a hostile client writes it: lone surrogates and control characters as escapes."""
    return json.dumps(payload).encode()


SURROGATE = "\ud800"
# (name, path, body, headers or None = properly signed): every one must be a 4xx
V1_CASES: list[tuple[str, str, bytes, dict[str, Any] | None]] = [
    ("t of 5,000 digits", "/v1/calls", _raw(_start()), {"x-huashu-signature": b"t=" + b"1" * 5000 + b",v1=" + HEX.encode()}),
    ("t superscript phone", "/v1/calls", _raw(_start()),
     {"x-huashu-signature": f"t=¹{PHONE},v1={HEX}".encode("latin-1")}),
    ("t fullwidth", "/v1/calls", _raw(_start()), {"x-huashu-signature": f"t=１２３,v1={HEX}".encode()}),
    ("v1 not hex", "/v1/calls", _raw(_start()), {"x-huashu-signature": b"t=1,v1=zz"}),
    ("nested 100k deep", "/v1/calls", DEEP, None),
    ("nested inside vars", "/v1/calls", b'{"call_id":"c","customer_id":"x","track":"t","vars":' + DEEP + b"}", None),
    ("surrogate call_id", "/v1/calls", _raw(_start(call_id="c" + SURROGATE)), None),
    ("surrogate customer_id", "/v1/calls", _raw(_start(customer_id=SURROGATE + PHONE)), None),
    ("surrogate var", "/v1/calls", _raw(_start(vars={"name": SURROGATE})), None),
    ("newline call_id", "/v1/calls", _raw(_start(call_id=f"c\n2026-12-03 INFO forged {PHONE}")), None),
    ("nul customer_id", "/v1/calls", _raw(_start(customer_id=PHONE + "\x00")), None),
    ("escape in var", "/v1/calls", _raw(_start(vars={"name": "\x1b[2J"})), None),
    ("customer_id of 100", "/v1/calls", _raw(_start(customer_id=PHONE * 9 + "x")), None),
    ("customer_id of 65", "/v1/calls", _raw(_start(customer_id="x" * 65)), None),
    ("not UTF-8", "/v1/calls", b'{"call_id":"\xff"}', None),
    ("surrogate transcript", "/v1/calls/c-ok/events", _raw({"seq": 1, "type": "speech", "text": SURROGATE}), None),
    ("nul transcript", "/v1/calls/c-ok/events", _raw({"seq": 1, "type": "speech", "text": "喂\x00"}), None),
    ("newline in path call_id", "/v1/calls/c%0Aforged/events", _raw({"seq": 1, "type": "hangup"}), None),
    ("deep event", "/v1/calls/c-ok/events", DEEP, None),
    ("seq as string", "/v1/calls/c-ok/events", _raw({"seq": "1", "type": "hangup"}), None),
    ("model parse surrogate", "/model/parse", _raw({"text": SURROGATE}), None),
]


def _webhook(**changes: Any) -> dict[str, Any]:
    data = {"customer_id": "cust-j", "track": TRACK, "vars": {}}
    data.update(changes.pop("data", {}))
    return {"call_sid": "jb-1", "direction": "outbound", "to": PHONE, "customerData": data, **changes}


JAMBONZ_CASES: list[tuple[str, str, bytes]] = [
    ("nested 100k deep", "/jambonz/calls", DEEP),
    ("nested status", "/jambonz/status", b'{"call_sid":' + DEEP + b"}"),
    ("newline call_sid", "/jambonz/calls", _raw(_webhook(call_sid=f"jb\n2026-12-03 INFO forged {PHONE}"))),
    ("surrogate call_sid", "/jambonz/calls", _raw(_webhook(call_sid="jb" + SURROGATE))),
    ("surrogate customer_id", "/jambonz/calls", _raw(_webhook(data={"customer_id": SURROGATE}))),
    ("customer_id of 100", "/jambonz/calls", _raw(_webhook(data={"customer_id": PHONE * 9 + "x"}))),
    ("control customer_id", "/jambonz/calls", _raw(_webhook(data={"customer_id": PHONE + "\r"}))),
    ("surrogate var", "/jambonz/calls", _raw(_webhook(data={"vars": {"name": SURROGATE}}))),
    ("control var", "/jambonz/calls", _raw(_webhook(data={"vars": {"name": "\x07"}}))),
    ("object var", "/jambonz/calls", _raw(_webhook(data={"vars": {"name": {"a": 1}}}))),
    ("track not a string", "/jambonz/calls", _raw(_webhook(data={"track": ["x"]}))),
    ("status newline sid", "/jambonz/status", _raw({"call_sid": f"jb\n{PHONE}", "call_status": "completed"})),
    ("surrogate transcript", "/jambonz/calls/jb-ok/action?seq=1",
     _raw({"reason": "speechDetected", "speech": {"alternatives": [{"transcript": SURROGATE}]}})),
    ("control transcript", "/jambonz/calls/jb-ok/action?seq=1",
     _raw({"reason": "speechDetected", "speech": {"alternatives": [{"transcript": "喂\x1b"}]}})),
    ("newline path sid", "/jambonz/calls/jb%0A13912345678/action?seq=1", _raw({"reason": "timeout"})),
    ("seq of 5,000 digits", "/jambonz/calls/jb-ok/action?seq=" + "9" * 5000, _raw({"reason": "timeout"})),
    ("not UTF-8", "/jambonz/calls", b'{"call_sid":"\xc3"}'),
]


def _signed_headers(body: bytes) -> dict[str, Any]:
    return {"X-Huashu-Signature": sign(SECRET, body), "Content-Type": "application/json"}


def _jambonz(http: Any, path: str, body: bytes) -> Any:
    """A jambonz webhook, signed as jambonz signs it (the hostile part is the payload)."""
    return http.post(path, content=body, headers={"Jambonz-Signature": sign(JAMBONZ, body),
                                                  "Content-Type": "application/json"})


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(**{"data_dir": tmp_path / "data", "cache_dir": tmp_path / "cache", "gateway_secret": SECRET,
                       "agent_keys": AGENT, "jambonz_secret": JAMBONZ,
                       "wecom_token": "tok", "wecom_aes_key": "a" * 43, "wecom_corp_id": "corp",
                       "insecure_dev": False, "calling_window": "00:00-24:00", **overrides})


def _check_4xx(r: httpx.Response, name: str) -> None:
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body.get("code"), str) and isinstance(body.get("detail"), str), (name, body)
    assert not UNMASKED.search(r.text), (name, r.text)


def _normalised(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) if not c.isascii() and unicodedata.digit(c, None) is not None else c
                   for c in text)


def _assert_clean_log(text: str) -> None:
    assert not UNMASKED.search(_normalised(text)), [line for line in text.splitlines() if UNMASKED.search(_normalised(line))]
    assert not any(line.startswith("2026-12-03 INFO forged") for line in text.splitlines())


def _healthy_call(client: TestClient | Any, call_id: str) -> None:
    body = _raw(_start(call_id=call_id, customer_id=f"ok-{call_id}"))
    r = client.post("/v1/calls", content=body, headers=_signed_headers(body))
    assert r.status_code == 200, r.text
    event = _raw({"seq": 1, "type": "speech", "text": "喂，你好"})
    assert client.post(f"/v1/calls/{call_id}/events", content=event, headers=_signed_headers(event)).status_code == 200


@pytest.fixture
def client(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient]:
    caplog.handler.setFormatter(MaskingFormatter(FORMAT))
    caplog.set_level(logging.INFO)
    with client_for(_settings(tmp_path)) as c:
        _healthy_call(c, "c-ok")
        r = _jambonz(c, "/jambonz/calls", _raw(_webhook(call_sid="jb-ok")))
        assert r.status_code == 200, r.text
        yield c


def test_hostile_v1_inputs_are_4xx(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    for name, path, body, headers in V1_CASES:
        r = client.post(path, content=body, headers=_signed_headers(body) if headers is None else headers)
        _check_4xx(r, name)  # type: ignore[arg-type]
    codes = {name: client.post(path, content=body, headers=_signed_headers(body) if headers is None else headers)
             .json()["code"] for name, path, body, headers in V1_CASES}
    assert codes["t of 5,000 digits"] == codes["t superscript phone"] == "unauthorized"
    assert codes["nested 100k deep"] == codes["surrogate call_id"] == "invalid_json"
    assert codes["newline call_id"] == codes["customer_id of 65"] == "invalid_request"
    assert codes["not UTF-8"] == "invalid_utf8"
    _healthy_call(client, "c-after")  # still serving
    store = client.app.state.huashu.runtime.store  # type: ignore[attr-defined]
    assert store.get_customer("x" * 65) is None and store.get_customer(PHONE * 9 + "x") is None
    _assert_clean_log(caplog.text)


def test_hostile_jambonz_inputs_are_4xx(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    for name, path, body in JAMBONZ_CASES:
        _check_4xx(_jambonz(client, path, body), name)
    assert _jambonz(client, "/jambonz/calls", _raw(_webhook(call_sid="jb-after"))).status_code == 200
    _assert_clean_log(caplog.text)


def test_64_character_customer_id_is_the_limit(client: TestClient) -> None:
    body = _raw(_start(call_id="c-64", customer_id="y" * 64))
    assert client.post("/v1/calls", content=body, headers=_signed_headers(body)).status_code == 200
    for path in ("/v1/customers/" + "y" * 65, "/v1/customers/a%0Ab", "/v1/customers/a%00b"):
        r = client.get(path, headers={"Authorization": f"Bearer {AGENT}"})
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
    assert client.get("/v1/customers/" + "y" * 64, headers={"Authorization": f"Bearer {AGENT}"}).status_code == 200


@pytest.mark.postgres
def test_database_outage_at_call_start_is_503_with_retry_after(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    from sqlalchemy.engine import make_url

    from tests.store.proxy import TcpProxy

    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    settings = _settings(tmp_path, database_url=url.set(port=proxy.port).render_as_string(False),
                         database_timeout_s=2.0)
    try:
        with client_for(settings) as client:
            _healthy_call(client, "pg-1")
            body = _raw(_start(call_id="pg-long", customer_id="z" * 64))  # the column's limit, on PostgreSQL
            assert client.post("/v1/calls", content=body, headers=_signed_headers(body)).status_code == 200
            proxy.cut()
            body = _raw(_start(call_id="pg-2", customer_id="cust-pg-2"))
            r = client.post("/v1/calls", content=body, headers=_signed_headers(body))
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
            assert r.json() == {"code": "store_unavailable", "detail": "database unavailable, retry"}
            jb = _jambonz(client, "/jambonz/calls", _raw(_webhook(call_sid="jb-pg", data={"customer_id": "cust-pg-3"})))
            assert jb.status_code == 503 and jb.json()["code"] == "store_unavailable"
            r = client.get("/v1/customers/cust-pg-2", headers={"Authorization": f"Bearer {AGENT}"})
            assert r.status_code == 503 and "Retry-After" in r.headers
            r = client.get("/v1/wecom/customers/cust-pg-2", headers={"Authorization": f"Bearer {AGENT}"})
            assert r.status_code == 503 and r.json()["code"] == "store_unavailable", r.text
            proxy.resume()
            _healthy_call(client, "pg-3")  # the gateway's retry after the outage goes through
    finally:
        proxy.close()


# -- a real server process: its real log ----------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_real_server_log_has_no_phone_numbers(tmp_path: Path, nlu_model_dir: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUASHU_")}
    env.update(HUASHU_DATA_DIR=str(tmp_path / "data"), HUASHU_CACHE_DIR=str(tmp_path / "cache"),
               HUASHU_NLU_MODEL_DIR=str(nlu_model_dir), HUASHU_GATEWAY_SECRET=SECRET, HUASHU_AGENT_KEYS=AGENT,
               HUASHU_JAMBONZ_SECRET=JAMBONZ,
               HUASHU_CALLING_WINDOW="00:00-24:00")
    log = tmp_path / "serve.log"
    huashu = str(Path(sys.executable).parent / "huashu")
    proc = subprocess.Popen([huashu, "serve", "--port", str(port), "--log-level", "info"], env=env, cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base, log)
        with httpx.Client(base_url=base, timeout=30) as http:
            _healthy_call(http, PHONE)  # a call id that is a phone number: in the access log and ours
            for name, path, body, headers in V1_CASES:
                _check_4xx(http.post(path, content=body, headers=_signed_headers(body) if headers is None else headers), name)
            for name, path, body in JAMBONZ_CASES:
                _check_4xx(_jambonz(http, path, body), name)
            assert _jambonz(http, "/jambonz/calls", _raw(_webhook(call_sid=f"jb-{PHONE}"))).status_code == 200
            _healthy_call(http, "after")
            assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    text = log.read_text(encoding="utf-8")
    assert "Uvicorn running" in text and "/v1/calls/138****5678/events" in text  # the real log, masked
    assert "INSECURE" not in text
    _assert_clean_log(text)


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"huashu serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"huashu serve did not become healthy: {log.read_text()[-2000:]}")


@pytest.mark.parametrize(("body", "ok"), [
    (b"[" * 32 + b"]" * 32, True),  # the limit itself
    (b"[" * 33 + b"]" * 33, False),
    (b'{"a":' * 33 + b"1" + b"}" * 33, False),
    (b'{"t":"' + b"[" * 500 + b'"}', True),  # brackets inside a string are text
    (b'{"t":"\\"[[[[' + b"[" * 500 + b'"}', True),  # …also after an escaped quote
    (b"[[]," * 200 + b"1" + b"]" * 200, False),  # depth climbs one per "[[]," without a long run of "["
    (b"[]" * 100_000, True),
])
def test_nesting_bound(body: bytes, ok: bool) -> None:
    from server.errors import BadRequest
    from server.models import check_json_depth

    if ok:
        check_json_depth(body)
    else:
        with pytest.raises(BadRequest, match="nested deeper than 32"):
            check_json_depth(body)


def test_hostile_wecom_inputs_are_4xx(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    auth = {"Authorization": f"Bearer {AGENT}", "Content-Type": "application/json"}
    suggest = {"customer_id": PHONE, "message": "多少钱"}
    cases = [
        ("nested 100k deep", "/v1/wecom/suggest", DEEP),
        ("surrogate customer_id", "/v1/wecom/suggest", _raw({**suggest, "customer_id": SURROGATE})),
        ("control message", "/v1/wecom/suggest", _raw({**suggest, "message": "多少钱\x1b[2J"})),
        ("customer_id of 65", "/v1/wecom/suggest", _raw({**suggest, "customer_id": "x" * 65})),
        ("surrogate history", "/v1/wecom/suggest", _raw({**suggest, "history": [{"role": "agent", "text": SURROGATE}]})),
        ("feedback control id", "/v1/wecom/feedback", _raw({**suggest, "suggestion_id": "s\n1"})),
        ("callback t of 5,000 digits", "/v1/wecom/callback?msg_signature=x&nonce=n&timestamp=" + "1" * 5000, b"<xml/>"),
        ("callback t superscript", "/v1/wecom/callback?msg_signature=x&nonce=n&timestamp=%C2%B9" + PHONE, b"<xml/>"),
    ]
    for name, path, body in cases:
        _check_4xx(client.post(path, content=body, headers=auth), name)  # type: ignore[arg-type]
    for path in ("/v1/wecom/customers/" + "x" * 65, "/v1/wecom/customers/a%0Ab"):
        _check_4xx(client.get(path, headers=auth), path)  # type: ignore[arg-type]
    assert client.post("/v1/wecom/suggest", json=suggest, headers=auth).status_code == 200
    _assert_clean_log(caplog.text)
