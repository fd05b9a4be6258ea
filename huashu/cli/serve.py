"""Server commands: `huashu serve` (the gateway HTTP server) and `huashu gateway-sim`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from huashu.cli._lazy import Settings, Table, console

err = console(stderr=True)
out = console()


def app_from_env():
    """uvicorn factory for `--workers N` (each worker builds its app from the environment)."""
    from huashu.app import create_app

    return create_app(Settings())


def serve(
    host: Annotated[str, typer.Option("--host", help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="worker processes (needs Redis when > 1)")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    insecure_dev: Annotated[bool, typer.Option(
        "--insecure-dev", help="start without HUASHU_GATEWAY_SECRET / HUASHU_AGENT_KEYS: their routes are open "
                               "to anyone (local demo only; also HUASHU_INSECURE_DEV=1)")] = False,
) -> None:
    """The gateway HTTP server (API: /docs once running; docs/server.md): tracks and models load once per worker."""
    import uvicorn

    from server.logs import log_config

    if insecure_dev:  # the workers build their settings from the environment
        os.environ["HUASHU_INSECURE_DEV"] = "1"
    settings = Settings()
    _check_credentials(settings)
    # Campaigns run inside the server unless workers on a broker run them (HUASHU_BROKER_URL).
    os.environ.setdefault("HUASHU_CAMPAIGN_EMBEDDED", "1")
    if workers > 1 and not settings.redis_url:
        err.print("[red]--workers > 1 needs HUASHU_REDIS_URL: calls must be visible to every worker "
                  "(in-process sessions live in one process).[/]")
        raise typer.Exit(2)
    if settings.redis_url:
        _check_redis(settings)
    config = log_config(log_level)
    if workers == 1:
        from huashu.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_config=config, access_log=True)
        return
    _prepare_workers(settings)
    uvicorn.run("huashu.cli.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=config, access_log=True)


def _check_credentials(settings: Settings) -> None:
    """Secure by default: refuse to start with a credential unset, unless told it is a demo."""
    missing = settings.missing_credentials
    if not missing:
        return
    if not settings.insecure_dev:
        err.print(f"[red]huashu serve: {' and '.join(missing)} not set. Without them the gateway and agent "
                  "routes (call control, customer profiles, WeCom) would be open to anyone, so the server "
                  "does not start.[/]\n"
                  "Set HUASHU_GATEWAY_SECRET (signs the gateway's requests) and HUASHU_AGENT_KEYS (the agents' "
                  "bearer keys), or, for a local demo only, pass --insecure-dev (or HUASHU_INSECURE_DEV=1).")
        raise typer.Exit(2)
    from server.app import insecure_warning

    err.print(f"[bold red]WARNING: {insecure_warning(settings)}[/]")


def _check_redis(settings: Settings) -> None:
    from server.redis_sessions import RedisSessions

    async def ping() -> None:
        sessions = RedisSessions(settings.redis_url, prefix=settings.redis_prefix, ttl_s=60, lock_ttl_ms=1000)
        try:
            await sessions.ping()
        finally:
            await sessions.close()

    try:
        import asyncio

        asyncio.run(ping())
    except Exception as exc:
        err.print(f"[red]HUASHU_REDIS_URL: cannot reach Redis: {exc}[/]")
        raise typer.Exit(2) from None


def _prepare_workers(settings: Settings) -> None:
    """Before forking N workers: one metrics directory for all, the store migrated and the NLU
    model trained once (not N times in parallel)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = Path(tempfile.gettempdir()) / f"huashu-metrics-{os.getpid()}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    from store import open_store

    open_store(settings).close()
    try:
        from nlu import load_classifier
    except ImportError:
        return
    load_classifier(settings, train_if_missing=True)


def gateway_sim(
    url: Annotated[str, typer.Option("--url", help="server base URL")] = "http://127.0.0.1:8000",
    track: Annotated[str, typer.Option("--track")] = "wecom_add_gift",
    calls: Annotated[int, typer.Option("--calls", min=1, help="calls to place")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=0, help="calls in flight (0: all --calls at once)")] = 0,
    script: Annotated[Path | None, typer.Option("--script", help="customer turns, one per line (<silence>, <dtmf:N>, <hangup>)")] = None,
    say: Annotated[list[str] | None, typer.Option("--say", help="a customer turn (repeatable)")] = None,
    audio: Annotated[list[Path] | None, typer.Option("--audio", help="WAV file per customer turn (sent to /audio)")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="k=v call variable")] = None,
    interval: Annotated[float, typer.Option("--interval", help="seconds the customer takes per turn")] = 0.0,
    secret: Annotated[str | None, typer.Option("--secret", help="signing secret (default: HUASHU_GATEWAY_SECRET)")] = None,
    customer_id: Annotated[str | None, typer.Option(
        "--customer-id", help="customer of a single call (default: a new test customer)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per call")] = False,
    serve_mode: Annotated[bool, typer.Option(
        "--serve", help="be a gateway: accept originate requests (campaign calls) and play simulated customers")]
    = False,
    port: Annotated[int, typer.Option("--port", help="with --serve: the port to listen on")] = 8090,
    seed: Annotated[int, typer.Option("--seed", help="with --serve: simulated customer behaviour seed")] = 0,
) -> None:
    """Play the telephony gateway against a running server: N concurrent scripted calls; with
    --serve, a gateway that places the campaign runner's calls to simulated customers."""
    from server.gateway_sim import SimConfig, Turn, load_turns, run_load

    if serve_mode:
        from huashu.cli.campaign import gateway_serve

        key = secret if secret is not None else (Settings().gateway_secrets or [""])[0]
        gateway_serve(url.rstrip("/"), key, port, seed)
        return

    for p in [*(audio or []), *([script] if script else [])]:
        if not p.is_file():
            err.print(f"[red]no such file: {p}[/]")
            raise typer.Exit(2)
    try:
        turns: list[Turn] = load_turns(script, say or [], audio or [])
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    variables = {}
    for pair in var or []:
        if "=" not in pair:
            err.print(f"[red]--var takes k=v, got {pair!r}[/]")
            raise typer.Exit(2)
        k, v = pair.split("=", 1)
        variables[k] = v
    settings = Settings()
    key = secret if secret is not None else (settings.gateway_secrets[0] if settings.gateway_secrets else "")
    cfg = SimConfig(url=url.rstrip("/"), track=track, secret=key, interval_s=interval, variables=variables)
    if customer_id and calls != 1:
        err.print("[red]--customer-id places one call: use it with --calls 1[/]")
        raise typer.Exit(2)
    import asyncio

    if customer_id:
        from server.gateway_sim import GatewaySim, LoadResult

        async def one() -> LoadResult:
            async with GatewaySim(cfg) as sim:
                return LoadResult([await sim.call(turns, customer_id=customer_id)], 0.0)
        result = asyncio.run(one())
    else:
        result = asyncio.run(run_load(cfg, turns, concurrency=concurrency or calls, calls=calls))
    if as_json:
        for log in result.calls:
            print(json.dumps(log.to_json(), ensure_ascii=False))
    elif calls == 1:
        _print_call(result.calls[0])
    else:
        _print_summary(result)
    if any(c.error for c in result.calls):
        first = next(c.error for c in result.calls if c.error)
        err.print(f"[red]{sum(1 for c in result.calls if c.error)} call(s) failed, first: {first}[/]")
        raise typer.Exit(1)


def _print_call(log) -> None:
    out.print(f"[dim]call {log.call_id} · customer {log.customer_id}[/]")
    if log.refused:
        out.print(f"[red]refused: {log.refused}[/]")
        return
    for turn in log.turns:
        if turn["user"] is not None:
            out.print(f"[bold yellow]客户[/] {turn['user']}")
        for a in turn["actions"]:
            if a["type"] == "play":
                out.print(f"[bold cyan]机器人[/] [dim]({a['clip']})[/] {a['text']}")
            elif a["type"] in ("send_sms", "send_wecom", "transfer", "hangup"):
                out.print(f"   [magenta]⇒ {a['type']}[/] {a.get('text') or a.get('to') or ''}")
    ms = sorted(s.seconds * 1000 for s in log.samples)
    if ms:
        out.print(f"[dim]{len(ms)} callbacks, median {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms[/]")


def _print_summary(result) -> None:
    from server.gateway_sim import summarize

    calls = result.calls
    out.print(f"{len(calls)} calls in {result.wall_s:.1f} s: "
              f"{sum(c.ended for c in calls)} ended, {sum(bool(c.refused) for c in calls)} refused, "
              f"{sum(bool(c.error) for c in calls)} failed")
    table = Table("callback", "n", "p50 ms", "p99 ms", "max ms", "non-200")
    for row in summarize(result.samples):
        table.add_row(row["kind"], str(row["n"]), f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}",
                      f"{row['max_ms']:.1f}", str(row["errors"]))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command("gateway-sim")(gateway_sim)
