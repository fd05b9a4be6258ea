"""A telephony gateway simulator: drives calls against a running server over signed HTTP.

Each call: `POST /v1/calls`, then for every reply it does what a gateway does — plays the clips,
listens when told to (sending the next scripted customer turn: text as a speech event, a WAV
file through `/v1/calls/{id}/audio`, `<silence>`, `<dtmf:N>`, `<hangup>`), reports
playback_done when a reply ends after playing, and stops on hangup/transfer. Many calls run
concurrently (it is also the load generator of bench/server.py); every callback's latency is kept.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from server.security import sign

DEFAULT_SCRIPT = ("喂，你好", "你是机器人吗？", "哦，那这个要钱吗", "行吧，怎么加", "好的，我现在就加")


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
    track: str = "wecom_add_gift"
    secret: str = ""
    interval_s: float = 0.0  # customer "speaking time" before each turn (jittered ±20 %)
    variables: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0


class GatewaySim:
    """Runs scripted calls against `cfg.url` (use as an async context manager)."""

    def __init__(self, cfg: SimConfig, *, max_connections: int = 100) -> None:
        self.cfg = cfg
        self.client = httpx.AsyncClient(
            base_url=cfg.url, timeout=cfg.timeout_s,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))

    async def __aenter__(self) -> GatewaySim:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()

    async def _post(self, log: CallLog, kind: str, path: str, body: bytes,
                    content_type: str = "application/json") -> httpx.Response:
        headers = {"Content-Type": content_type}
        if self.cfg.secret:
            headers["X-Huashu-Signature"] = sign(self.cfg.secret, body)
        t = time.perf_counter()
        resp = await self.client.post(path, content=body, headers=headers)
        log.samples.append(Sample(kind, time.perf_counter() - t, resp.status_code))
        return resp

    async def call(self, turns: Sequence[Turn], *, call_id: str | None = None,
                   customer_id: str | None = None) -> CallLog:
        """One whole call; returns its transcript and the latency of every callback."""
        call_id = call_id or f"sim-{uuid.uuid4().hex[:12]}"
        log = CallLog(call_id, customer_id or f"sim-{uuid.uuid4().hex[:10]}")
        start = json.dumps({"call_id": call_id, "customer_id": log.customer_id, "track": self.cfg.track,
                            "vars": self.cfg.variables}, ensure_ascii=False).encode()
        try:
            resp = await self._post(log, "start", "/v1/calls", start)
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
                listening = bool(actions) and actions[-1]["type"] == "listen"
                seq += 1
                if not listening:
                    turn = Turn("playback_done")
                else:
                    turn = next(script, Turn("hangup"))
                    if self.cfg.interval_s:
                        await asyncio.sleep(self.cfg.interval_s * random.uniform(0.8, 1.2))
                resp = await self._send(log, call_id, seq, turn)
                if resp.status_code != 200:
                    log.error = f"seq {seq}: HTTP {resp.status_code}: {resp.text[:200]}"
                    return log
                data = resp.json()
                actions, ended = data["actions"], bool(data["ended"])
                log.turns.append({"user": _describe(turn), "actions": actions})
                if turn.kind == "hangup":
                    log.ended = True
                    return log
        except httpx.HTTPError as exc:
            log.error = f"{type(exc).__name__}: {exc}"
            return log

    async def _send(self, log: CallLog, call_id: str, seq: int, turn: Turn) -> httpx.Response:
        if turn.kind == "audio" and turn.audio is not None:
            return await self._post(log, "audio", f"/v1/calls/{call_id}/audio?seq={seq}",
                                    turn.audio.read_bytes(), "audio/wav")
        event: dict[str, Any] = {"seq": seq, "type": turn.kind}
        if turn.kind == "speech":
            event["text"] = turn.text
        elif turn.kind == "dtmf":
            event["digits"] = turn.digits
        return await self._post(log, turn.kind, f"/v1/calls/{call_id}/events",
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

    @property
    def samples(self) -> list[Sample]:
        return [s for c in self.calls for s in c.samples]


async def run_load(cfg: SimConfig, turns: Sequence[Turn], *, concurrency: int, calls: int | None = None,
                   duration_s: float | None = None, ramp_s: float = 0.0, run_id: str | None = None) -> LoadResult:
    """Keep `concurrency` calls in flight (a finished call is replaced) until `calls` have been
    placed or `duration_s` has passed; the first wave is spread over `ramp_s`."""
    run = run_id or uuid.uuid4().hex[:8]
    logs: list[CallLog] = []
    placed = 0
    t0 = time.monotonic()

    def more() -> bool:
        if calls is not None and placed >= calls:
            return False
        return duration_s is None or time.monotonic() - t0 < duration_s

    async with GatewaySim(cfg, max_connections=concurrency + 8) as sim:
        async def lane(i: int) -> None:
            nonlocal placed
            if ramp_s:
                await asyncio.sleep(ramp_s * i / max(concurrency, 1))
            while more():
                placed += 1
                n = placed
                logs.append(await sim.call(turns, call_id=f"load-{run}-{n}", customer_id=f"load-{run}-{n}"))

        await asyncio.gather(*(lane(i) for i in range(concurrency)))
    return LoadResult(logs, time.monotonic() - t0)


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
    return [Turn.parse(s) for s in DEFAULT_SCRIPT]
