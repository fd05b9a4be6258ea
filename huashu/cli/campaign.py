"""Campaign runner commands: `campaign start|pause|resume|stop|status|simulate` and `huashu worker`."""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from huashu.cli._lazy import BarColumn, Progress, Settings, Table, TaskProgressColumn, TextColumn, TimeElapsedColumn
from huashu.cli.store import _fail, _instant, _store, campaign_app, err, out

if TYPE_CHECKING:
    from campaign.repo import Touches
    from store.sql import SqlStore


def _touches(st: Any) -> Touches:
    from campaign.repo import Touches

    return Touches.open(st)


@campaign_app.command("start")
def campaign_start(file: Annotated[Path, typer.Argument(help="campaign YAML (scripts_zh/campaigns/*.yml)")]) -> None:
    """Register a run: from now on each step executes when due (workers or `huashu serve`)."""
    from campaign.spec import load

    settings = Settings()
    with _store(settings) as st:
        camp = load(file, settings.effective_scripts_dir)
        touches = _touches(st)
        now = datetime.now(UTC)
        touches.register(camp, now, source=str(file))
    out.print(f"campaign {camp.name} started at {now.astimezone(st.tz).isoformat()} "
              f"({len(camp.steps)} steps, crowd {camp.crowd.name})", markup=False)


def _set(name: str, status: str) -> None:
    settings = Settings()
    with _store(settings) as st:
        old = _touches(st).set_status(name, status, datetime.now(UTC))
    out.print(f"campaign {name}: {old} → {status}", markup=False)


@campaign_app.command("pause")
def campaign_pause(name: Annotated[str, typer.Argument(help="campaign name")]) -> None:
    """Stop handing out touches (touches already placed finish); `resume` continues."""
    _set(name, "paused")


@campaign_app.command("resume")
def campaign_resume(name: Annotated[str, typer.Argument(help="campaign name")]) -> None:
    """Continue a paused run; touches that fell due meanwhile go out (inside the calling window)."""
    _set(name, "running")


@campaign_app.command("stop")
def campaign_stop(name: Annotated[str, typer.Argument(help="campaign name")]) -> None:
    """End a run for good (its touches stay for the report)."""
    _set(name, "stopped")


@campaign_app.command("status")
def campaign_status(
    name: Annotated[str, typer.Argument(help="campaign name")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """Per step: due, sent, answered, converted, failed, skipped by reason (and per A/B branch)."""
    settings = Settings()
    with _store(settings) as st:
        doc = _touches(st).status(name, datetime.now(UTC))
    if as_json:
        print(json.dumps(doc, ensure_ascii=False))
        return
    print_status(doc)


def print_status(doc: dict[str, Any]) -> None:
    out.print(f"[bold]{doc['campaign']}[/] {doc['title']} · {doc['status']} · started {doc['started_at']}")
    table = Table("step", "channel", "touches", "due", "later", "in flight", "sent", "answered", "converted",
                  "failed", "unreachable", "skipped")
    for s in doc["steps"]:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(s["skipped"].items())) or "-"
        label = s["step"] + (f" (on {s['trigger']})" if s.get("trigger") else "")
        table.add_row(label, s["channel"], *(str(s[k]) for k in (
            "touches", "due", "scheduled", "in_flight", "sent", "answered", "converted", "failed", "unreachable")),
            skipped)
        for branch, b in sorted(s["branches"].items()):
            table.add_row(f"  └ {branch}", "", *(str(b[k]) for k in (
                "touches", "due", "scheduled", "in_flight", "sent", "answered", "converted", "failed",
                "unreachable")), ", ".join(f"{k} {v}" for k, v in sorted(b["skipped"].items())) or "-")
    out.print(table)


@campaign_app.command("simulate")
def campaign_simulate(
    file: Annotated[Path, typer.Argument(help="campaign YAML")],
    start: Annotated[str, typer.Option("--start", help="simulated start, ISO 8601")],
    days: Annotated[float, typer.Option("--days", min=0.01, help="simulated days")] = 3.0,
    seed: Annotated[int, typer.Option("--seed", help="customer behaviour seed")] = 0,
    touches_out: Annotated[Path | None, typer.Option("--touches-out", help="one JSON line per touch")] = None,
    attempts_out: Annotated[Path | None, typer.Option(
        "--attempts-out", help="one JSON line per provider attempt (placed at, ended at, trunk)")] = None,
    tick_minutes: Annotated[float, typer.Option("--tick-minutes", min=1, help="scheduler beat (simulated)")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="the final status as one JSON document")] = False,
) -> None:
    """Run the real runner on a simulated clock against simulated customers and gateway (a scratch
    copy of the configured store's customers; the store itself is not changed)."""
    from datetime import timedelta

    from campaign import simulate
    from store import open_store

    settings = Settings()
    begin = _instant(settings, start, "--start")

    def scratch(path: Path) -> SqlStore:
        return open_store(settings.model_copy(update={"data_dir": path, "database_url": ""}))

    with _store(settings) as st, Progress(TextColumn("simulating"), BarColumn(), TaskProgressColumn(),
                                          TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("sim", total=1.0)
        result = simulate.run(st, scratch, file, settings.effective_scripts_dir, begin, days, seed,
                              timedelta(minutes=tick_minutes), progress=lambda f: bar.update(task, completed=f))
    for path, lines in ((touches_out, result.touches), (attempts_out, result.attempt_lines())):
        if path is not None:
            with path.open("w", encoding="utf-8") as fh:
                for line in lines:
                    fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps({**result.status, "customers": result.customers, "ticks": result.ticks},
                         ensure_ascii=False))
        return
    print_status(result.status)
    out.print(f"{result.customers} customers, {len(result.touches)} touches, {len(result.attempts)} attempts, "
              f"{result.ticks} ticks" + (f"; touches → {touches_out}" if touches_out else ""), markup=False)


def worker(
    threads: Annotated[int, typer.Option("--threads", min=1, max=64, help="worker threads")] = 0,
    schedule: Annotated[bool, typer.Option("--schedule/--no-schedule",
                                           help="also run the scheduler beat (safe on every worker)")] = True,
) -> None:
    """A campaign worker: Dramatiq on HUASHU_BROKER_URL (Redis or RabbitMQ) and the store."""
    from campaign.service import Dispatcher, build_runner
    from campaign.settings import CampaignSettings

    settings = Settings()
    cs = CampaignSettings()
    if not cs.broker_url:
        raise _fail("huashu worker needs HUASHU_BROKER_URL (redis://… or amqp://…); without a broker "
                    "`huashu serve` runs campaigns in-process", 2)
    with _store(settings) as st:
        runner = build_runner(st, cs)
        dispatcher = Dispatcher.build(runner, cs)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        dispatcher.start(threads=threads or cs.worker_threads, schedule=schedule)
        err.print(f"campaign worker: broker {type(dispatcher.broker).__name__}, "
                  f"{threads or cs.worker_threads} threads; Ctrl-C stops", markup=False)
        try:
            stop.wait()
        finally:
            dispatcher.stop()


def gateway_serve(url: str, secret: str, port: int, seed: int) -> None:
    """`huashu gateway-sim --serve`: the simulated gateway on 127.0.0.1:PORT, calling back `url`."""
    import httpx
    import uvicorn

    from campaign.simgateway import SimGateway, create_app

    client = httpx.AsyncClient(base_url=url, timeout=30.0)
    app = create_app(SimGateway(client, secret, seed, callback_url=f"{url}/v1/events"))
    err.print(f"gateway simulator on http://127.0.0.1:{port} (POST /originate, /v1/Accounts/{{sid}}/Calls), "
              f"calling back {url}", markup=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
