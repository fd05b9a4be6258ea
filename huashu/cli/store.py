"""Store commands: `customers import|demo|show`, `segments list|show|export`, `campaign plan|send`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer

from huashu.cli._lazy import BarColumn, MofNCompleteColumn, Progress, Settings, Table, TextColumn, TimeElapsedColumn, console
from huashu.cli.times import instant as _instant

if TYPE_CHECKING:
    from store.campaigns import CallVars, Campaign, Step, StepPlan
    from store.sql import SqlStore

err = console(stderr=True)
out = console()

customers_app = typer.Typer(help="Customers: import a CSV, generate demo data, show a profile.",
                            no_args_is_help=True)
segments_app = typer.Typer(help="Crowd packages (人群包): list, show, export target lists.", no_args_is_help=True)
campaign_app = typer.Typer(help="Campaign cascades: who is due for which touch now.", no_args_is_help=True)

CHANNELS = ("call", "sms", "wecom")
ProviderPhones = Annotated[bool, typer.Option(
    "--provider-phones",
    help="Include unmasked phones, ONLY for handing the file to an SMS/WeCom provider adapter "
         "(never to agents). Default: masked 138****1234.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _store(settings: Settings) -> Iterator[SqlStore]:
    """The configured store; store errors become a message and exit 1 (no traceback)."""
    from store import open_store
    from store.errors import StoreError

    try:
        st = open_store(settings)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    try:
        yield st
    except StoreError as exc:
        raise _fail(str(exc)) from None
    finally:
        st.close()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


# ---- customers ----------------------------------------------------------------------------------
def _bad_rows(file: Path, problems: list[tuple[int, str]]) -> NoReturn:
    for line, message in problems:
        typer.echo(f"{file}:{line}: {message}", err=True)  # one unwrapped line each, for tools
    raise _fail(f"{len(problems)} bad row(s) in {file}; nothing imported") from None


@customers_app.command("import")
def customers_import(file: Annotated[Path, typer.Argument(help="CSV with a header row")]) -> None:
    """Import customers + order summary. Every row is validated first; any bad row → nothing imported."""
    from store.errors import ImportValidationError, StoreError
    from store.importer import parse_csv

    settings = Settings()
    lines: dict[str, int] = {}
    try:
        records = parse_csv(file, ZoneInfo(settings.timezone),
                            warn=lambda text: typer.echo(f"warning: {text}", err=True), lines=lines)
    except ImportValidationError as exc:
        _bad_rows(file, exc.problems)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    from campaign.events import import_events, paid_state
    from campaign.service import build_runner
    from campaign.settings import CampaignSettings
    from store.errors import ExternalIdConflictError
    from store.importer import external_conflict_problems

    with _store(settings) as st, _progress() as bar:
        before = paid_state(st, [r.customer_id for r in records])
        task = bar.add_task("importing", total=len(records))
        try:
            n = st.upsert_customers(records, progress=lambda k: bar.advance(task, k))
        except ExternalIdConflictError as exc:
            bar.stop()
            _bad_rows(file, external_conflict_problems(exc.conflicts, lines))
        # Payments the import reveals are shop events: they start triggered campaign steps.
        events = import_events(build_runner(st, CampaignSettings(), pacing=False), before, records,
                               datetime.now(st.tz))
    out.print(f"imported {n} customer(s) from {file}" + (f"; {events} payment event(s)" if events else ""))


@customers_app.command("demo")
def customers_demo(
    n: Annotated[int, typer.Option("--n", min=1, max=1_000_000, help="how many customers")] = 3000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same customers)")] = 7,
    today: Annotated[str | None, typer.Option(help="reference date YYYY-MM-DD (default: today)")] = None,
    history: Annotated[bool, typer.Option(help="also write earlier calls (tags, outcomes, opt-outs)")] = True,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="also write an importable CSV here")] = None,
) -> None:
    """Generate realistic demo customers (deterministic) into the store."""
    from dialogue.history import generate_history
    from store.demo import generate_customers, write_csv

    settings = Settings()
    tz = ZoneInfo(settings.timezone)
    try:
        ref = date.fromisoformat(today) if today else datetime.now(tz).date()
    except ValueError:
        raise _fail(f"--today must be YYYY-MM-DD, got {today!r}", 2) from None
    now = datetime.combine(ref, datetime.now(tz).time(), tz) if today is None else \
        datetime(ref.year, ref.month, ref.day, 12, tzinfo=tz)
    with _store(settings) as st, _progress() as bar:
        task = bar.add_task("generating", total=n)
        customers = []
        for rec in generate_customers(n, seed, ref):
            customers.append(rec)
            bar.advance(task)
        task = bar.add_task("writing", total=n)
        st.upsert_customers(customers, progress=lambda k: bar.advance(task, k))
        results_n = 0
        if history:
            results, attempts = generate_history(customers, seed, now)
            results_n = st.write_results(results)
            st.record_attempts([(cid, call_id, at, "call") for cid, call_id, at in attempts])
    if csv_out:
        write_csv(customers, csv_out)
    out.print(f"{n} demo customers (seed {seed}, as of {ref}), {results_n} earlier call result(s)"
              + (f"; CSV: {csv_out}" if csv_out else ""))


@customers_app.command("show")
def customers_show(customer_id: str) -> None:
    """A customer's profile as JSON (masked phone), as GET /v1/customers/{id} returns it."""
    with _store(Settings()) as st:
        profile = st.customer_profile(customer_id)
    if profile is None:
        raise _fail(f"unknown customer {customer_id!r}")
    print(json.dumps(profile, ensure_ascii=False, indent=2))


# ---- segments -----------------------------------------------------------------------------------
def _segments(settings: Settings) -> dict[str, object]:
    from store.errors import StoreError
    from store.segments import load_segments

    try:
        return dict(load_segments(settings.effective_scripts_dir))
    except StoreError as exc:
        raise _fail(str(exc)) from None


@segments_app.command("list")
def segments_list(count: Annotated[bool, typer.Option(help="evaluate each segment and show its size")] = False,
                  at: Annotated[str | None, typer.Option(help="ISO instant (default: now)")] = None) -> None:
    """Every crowd package under scripts_zh/segments/."""
    from store.segment_sql import evaluate
    from store.segments import Segment

    settings = Settings()
    segs = _segments(settings)
    table = Table("name", "title", *(["targets"] if count else []), "description")
    if count:
        when = _instant(settings, at)
        with _store(settings) as st:
            for seg in segs.values():
                assert isinstance(seg, Segment)
                table.add_row(seg.name, seg.title, str(len(evaluate(st, seg, when).targets)), seg.description)
    else:
        for seg in segs.values():
            assert isinstance(seg, Segment)
            table.add_row(seg.name, seg.title, seg.description)
    out.print(table)


@segments_app.command("show")
def segments_show(name: str, at: Annotated[str | None, typer.Option(help="ISO instant (default: now)")] = None,
                  limit: Annotated[int, typer.Option(help="sample rows to print")] = 10) -> None:
    """A segment's definition, its counts and a (masked) sample of its targets."""
    import yaml

    from store.segment_sql import evaluate
    from store.segments import Segment

    settings = Settings()
    seg = _segments(settings).get(name)
    if not isinstance(seg, Segment):
        raise _fail(f"unknown segment {name!r}; see `huashu segments list`")
    with _store(settings) as st:
        ev = evaluate(st, seg, _instant(settings, at))
    out.print(f"[bold]{seg.name}[/] {seg.title}\n{seg.description}\nfile: {seg.path}")
    out.print(yaml.safe_dump({"where": seg.where.model_dump(exclude_none=True, by_alias=True)},
                             allow_unicode=True, sort_keys=False).rstrip(), markup=False)
    out.print(f"at {ev.at.isoformat()}: matched {ev.matched}, do-not-contact excluded {ev.excluded_dnc}, "
              f"same phone merged {ev.duplicates} → [bold]{len(ev.targets)}[/] target(s)")
    table = Table("customer_id", "phone", "name", "persona_group", "last_outcome")
    for tg in ev.targets[:limit]:
        table.add_row(tg.customer_id, tg.phone_masked, tg.name, tg.persona_group, tg.last_outcome or "")
    out.print(table)


EXPORT_COLUMNS = ("customer_id", "phone", "name", "persona_group", "price_sensitivity", "deposit_paid",
                  "balance_paid", "deposit_product", "last_outcome", "channel", "segment")


@segments_app.command("export")
def segments_export(
    name: str,
    channel: Annotated[str, typer.Option(help="call | sms | wecom")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write")],
    at: Annotated[str | None, typer.Option(help="ISO instant (default: now)")] = None,
    provider_phones: ProviderPhones = False,
    bom: Annotated[bool, typer.Option("--bom/--no-bom", help="start with a UTF-8 BOM so Excel reads Chinese "
                                      "names right (default)")] = True,
) -> None:
    """Export a segment's targets: one per phone, do-not-contact excluded, phones masked."""
    from store.segment_sql import evaluate
    from store.segment_sql import provider_phones as decrypt
    from store.segments import Segment

    if channel not in CHANNELS:
        raise _fail(f"--channel must be one of {', '.join(CHANNELS)}, got {channel!r}", 2)
    settings = Settings()
    seg = _segments(settings).get(name)
    if not isinstance(seg, Segment):
        raise _fail(f"unknown segment {name!r}; see `huashu segments list`")
    with _store(settings) as st:
        ev = evaluate(st, seg, _instant(settings, at))
        phones = decrypt(st, [tg.customer_id for tg in ev.targets]) if provider_phones else {}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(EXPORT_COLUMNS)
        for tg in ev.targets:
            w.writerow([tg.customer_id, phones.get(tg.customer_id, tg.phone_masked), tg.name, tg.persona_group,
                        tg.price_sensitivity, str(tg.deposit_paid).lower(), str(tg.balance_paid).lower(),
                        tg.deposit_product, tg.last_outcome or "", channel, seg.name])
    out.print(f"{len(ev.targets)} target(s) → {out_file} (matched {ev.matched}, do-not-contact excluded "
              f"{ev.excluded_dnc}, same phone merged {ev.duplicates}; phones "
              f"{'UNMASKED for the provider' if provider_phones else 'masked'})")


# ---- campaigns ----------------------------------------------------------------------------------
@campaign_app.command("plan")
def campaign_plan(
    file: Annotated[Path, typer.Argument(help="campaign YAML (scripts_zh/campaigns/*.yml)")],
    at: Annotated[str | None, typer.Option(help="ISO instant to plan for (default: now)")] = None,
    start: Annotated[str | None, typer.Option(help="campaign start (default: start_at in the file, else --at)")]
    = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write per-step CSV, plan.json, call_tasks.jsonl")]
    = None,
    show: Annotated[int, typer.Option(help="print this many due customers per step (masked)")] = 5,
) -> None:
    """Per step: who is due now and why; do-not-contact, over-cap and outside-window excluded."""
    from store.campaigns import plan

    settings = Settings()
    when = _instant(settings, at)
    with _store(settings) as st:
        camp = _campaign(settings, st, file, start)
        steps = plan(st, camp, when, _task_vars(settings, st, when))
    out.print(f"[bold]{camp.name}[/] {camp.title} · crowd {camp.crowd.name} · at {when.isoformat()}")
    table = Table("step", "channel", "scheduled", "status", "due now", "excluded", "why")
    for sp in steps:
        spec = sp.step.spec
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(sp.excluded.items())) or "-"
        table.add_row(spec.id, spec.channel, sp.scheduled_at.strftime("%m-%d %H:%M"),
                      "due" if sp.due else "waiting", str(len(sp.targets)) if sp.due else "-", excluded, sp.why)
    out.print(table)
    for sp in steps:
        if sp.due and sp.targets and show:
            who = ", ".join(f"{tg.customer_id} {tg.name} {tg.phone_masked}" for tg in sp.targets[:show])
            more = f" … +{len(sp.targets) - show}" if len(sp.targets) > show else ""
            out.print(f"{sp.step.spec.id}: {who}{more}", markup=False, highlight=False)
    if out_dir is not None:
        _write_plan(out_dir, camp.name, steps, when)
        out.print(f"lists written to {out_dir}/")


def _campaign(settings: Settings, st: SqlStore, file: Path, start: str | None) -> Campaign:
    """The campaign file, its steps rescheduled from `--start` when given."""
    from dataclasses import replace

    from store.campaigns import load_campaign

    camp = load_campaign(file, settings.effective_scripts_dir, st)
    if start:
        camp = replace(camp, start_at=_instant(settings, start, "--start"),
                       steps=tuple(replace(s, scheduled_at=None) for s in camp.steps))
    return camp


def _task_vars(settings: Settings, st: SqlStore, when: datetime) -> CallVars:
    """Call steps' variables from the talk track: the customer's facts and the campaign's values."""
    from dialogue.facts import BadValue, task_vars
    from dialogue.loader import load_bundle
    from store.errors import StoreError

    bundle = load_bundle(settings.effective_scripts_dir)
    today = when.astimezone(st.tz).date()

    def resolve(step: Step, campaign_vars: dict[str, str], ids: list[str]) -> dict[str, tuple[dict[str, str], str | None]]:
        try:
            track = bundle.track(step.spec.track)
            return task_vars(track, bundle.persona_for(track), st.customers_by_id(ids), ids, campaign_vars, today)
        except (KeyError, BadValue) as exc:
            raise StoreError(f"step {step.spec.id}: {exc.args[0]}") from None
    return resolve


def _write_plan(out_dir: Path, campaign: str, steps: list[StepPlan], when: datetime) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    step_docs: list[dict[str, Any]] = []
    summary = {"campaign": campaign, "at": when.isoformat(), "steps": step_docs}
    with (out_dir / "call_tasks.jsonl").open("w", encoding="utf-8") as calls:
        for sp in steps:
            spec = sp.step.spec
            tasks = [sp.task(campaign, tg) for tg in sp.targets]
            step_docs.append({
                "id": spec.id, "channel": spec.channel, "scheduled_at": sp.scheduled_at.isoformat(),
                "due": sp.due, "why": sp.why, "excluded": sp.excluded, "count": len(tasks),
                "targets": [{**task, "phone": tg.phone_masked, "name": tg.name}
                            for task, tg in zip(tasks, sp.targets, strict=True)],
            })
            if not sp.due:
                continue
            with (out_dir / f"{campaign}-{spec.id}.csv").open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(("task_id", "customer_id", "phone", "name", "persona_group", "channel",
                            "template_or_track", "why"))
                for task, tg in zip(tasks, sp.targets, strict=True):
                    w.writerow((task.get("call_id") or task.get("task_id"), tg.customer_id, tg.phone_masked,
                                tg.name, tg.persona_group, spec.channel, spec.track or spec.template, sp.why))
            if spec.channel == "call":
                for task in tasks:
                    calls.write(json.dumps(task, ensure_ascii=False) + "\n")
    (out_dir / "plan.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")


@campaign_app.command("send")
def campaign_send(
    file: Annotated[Path, typer.Argument(help="campaign YAML")],
    step: Annotated[str, typer.Option(help="id of the sms/wecom step to send")],
    webhook: Annotated[str | None, typer.Option(help="provider webhook URL (default: HUASHU_SMS_WEBHOOK_URL "
                                                     "/ HUASHU_WECOM_WEBHOOK_URL)")] = None,
    secret: Annotated[str, typer.Option(help="sign requests with this HMAC secret")] = "",
    at: Annotated[str | None, typer.Option(help="ISO instant (default: now)")] = None,
    start: Annotated[str | None, typer.Option(help="campaign start (as for plan)")] = None,
    provider_phones: ProviderPhones = False,
) -> None:
    """Send one due message step through the provider webhook; sends are recorded as contact attempts."""
    from store.campaigns import plan
    from store.providers import WebhookProvider, dispatch

    settings = Settings()
    when = _instant(settings, at)
    with _store(settings) as st:
        camp = _campaign(settings, st, file, start)
        chosen = [sp for sp in plan(st, camp, when) if sp.step.spec.id == step]
        if not chosen:
            raise _fail(f"{file}: no step {step!r}")
        sp = chosen[0]
        url = webhook or (settings.sms_webhook_url if sp.step.spec.channel == "sms" else settings.wecom_webhook_url)
        if not url:
            raise _fail("no provider webhook: pass --webhook or set HUASHU_SMS_WEBHOOK_URL / "
                        "HUASHU_WECOM_WEBHOOK_URL", 2)
        provider = WebhookProvider(url, secret=secret, include_phone=provider_phones)
        try:
            sent = dispatch(st, camp.name, sp, provider, when)
        finally:
            provider.close()
    out.print(f"step {step}: {sent} of {len(sp.targets)} accepted by the provider"
              + ("" if sp.due else f" (not due: {sp.why})"))


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")
    app.add_typer(segments_app, name="segments")
    app.add_typer(campaign_app, name="campaign")
