"""Core commands: validate, simulate, demo, actions serve."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from huashu.cli._lazy import Settings, console
from huashu.cli.times import instant as _now

if TYPE_CHECKING:
    from core.conversation import CustomerEvent, Reply, SessionState
    from dialogue.loader import Bundle

err = console(stderr=True)
out = console()


def _vars(pairs: list[str]) -> dict[str, str]:
    out_vars = {}
    for pair in pairs:
        if "=" not in pair:
            err.print(f"[red]--var takes k=v, got {pair!r}[/]")
            raise typer.Exit(2)
        key, value = pair.split("=", 1)
        out_vars[key.strip()] = value
    return out_vars


def validate(paths: Annotated[list[Path] | None, typer.Argument(help="scripts folders (default: the shipped scripts_zh)")] = None,
             at: Annotated[str | None, typer.Option("--at", help="also report date variables (track defaults, "
                                                               "campaign vars) that have passed at this ISO time")]
             = None) -> None:
    """Schema + graph checks on every track, persona and NLU file (with --at: expired dates)."""
    from core.yamlio import ScriptError
    from dialogue.actions import ActionRunner
    from dialogue.loader import load_bundle

    settings = Settings()
    names = ActionRunner().names
    roots = paths or [settings.effective_scripts_dir]
    total = 0
    for root in roots:
        root = root if root.is_dir() else root.parent.parent  # a track file: its scripts folder
        try:
            bundle = load_bundle(root, names)
            _validate_nlu(root)
            _validate_hints(bundle)
            _validate_replies(root, bundle)
            _validate_audio(root, bundle)
        except ScriptError as exc:
            for problem in exc.problems:
                print(problem)
            raise typer.Exit(1) from None
        if at is not None:
            expired = _expired(root, bundle, _now(settings, at))
            for finding in expired:
                print(finding)
            if expired:
                raise typer.Exit(1)
        total += len(bundle.tracks)
        for track in bundle.tracks.values():
            out.print(f"[green]ok[/] {root / 'tracks' / (track.id + '.yml')}  ({len(track.nodes)} nodes)")
    out.print(f"{total} track(s) valid")


def _expired(root: Path, bundle: Bundle, when: datetime) -> list[str]:
    """Dates that have passed at `when`: track defaults, and campaign variables of call steps."""
    from core.yamlio import load_yaml_text
    from dialogue.facts import expired_defaults, expired_values

    today = when.date()
    lines = [str(p) for t in bundle.tracks.values() for p in expired_defaults(t, bundle.track_sources[t.id], today)]
    for path in sorted((root / "campaigns").glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        doc = load_yaml_text(text) or {}
        for step in doc.get("steps") or []:
            track = bundle.tracks.get(str(step.get("track") or ""))
            if track is None:
                continue
            values = {str(k): str(v) for k, v in {**(doc.get("vars") or {}), **(step.get("vars") or {})}.items()}
            for name, value in expired_values(track, values, today):
                line = next((i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(f"{name}:")), 1)
                lines.append(f"{path}:{line}: {step.get('id', '-')}: {name} {value} has passed at "
                             f"{today.isoformat()} (its calls are refused expired:{name})")
    return lines


def _validate_nlu(root: Path) -> None:
    try:
        from nlu.validate import validate_nlu_dir
    except ImportError:
        return
    if (root / "nlu").is_dir():
        validate_nlu_dir(root / "nlu")


def _validate_hints(bundle: Bundle) -> None:
    """ASR hints compile for every waiting node (drops name real phrases, prompts fit)."""
    from core.yamlio import ScriptError
    from dialogue.hints import hint_problems, nlu_examples
    from dialogue.loader import Problem

    examples = nlu_examples(bundle.root)
    for track in bundle.tracks.values():
        src = bundle.track_sources[track.id]
        found = [Problem(src.file, src.line(node, "vocabulary"), node, msg)
                 for node, msg in hint_problems(track, examples)]
        if found:
            raise ScriptError(found)


def _validate_audio(root: Path, bundle: Bundle) -> None:
    """A persona that ships recordings (an audio/ folder) has one for every clip it can say."""
    from core.yamlio import ScriptError
    from dialogue.loader import Problem
    from dialogue.recordings import missing_audio, plan

    problems = []
    for persona_id in bundle.personas:
        folder = root / "personas" / persona_id
        if not (folder / "audio").is_dir():
            continue
        for path in missing_audio(plan(bundle, persona_id), folder / "audio"):
            problems.append(Problem(str(folder / "persona.yml"), 1, path.with_suffix("").as_posix(),
                                    f"no recording audio/{path.as_posix()} (huashu persona script/import)"))
    if problems:
        raise ScriptError(problems)


def _validate_replies(root: Path, bundle: Bundle) -> None:
    """The WeCom reply library shares the personas' voice and variables."""
    if not (root / "replies").is_dir():
        return
    from wecom.library import load_library

    persona_vars = frozenset(v for p in bundle.personas.values() for v in (*p.variables, "agent_name", "brand"))
    load_library(root / "replies", persona_vars, frozenset(bundle.personas))


def _reply_printer(echo_customer: bool) -> Callable[[SessionState, Reply], None]:
    """Prints each reply; `echo_customer` also prints the customer's line (piped stdin is not
    echoed by a terminal, so the transcript would lack one side)."""
    def printer(state: SessionState, reply: Reply) -> None:
        turn = reply.turn
        if echo_customer and turn is not None and turn.user is not None:
            out.print(f"[bold yellow]客户[/] {escape(turn.user)}", highlight=False)
        _print_reply(state, reply)
    return printer


def _print_reply(state: SessionState, reply: Reply) -> None:
    turn = reply.turn
    if turn is not None and turn.user is not None:
        conf = f"{turn.confidence:.2f}" if turn.confidence is not None else "-"
        out.print(f"   [dim]intent={turn.intent or '-'} conf={conf} → node={state.node}[/]")
    for u in reply.utterances:
        out.print(f"[bold cyan]机器人[/] [dim]({u.clip})[/] {u.text}")
    for a in reply.actions:
        if a.type in ("send_sms", "send_wecom", "transfer"):
            out.print(f"   [magenta]⇒ {a.type}[/] {a.text or a.to}")
    if state.ended:
        out.print(f"[bold]通话结束[/] by {state.ended_by}: outcome={state.outcome} grade={state.grade} "
                  f"tags={', '.join(state.tags)}")


def simulate(
    track: Annotated[str, typer.Option("--track", help="talk-track id")],
    customer_id: Annotated[str | None, typer.Option(
        "--customer-id", help="a stored customer; default: a fresh test customer each run")] = None,
    call_id: Annotated[str | None, typer.Option("--call-id")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", metavar="K=V", help="template variable (repeatable)")] = None,
    at: Annotated[str | None, typer.Option("--at", metavar="ISO8601", help="simulated wall-clock time (default: now)")] = None,
    audio: Annotated[list[Path] | None, typer.Option("--audio", metavar="FILE", help="audio files or a folder: one turn each")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document at the end")] = False,
) -> None:
    """Simulate a call: one customer turn per stdin line (<silence>, <hangup>, <dtmf:N>)."""
    settings = Settings()
    when = _now(settings, at)
    variables = _vars(var or [])
    customer = customer_id or f"test-{uuid.uuid4().hex[:10]}"
    _check_track(settings, track)
    # The compliance gate and the customer's facts first: a refused call never waits for the
    # NLU model to load.
    facts, test_customer = _gate(settings, customer, customer_id is None, when, as_json)
    _facts_gate(settings, track, facts, test_customer, variables, customer, when, as_json)
    from dialogue.engine import CallRefused, UnknownVariable
    from dialogue.simulate import parse_line, run_call
    from huashu.runtime import build_runtime

    runtime = build_runtime(settings)
    interactive = sys.stdin.isatty() and not as_json and not audio

    def events() -> Iterator[CustomerEvent]:
        if audio:
            from huashu.audio_turns import audio_events

            yield from audio_events(settings, audio, runtime.bundle.track(track), runtime.bundle.root,
                                    lambda: latest[0])
            return
        while True:
            if interactive:
                try:
                    line = input("客户> ")
                except EOFError:
                    return
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                if not line.strip():
                    continue
            try:
                yield parse_line(line)
            except ValueError as exc:
                err.print(f"[yellow]{exc}[/]")

    latest: list[SessionState | None] = [None]  # the call's state before the next turn (audio hints)
    printer = None if as_json else _reply_printer(echo_customer=not interactive)

    def on_reply(state: SessionState, reply: Reply) -> None:
        latest[0] = state
        if printer is not None:
            printer(state, reply)

    try:
        call = run_call(runtime.engine, track=track, customer_id=customer,
                        call_id=call_id or f"sim-{uuid.uuid4().hex[:12]}", at=when, events=events(),
                        variables=variables, on_reply=on_reply)
    except CallRefused as exc:
        _refused(settings, exc.reason, customer, when, as_json)
    except UnknownVariable as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(call.to_json(), ensure_ascii=False))


def _check_track(settings: Settings, track: str) -> None:
    """Exit 2 naming the known tracks when `track` is not one (file names only: no parsing)."""
    known = sorted(p.stem for p in (settings.effective_scripts_dir / "tracks").glob("*.yml"))
    if track not in known:
        err.print(f"[red]unknown track {track!r} (known: {', '.join(known)})[/]")
        raise typer.Exit(2)


def _gate(settings: Settings, customer_id: str, fresh: bool, when: datetime,
          as_json: bool) -> tuple[dict[str, str], bool]:
    """The compliance gate before any model or store loads, so that a refusal is immediate. A
    fresh test customer has no record, opt-out or earlier call: only the calling window can
    refuse it. A named customer goes through the store's gate (do-not-contact, window, caps).
    Returns the customer's facts and whether it is a test customer (a fresh one has none)."""
    if fresh:
        from store.gate import OUTSIDE_CALLING_WINDOW, CallingWindow, zone

        if not CallingWindow.parse(settings.calling_window).allows(when.astimezone(zone(settings.timezone))):
            _refused(settings, OUTSIDE_CALLING_WINDOW, customer_id, when, as_json)
        return {}, True
    from store import open_store

    store = open_store(settings)
    try:
        reason = store.check_contact(customer_id, when, "call")
        known = store.get_customer(customer_id)
    finally:
        store.close()
    if reason:
        _refused(settings, reason, customer_id, when, as_json)
    return (known.facts(), known.is_test) if known is not None else ({}, True)


def _facts_gate(settings: Settings, track_id: str, facts: dict[str, str], test_customer: bool,
                variables: dict[str, str], customer_id: str, when: datetime, as_json: bool) -> None:
    """Refuse a call the customer's record (or a passed date) cannot back, from the track and
    persona files alone, before the model loads; the engine checks the same again at start
    (dialogue.facts.resolve), so a script it rejects for other reasons still fails there."""
    from core.yamlio import ScriptError
    from dialogue.facts import needed_variables, resolve
    from dialogue.loader import load_persona, load_track

    root = settings.effective_scripts_dir
    try:
        track, _ = load_track(root / "tracks" / f"{track_id}.yml")
        persona, _ = load_persona(root / "personas" / track.persona)
        res = resolve(track, needed_variables(track, persona), facts=facts, call_vars=variables,
                      test_customer=test_customer, today=when.date())
    except (ScriptError, ValueError):
        return  # the engine reports broken scripts and bad values with their own messages
    if res.refused:
        _refused(settings, res.refused, customer_id, when, as_json)


def _refused(settings: Settings, reason: str, customer_id: str, when: datetime, as_json: bool) -> NoReturn:
    from huashu.cli.refusals import hint

    text = hint(reason, settings, customer_id, when)
    if as_json:
        print(json.dumps({"refused": reason, "hint": text}, ensure_ascii=False))
    else:
        err.print(f"[red]call refused: {reason}[/] — {text}", soft_wrap=True)
    raise typer.Exit(3)


def demo() -> None:
    """A demo call of wecom_add_gift printed as a transcript, then an interactive call."""
    from dialogue.demo_call import DEMO_CALL, DEMO_TRACK
    from dialogue.simulate import parse_line, run_call
    from huashu.runtime import build_runtime

    settings = Settings()
    runtime = build_runtime(settings)
    when = datetime.now(ZoneInfo(settings.timezone)).replace(hour=10, minute=0)
    out.rule(f"演示通话 demo call: {DEMO_TRACK}")
    lines = iter(DEMO_CALL)

    def scripted() -> Iterator[CustomerEvent]:
        for line in lines:
            out.print(f"[bold yellow]客户[/] {line}")
            yield parse_line(line)

    run_call(runtime.engine, track=DEMO_TRACK, customer_id="demo-customer",
             call_id=f"demo-{uuid.uuid4().hex[:8]}", at=when, events=scripted(), on_reply=_print_reply,
             variables={})
    if sys.stdin.isatty():
        out.rule("轮到你了 your turn — type as the customer; Ctrl-D hangs up")

        def typed() -> Iterator[CustomerEvent]:
            while True:
                try:
                    yield parse_line(input("客户> "))
                except EOFError:
                    return
                except ValueError as exc:
                    err.print(f"[yellow]{exc}[/]")

        run_call(runtime.engine, track=DEMO_TRACK, customer_id=f"demo-{uuid.uuid4().hex[:6]}",
                 call_id=f"demo-{uuid.uuid4().hex[:8]}", at=when, events=typed(), on_reply=_print_reply)


actions_app = typer.Typer(help="rasa-sdk actions", no_args_is_help=True)


@actions_app.command("serve")
def actions_serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 5055,
) -> None:
    """Serve huashu's built-in actions over rasa-sdk's webhook protocol (POST /webhook)."""
    from huashu.actions_server import serve

    serve(Settings(), host, port)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(simulate)
    app.command()(demo)
    app.add_typer(actions_app, name="actions")
