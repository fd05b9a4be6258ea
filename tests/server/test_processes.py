"""Real processes: `huashu serve` workers on one Redis killed with SIGKILL between callbacks, a Redis
server restarted under a running app, and `huashu gateway-sim` against a live server.

These go through the real NLU (`nlu.load_classifier`, trained once into a shared temp folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from server.security import sign
from tests.conftest import ROOT, skip_or_fail
from tests.server.conftest import TRACK, clear_prefix, client_for, record

HUASHU = str(Path(sys.executable).parent / "huashu")
SECRET = "proc-secret"
LINES = ["喂，你好", "你是机器人吗？", "哦，那这个要钱吗", "行吧，怎么加", "好的，我现在就加"]
pytestmark = [pytest.mark.slow, pytest.mark.redis]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def nlu_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model: the default one when it is current (read only), else one trained once into
    a shared temp folder (retrained only when the NLU data changes)."""
    from nlu import NluModelError, load_classifier

    try:
        load_classifier(Settings(), train_if_missing=False)
        return Settings().effective_nlu_model_dir
    except NluModelError:
        pass
    path = tmp_path_factory.getbasetemp().parent / "huashu-server-nlu-model"
    load_classifier(Settings(nlu_model_dir=str(path), data_dir=path.parent / "nlu-data"), train_if_missing=True)
    return path


class Server:
    """One `huashu serve` process."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # a secured deployment: `huashu serve` refuses to start without agent keys (secure by default)
        env = {"HUASHU_AGENT_KEYS": "proc-agent-key", **env}
        self.proc = subprocess.Popen(
            [HUASHU, "serve", "--port", str(self.port), "--workers", str(workers), "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"huashu serve exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"huashu serve did not become healthy: {log.read_text()[-2000:]}")

    def post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload, ensure_ascii=False).encode()
        return httpx.post(self.url + path, content=body, timeout=30, headers={
            "X-Huashu-Signature": sign(SECRET, body), "Content-Type": "application/json",
            "Connection": "close"})

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def server_env(tmp_path: Path, redis_url: str, redis_prefix: str, nlu_model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUASHU_")}
    env.update(HUASHU_REDIS_URL=redis_url, HUASHU_REDIS_PREFIX=redis_prefix, HUASHU_DATA_DIR=str(tmp_path / "data"),
               HUASHU_CACHE_DIR=str(tmp_path / "cache"), HUASHU_NLU_MODEL_DIR=str(nlu_model_dir),
               HUASHU_GATEWAY_SECRET=SECRET, HUASHU_CALLING_WINDOW="00:00-24:00",
               HUASHU_MAX_CALLS_PER_DAY="1000", HUASHU_MAX_CALLS_PER_WEEK="1000")
    return env


def _call(servers: Callable[[int], Server], call_id: str, customer: str) -> list[bytes]:
    """Start + one event per line (+ hangup); `servers(i)` picks the server for callback i."""
    bodies = [servers(0).post("/v1/calls", {"call_id": call_id, "customer_id": customer, "track": TRACK}).content]
    for seq, line in enumerate([*LINES, None], 1):
        event = {"seq": seq, "type": "hangup"} if line is None else {"seq": seq, "type": "speech", "text": line}
        r = servers(seq).post(f"/v1/calls/{call_id}/events", event)
        assert r.status_code == 200, r.text
        bodies.append(r.content)
    return bodies


def test_sigkill_between_callbacks_the_other_worker_continues(server_env: dict[str, str], tmp_path: Path) -> None:
    a = Server(server_env, tmp_path / "a.log")
    b = Server(server_env, tmp_path / "b.log")
    try:
        reference = _call(lambda i: a, "ref-call", "ref-cust")
        killed_at = 3

        def pick(i: int) -> Server:
            if i == killed_at and a.proc.poll() is None:
                os.killpg(a.proc.pid, signal.SIGKILL)  # between callbacks i-1 and i, no warning
                a.proc.wait(10)
            return a if i < killed_at else b

        moved = _call(pick, "kill-call", "kill-cust")
        assert a.proc.returncode == -signal.SIGKILL
        assert moved[0] == reference[0].replace(b"ref-call", b"kill-call")
        assert moved[1:] == reference[1:]  # the same conversation, answer for answer
        # the callback the dead worker answered last is replayed by the survivor, byte for byte
        again = b.post("/v1/calls/kill-call/events", {"seq": killed_at - 1, "type": "speech", "text": "x"})
        assert again.content == moved[killed_at - 1]
        ref = httpx.get(b.url + "/v1/customers/ref-cust", headers={"X-Huashu-Signature": sign(SECRET, b"")}).json()
        got = httpx.get(b.url + "/v1/customers/kill-cust", headers={"X-Huashu-Signature": sign(SECRET, b"")}).json()
        assert (got["last_outcome"], got["last_grade"], got["tags"]) == (ref["last_outcome"], ref["last_grade"],
                                                                          ref["tags"])
    finally:
        a.stop()
        b.stop()


def test_two_workers_one_killed_mid_call(server_env: dict[str, str], tmp_path: Path) -> None:
    """`huashu serve --workers 2`: SIGKILL one worker between callbacks; the call goes on."""
    server = Server(server_env, tmp_path / "w.log", workers=2)
    try:
        reference = _call(lambda i: server, "ref2", "ref2-cust")
        workers = [pid for pid in _children(server.proc.pid) if "spawn_main" in _cmdline(pid)]
        assert len(workers) == 2, [_cmdline(p) for p in _children(server.proc.pid)]

        def pick(i: int) -> Server:
            if i == 2:
                os.kill(workers[0], signal.SIGKILL)
            return server

        assert _call(pick, "kill2", "kill2-cust")[1:] == reference[1:]
    finally:
        server.stop()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_gateway_sim_places_calls_against_a_live_server(server_env: dict[str, str], tmp_path: Path) -> None:
    server = Server(server_env, tmp_path / "s.log")
    try:
        env = {**server_env}
        proc = subprocess.run([HUASHU, "gateway-sim", "--url", server.url, "--calls", "4", "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        calls = [json.loads(line) for line in proc.stdout.splitlines()]
        assert len(calls) == 4 and all(c["ended"] and not c["error"] for c in calls)
        assert all(c["turns"][0]["user"] is None for c in calls)
        one = subprocess.run([HUASHU, "gateway-sim", "--url", server.url, "--say", "不需要，别再打了"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert one.returncode == 0 and "机器人" in one.stdout, one.stdout + one.stderr
        bad = subprocess.run([HUASHU, "gateway-sim", "--url", server.url, "--secret", "wrong"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "401" in bad.stderr
    finally:
        server.stop()


# -- a Redis server of our own, restarted under a running app --------------------------------------
class OwnRedis:
    """A private redis-server (AOF on, fsync always) that the test may stop and start."""

    def __init__(self, args: list[str], port: int) -> None:
        self.args, self.port = args, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("own redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server not installed")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--protected-mode", "yes"]
    server = OwnRedis(args, port)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("backend", ["redis"])
def test_redis_restart_loses_nothing(own_redis: OwnRedis, tmp_path: Path, backend: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", redis_url=own_redis.url,
                        redis_prefix="restart:")
    ref_settings = Settings(data_dir=tmp_path / "ref", cache_dir=tmp_path / "cache")
    with client_for(ref_settings) as client:
        client.post("/v1/calls", json={"call_id": "c", "customer_id": "u", "track": TRACK})
        reference = [client.post("/v1/calls/c/events", json={"seq": i, "type": "speech", "text": t}).content
                     for i, t in enumerate(LINES[:3], 1)]
    with client_for(settings) as client:
        client.post("/v1/calls", json={"call_id": "c", "customer_id": "u", "track": TRACK})
        first = client.post("/v1/calls/c/events", json={"seq": 1, "type": "speech", "text": LINES[0]})
        assert first.content == reference[0]
        own_redis.stop()
        down = client.post("/v1/calls/c/events", json={"seq": 2, "type": "speech", "text": LINES[1]})
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert client.get("/healthz").status_code == 503
        own_redis.start()
        retry = client.post("/v1/calls/c/events", json={"seq": 2, "type": "speech", "text": LINES[1]})
        assert retry.content == reference[1]
        assert client.post("/v1/calls/c/events", json={"seq": 1, "type": "speech", "text": "x"}).content == first.content
        assert client.post("/v1/calls/c/events", json={"seq": 3, "type": "speech", "text": LINES[2]}).content \
            == reference[2]
        assert record(client, "c").last_seq == 3
    clear_prefix(own_redis.url, "restart:")


def test_the_app_builds_its_runtime_with_the_real_nlu(nlu_model_dir: Path, tmp_path: Path) -> None:
    """create_app(settings) alone: the lifespan loads tracks, the trained classifier and the store."""
    from fastapi.testclient import TestClient

    from huashu.app import create_app
    from tests.server.conftest import NOW

    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", nlu_model_dir=str(nlu_model_dir))
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        parsed = client.post("/model/parse", json={"text": "你是机器人吧？"}).json()
        assert parsed["intent"]["name"] == "ask_robot"
        assert parsed["intent_ranking"][0]["name"] == "ask_robot"
        client.post("/v1/calls", json={"call_id": "c", "customer_id": "u", "track": TRACK})
        r = client.post("/v1/calls/c/events", json={"seq": 1, "type": "speech", "text": "你是不是机器人啊"})
        assert "answer_robot" in [a.get("clip") for a in r.json()["actions"]]
