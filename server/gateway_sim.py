"""A telephony gateway simulator: drives calls against a running server over signed HTTP.

Each call: `POST /v1/calls`, then for every reply it does what a gateway does — plays the clips,
listens when told to (sending the next scripted customer turn: text as a speech event, a WAV
file through `/v1/calls/{id}/audio`, `<silence>`, `<dtmf:N>`, `<hangup>`), reports
playback_done when a reply ends after playing, and stops on hangup/transfer. Many calls run
concurrently (it is also the load generator of bench/server.py); every callback's latency is kept.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dialogue.demo_call import DEMO_CALL, DEMO_TRACK
from server.security import sign


@dataclass(frozen=True)
class Turn:
    """One scripted customer turn."""

    kind: str  # speech | dtmf | silence | hangup | audio
    text: str = ""
    digits: str = ""
    audio: Path | None = None

    @classmethod
    def parse(cls, line: str) -> Turn:
        text = line.strip()
        if text == "<silence>":
            return cls("silence")
        if text == "<hangup>":
            return cls("hangup")
        if text.startswith("<dtmf:") and text.endswith(">") and text[6:-1]:
            return cls("dtmf", digits=text[6:-1])
        if text.startswith("<") and text.endswith(">"):
            raise ValueError(f"unknown special line {text!r} (use <silence>, <hangup> or <dtmf:N>)")
        return cls("speech", text=text)


@dataclass
class Sample:
    kind: str  # start | speech | dtmf | silence | playback_done | hangup | audio
    seconds: float
    status: int
    at: float = 0.0  # time.monotonic() when sent


@dataclass
class CallLog:
    call_id: str
    customer_id: str
    refused: str | None = None
    ended: bool = False
    transferred: bool = False
    turns: list[dict[str, Any]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "customer_id": self.customer_id, "refused": self.refused,
                "ended": self.ended, "transferred": self.transferred, "error": self.error, "turns": self.turns}


@dataclass(frozen=True)
class SimConfig:
    url: str = "http://127.0.0.1:8000"
    track: str = DEMO_TRACK
    secret: str = ""
    interval_s: float = 0.0  # customer "speaking time" before each turn (jittered ±20 %)
    variables: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    filler_clip: str = "filler"  # the server's HUASHU_FILLER_CLIP


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Connection:
    """One keep-alive HTTP/1.1 connection — a call leg's callbacks are sequential, like a
    gateway's. (Deliberately tiny: a general client's pool bookkeeping costs more CPU than the
    server's answer at a thousand concurrent calls, and the load generator shares the machine.)
    A request that fails on a reused connection before any answer is sent again on a new one:
    safe, because every callback is idempotent."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url must be http(s)://host[:port], got {url!r}")
        self.host, self.tls = parts.hostname, parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.base = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._io: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self._io is not None:
            self._io[1].close()
            self._io = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        for attempt in range(2):
            reused = self._io is not None
            if self._io is None:
                self._io = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, ssl=self.tls or None), self.timeout_s)
            try:
                return await asyncio.wait_for(self._exchange(path, body, headers), self.timeout_s)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if not reused or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        assert self._io is not None
        reader, writer = self._io
        head = [f"POST {self.base}{path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        if "content-length" in fields:
            content = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            content = b"".join(chunks)
        else:
            content = await reader.read()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return HttpResponse(int(status_line.split()[1]), content)


class GatewaySim:
    """Runs scripted calls against `cfg.url` (use as an async context manager)."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        Connection(cfg.url, cfg.timeout_s)  # validates the URL now

    async def __aenter__(self) -> GatewaySim:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def _post(self, conn: Connection, log: CallLog, kind: str, path: str, body: bytes,
                    content_type: str = "application/json") -> HttpResponse:
        headers = {"Content-Type": content_type}
        if self.cfg.secret:
            headers["X-Huashu-Signature"] = sign(self.cfg.secret, body)
        sent, t = time.monotonic(), time.perf_counter()
        resp = await conn.post(path, body, headers)
        log.samples.append(Sample(kind, time.perf_counter() - t, resp.status_code, sent))
        return resp

    async def call(self, turns: Sequence[Turn], *, call_id: str | None = None,
                   customer_id: str | None = None, until: float | None = None) -> CallLog:
        """One whole call; returns its transcript and the latency of every callback. After the
        monotonic time `until` the customer hangs up at the next turn (bounded load runs)."""
        call_id = call_id or f"sim-{uuid.uuid4().hex[:12]}"
        log = CallLog(call_id, customer_id or f"sim-{uuid.uuid4().hex[:10]}")
        conn = Connection(self.cfg.url, self.cfg.timeout_s)
        start = json.dumps({"call_id": call_id, "customer_id": log.customer_id, "track": self.cfg.track,
                            "vars": self.cfg.variables}, ensure_ascii=False).encode()
        try:
            resp = await self._post(conn, log, "start", "/v1/calls", start)
            if resp.status_code == 409 and "refused" in resp.json():
                log.refused = resp.json()["refused"]
                return log
            if resp.status_code != 200:
                log.error = f"start: HTTP {resp.status_code}: {resp.text[:200]}"
                return log
            actions: list[dict[str, Any]] = resp.json()["actions"]
            ended = False
            log.turns.append({"user": None, "actions": actions})
            script = iter(turns)
            seq = 0
            while True:
                if ended or any(a["type"] in ("hangup", "transfer") for a in actions):
                    log.transferred = any(a["type"] == "transfer" for a in actions)
                    log.ended = True
                    return log
                # Nothing to do (an answer to playback_done): the customer goes on as when listening.
                listening = not actions or actions[-1]["type"] == "listen"
                # The server was still thinking (filler clip): the customer waits for it to end.
                filler = any(a["type"] == "play" and a.get("clip") == self.cfg.filler_clip for a in actions)
                seq += 1
                if not listening or filler:
                    if filler:
                        await asyncio.sleep(0.5)  # about the length of the filler clip
                    turn = Turn("playback_done")
                else:
                    turn = next(script, Turn("hangup"))
                    if self.cfg.interval_s:
                        await asyncio.sleep(self.cfg.interval_s * random.uniform(0.8, 1.2))
                    if until is not None and time.monotonic() >= until:
                        turn = Turn("hangup")
                resp = await self._send(conn, log, call_id, seq, turn)
                if resp.status_code != 200:
                    log.error = f"seq {seq}: HTTP {resp.status_code}: {resp.text[:200]}"
                    return log
                data = resp.json()
                actions, ended = data["actions"], bool(data["ended"])
                log.turns.append({"user": _describe(turn), "actions": actions})
                if turn.kind == "hangup":
                    log.ended = True
                    return log
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            log.error = f"{type(exc).__name__}: {exc}"
            return log
        finally:
            await conn.close()

    async def _send(self, conn: Connection, log: CallLog, call_id: str, seq: int, turn: Turn) -> HttpResponse:
        if turn.kind == "audio" and turn.audio is not None:
            return await self._post(conn, log, "audio", f"/v1/calls/{call_id}/audio?seq={seq}",
                                    turn.audio.read_bytes(), "audio/wav")
        event: dict[str, Any] = {"seq": seq, "type": turn.kind}
        if turn.kind == "speech":
            event["text"] = turn.text
        elif turn.kind == "dtmf":
            event["digits"] = turn.digits
        return await self._post(conn, log, turn.kind, f"/v1/calls/{call_id}/events",
                                json.dumps(event, ensure_ascii=False).encode())


def _describe(turn: Turn) -> str:
    if turn.kind == "speech":
        return turn.text
    if turn.kind == "dtmf":
        return f"<dtmf:{turn.digits}>"
    if turn.kind == "audio":
        return f"<audio:{turn.audio.name if turn.audio else ''}>"
    return f"<{turn.kind}>"


@dataclass
class LoadResult:
    calls: list[CallLog]
    wall_s: float
    t0: float = 0.0  # time.monotonic() at the start of the run

    @property
    def samples(self) -> list[Sample]:
        return [s for c in self.calls for s in c.samples]


async def run_load(cfg: SimConfig, turns: Sequence[Turn], *, concurrency: int, calls: int | None = None,
                   duration_s: float | None = None, ramp_s: float = 0.0, run_id: str | None = None,
                   customer: Callable[[int], str] | None = None) -> LoadResult:
    """Keep `concurrency` calls in flight (a finished call is replaced) until `calls` have been
    placed or `duration_s` has passed; the first wave is spread over `ramp_s`. Call n goes to
    `customer(n)` (default: a new test customer per call)."""
    # A load generator that stalls measures its own pauses: the cyclic GC's full passes over a
    # thousand calls' logs took 100+ ms here. Refcounting still frees almost everything; the
    # few cycles left are collected once at the end.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return await _run_load(cfg, turns, concurrency, calls, duration_s, ramp_s, run_id, customer)
    finally:
        if enabled:
            gc.enable()
            gc.collect()


async def _run_load(cfg: SimConfig, turns: Sequence[Turn], concurrency: int, calls: int | None,
                    duration_s: float | None, ramp_s: float, run_id: str | None,
                    customer: Callable[[int], str] | None) -> LoadResult:
    run = run_id or uuid.uuid4().hex[:8]
    logs: list[CallLog] = []
    placed = 0
    t0 = time.monotonic()

    def more() -> bool:
        if calls is not None and placed >= calls:
            return False
        return duration_s is None or time.monotonic() - t0 < duration_s

    async with GatewaySim(cfg) as sim:
        async def lane(i: int) -> None:
            nonlocal placed
            if ramp_s:
                await asyncio.sleep(ramp_s * i / max(concurrency, 1))
            while more():
                placed += 1
                n = placed
                who = customer(n) if customer is not None else f"sim-{run}-{n}"
                logs.append(await sim.call(turns, call_id=f"sim-{run}-{n}", customer_id=who,
                                           until=None if duration_s is None else t0 + duration_s))

        await asyncio.gather(*(lane(i) for i in range(concurrency)))
    return LoadResult(logs, time.monotonic() - t0, t0)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarize(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Per callback kind (and "all"): count, p50/p99/max latency in ms, non-200 answers."""
    kinds = sorted({s.kind for s in samples})
    rows = []
    for kind in [*kinds, "all"]:
        chosen = [s for s in samples if kind in ("all", s.kind)]
        ms = [s.seconds * 1000 for s in chosen]
        rows.append({"kind": kind, "n": len(chosen), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
                     "max_ms": max(ms) if ms else float("nan"),
                     "errors": sum(1 for s in chosen if s.status != 200 and not (s.kind == "start" and s.status == 409))})
    return rows


def load_turns(script: Path | None, say: Sequence[str], audio: Sequence[Path]) -> list[Turn]:
    """The customer's turns: WAV files, `--say` lines, a script file, or the default script."""
    if audio:
        return [Turn("audio", audio=p) for p in audio]
    if say:
        return [Turn.parse(s) for s in say]
    if script is not None:
        return [Turn.parse(line) for line in script.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Turn.parse(s) for s in DEMO_CALL]
