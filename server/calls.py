"""Gateway callbacks on the engine: idempotent, serialised per call, ordered, within a budget.

Rules (issue 6, CONTRACT.md):
- the same (call_id, seq) answers the cached bytes, no second effect; concurrent duplicates wait
  on the per-call lock and then find the cache;
- a seq not newer than the call's newest has no effect; after the end every callback gets a
  hangup and writes nothing; an unknown/expired call gets a hangup and nothing is created;
- a turn that misses the budget answers a filler clip + listen; the slow turn finishes in the
  background (holding the call's lock) and its answer is owed to the next event. If its worker
  dies, the next event recomputes it from the stored pre-turn state and events;
- an opt-out (the NLU's high-precision rules, no model) goes on the do-not-contact list on receipt,
  before any lock or model; every speech/DTMF event is journaled with its seq before the turn runs,
  and whoever next holds the call's lock (a killed owner's lock is taken over, see
  server.redis_sessions) answers every journaled event it has not processed, in seq order, before
  its own: an opt-out whose worker died mid-turn still ends the call `do_not_contact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

from core import fastjson
from core.conversation import CustomerEvent, EventKind, SessionState
from core.shared_kv import SessionsUnavailable
from dialogue.engine import CallRefused, DialogueEngine
from dialogue.render import clip_url, render_text
from server import failpoints
from server.errors import Conflict, Unavailable, Unprocessable, json_bytes
from server.metrics import Metrics
from server.sessions import CallRecord, SessionStore
from store.phones import mask_id

log = logging.getLogger("huashu.server.calls")
T = TypeVar("T")

HANGUP_BODY = json_bytes({"actions": [{"type": "hangup"}], "ended": True})
STALE_BODY = json_bytes({"actions": [], "ended": False})
START_KEY = "start"

# Prepares the customer event inside the worker thread (audio: runs ASR with the node's hints).
Prepare = Callable[[SessionState], CustomerEvent]
# Whether an utterance is an opt-out by the high-precision rules (no model).
OptOutRule = Callable[[str], bool]
# Calls whose customer this process knows without asking the session store (bounded).
KNOWN_CALLS = 50_000


_STATE_FIELDS = tuple(f.name for f in fields(SessionState))


def state_dict(state: SessionState) -> dict[str, Any]:
    """SessionState → a JSON-ready dict, shallow: the engine never mutates state parts in place
    (it copies on change), so sharing them is safe and avoids asdict's deep copy on every turn."""
    return {name: getattr(state, name) for name in _STATE_FIELDS}


def event_to_json(ev: CustomerEvent) -> dict[str, Any]:
    return {"type": ev.kind.value, "text": ev.text, "confidence": ev.confidence, "digits": ev.digits,
            "barged_in": ev.barged_in, "reason": ev.reason}


def event_from_json(d: dict[str, Any]) -> CustomerEvent:
    return CustomerEvent(EventKind(d["type"]), text=d.get("text"), confidence=d.get("confidence"),
                         digits=d.get("digits"), barged_in=bool(d.get("barged_in")), reason=d.get("reason"))


def journal_entry(ev: CustomerEvent, opt_out: bool) -> bytes | None:
    """The journal's form of an event (speech with words, a keypress; others are not journaled)."""
    if ev.kind is EventKind.DTMF or (ev.kind is EventKind.SPEECH and (ev.text or "").strip()):
        d = event_to_json(ev)
        if opt_out:
            d["opt_out"] = True
        return fastjson.dumps(d)
    return None


def plan_steps(backlog: list[tuple[CustomerEvent, bool]], ev: CustomerEvent, ev_opt_out: bool,
               owed: bool) -> list[CustomerEvent]:
    """The engine steps for a turn: journaled events not yet answered (`backlog`, in seq order,
    each with its opt-out flag), then `ev`. Consecutive speech is one utterance (the customer
    went on talking while the bot was busy); an opt-out and a keypress each stand alone, so no
    neighbouring words can change how they are understood. A playback-done/silence after owed
    or journaled answers is not a step of its own: those answers are what the gateway needs."""
    steps: list[CustomerEvent] = []
    words: list[CustomerEvent] = []

    def said() -> None:
        if words:
            steps.append(words[0] if len(words) == 1 else _one_utterance(words))
            words.clear()

    for e, flagged in backlog:
        if e.kind is EventKind.SPEECH and not flagged:
            words.append(e)
        else:
            said()
            steps.append(e)
    if ev.kind is EventKind.SPEECH and (ev.text or "").strip() and not ev_opt_out:
        words.append(ev)
        said()
        return steps
    said()
    if ev.kind in (EventKind.PLAYBACK_DONE, EventKind.SILENCE) and (steps or owed):
        return steps
    return [*steps, ev]


def _one_utterance(said: list[CustomerEvent]) -> CustomerEvent:
    confidences = [e.confidence for e in said if e.confidence is not None]
    return CustomerEvent(EventKind.SPEECH, text="，".join(e.text or "" for e in said),
                         confidence=min(confidences) if confidences else None,
                         barged_in=any(e.barged_in for e in said))


def _pending_events(pending: dict[str, Any]) -> list[CustomerEvent]:
    raw = pending.get("events")
    return [event_from_json(e) for e in (raw if raw is not None else [pending["event"]])]


def _owed_then(owed: list[dict[str, Any]], actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a slow turn still owed, then this turn's answer (the owed listen is superseded)."""
    if owed and owed[-1].get("type") == "listen":
        owed = owed[:-1]
    return [*owed, *actions]


class CallService:
    """Start calls and answer events; everything durable goes through the SessionStore."""

    def __init__(self, engine: Callable[[], DialogueEngine], sessions: SessionStore, metrics: Metrics, *,
                 clock: Callable[[], datetime], budget_ms: int, lock_ttl_ms: int, filler_clip: str,
                 executor: ThreadPoolExecutor, start_executor: ThreadPoolExecutor | None = None,
                 opt_out_rule: OptOutRule | None = None, failpoint: str = "") -> None:
        self._engine = engine
        self.sessions = sessions
        self.metrics = metrics
        self.clock = clock
        self.budget_s = budget_ms / 1000
        self.lock_ttl_s = lock_ttl_ms / 1000
        self.filler_clip = filler_clip
        self.executor = executor
        # Starts (compliance gate + store writes) queue on their own threads, so that a burst of
        # new calls never delays the turns of calls in progress.
        self.start_executor = start_executor or executor
        self.background: set[asyncio.Task[None]] = set()
        self.opt_out_rule = opt_out_rule or (lambda text: False)
        self._customers: dict[str, str] = {}  # call id → customer id, for opt-outs while Redis is away
        self._failpoint = failpoints.parse(failpoint)

    @property
    def engine(self) -> DialogueEngine:
        return self._engine()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- start -------------------------------------------------------------------------------
    async def start(self, call_id: str, customer_id: str, track: str, variables: dict[str, str]) -> bytes:
        """The opening of a new call (compliance gate first). Idempotent on call_id."""
        digest = hashlib.sha256(json_bytes([customer_id, track, sorted(variables.items())])).hexdigest()
        if track not in self.engine.bundle.tracks:
            known = ", ".join(sorted(self.engine.bundle.tracks))
            raise Unprocessable(f"track: unknown track {track!r} (known: {known})")
        token = await self.sessions.lock(call_id, self.budget_s)
        if token is None:
            raise Unavailable(f"call {call_id!r} is being started by another request, retry",
                              headers={"Retry-After": "1"})
        try:
            rec = await self.sessions.load(call_id)
            if rec is not None:
                cached = await self.sessions.response(call_id, START_KEY)
                if rec.start_digest == digest and cached is not None:
                    self.metrics.replays.inc()
                    return cached
                raise Conflict(f"call_id {call_id!r} already exists (started with other parameters)")
            at = self.clock()
            try:
                state, reply = await asyncio.get_running_loop().run_in_executor(
                    self.start_executor,
                    lambda: self.engine.start(call_id, customer_id, track, at=at, variables=variables))
            except CallRefused as exc:
                self.metrics.refusals.labels(exc.reason).inc()
                log.info("call %s refused: %s", mask_id(call_id), exc.reason)
                raise
            body = json_bytes({"call_id": call_id, "actions": [a.to_json() for a in reply.actions]})
            record = CallRecord(state=state_dict(state), version=1, start_digest=digest)
            if not await self.sessions.commit(call_id, record, {START_KEY: body}, 0):
                raise Conflict(f"call_id {call_id!r} was started concurrently")
            self._remember(call_id, customer_id)
            self.metrics.calls_started.labels(track).inc()
            log.info("call %s started: track=%s customer=%s", mask_id(call_id), track, mask_id(customer_id))
            return body
        finally:
            await self.sessions.unlock(call_id, token)

    # -- a call that never connected --------------------------------------------------------
    async def unreached(self, call_id: str, customer_id: str, track: str, reason: str) -> str:
        """The gateway says this call never reached anyone (busy, no answer, failed with a SIP
        cause). A call that started (it was answered) ends through its events instead; one that
        never started gets its record here: outcome `unreachable` with the reason tag, written
        once per call id (a repeated status callback finds it there). Returns what happened:
        "live" (the caller sends the event), "recorded", "duplicate" or "no_store"."""
        from core.callstatus import unreached_result

        if await self.sessions.load(call_id) is not None:
            return "live"
        store = self.engine.store
        if store is None:
            return "no_store"
        result = unreached_result(call_id, customer_id, track, reason, self.clock())
        new = await self._run(store.write_result, result)
        log.info("call %s never connected: %s (customer %s)%s", mask_id(call_id), reason, mask_id(customer_id),
                 "" if new else ", already recorded")
        return "recorded" if new else "duplicate"

    # -- events ------------------------------------------------------------------------------
    async def event(self, call_id: str, seq: int, ev: CustomerEvent, *, prepare: Prepare | None = None,
                    t0: float | None = None) -> bytes:
        """The answer to event `seq` of a call (see the module docstring for the rules)."""
        t0 = time.monotonic() if t0 is None else t0
        key = f"e{seq}"
        self.metrics.events.labels(ev.kind.value).inc()
        opt_out = prepare is None and ev.kind is EventKind.SPEECH and self.opt_out_rule(ev.text or "")
        entry = journal_entry(ev, opt_out) if prepare is None else None
        if opt_out and entry is not None:
            await self._failpoint("receipt", call_id, opt_out)
            await self._honour_opt_out(call_id, seq, entry)
            await self._failpoint("dnc", call_id, opt_out)
        # a hangup has no one listening for a quick answer: it waits for a slow turn to finish
        wait = self.lock_ttl_s if ev.kind is EventKind.HANGUP else self.budget_s - (time.monotonic() - t0) - 0.01
        begun = await self.sessions.begin(call_id, key, wait, None if entry is None else (seq, entry))
        if begun.cached is not None:  # a replay, or a concurrent duplicate that finished first
            self.metrics.replays.inc()
            return begun.cached
        rec, token = begun.record, begun.token
        if rec is None or rec.ended:
            if token is not None:
                await self.sessions.unlock(call_id, token)
            return HANGUP_BODY
        self._remember(call_id, str(rec.state.get("customer_id", "")))
        if token is None:  # the lock stayed taken for the whole budget: a slow turn is running
            # The event is journaled: whoever next holds the call answers it, in order.
            self.metrics.fillers.inc()
            # Not cached: a gateway retry of this seq gets the real answer once the call is free.
            return json_bytes({"actions": self._filler(SessionState.from_dict(rec.state)), "ended": False})
        if begun.took_over:
            self.metrics.takeovers.inc()
            log.warning("call %s: lock taken over from a dead worker at seq %d", mask_id(call_id), seq)
        released = False
        try:
            await self._failpoint("locked", call_id, opt_out)
            if seq <= rec.last_seq and not opt_out:
                self.metrics.stale.inc()
                return STALE_BODY
            # (an opt-out that lost the race to a later event is still answered: it ends the call)
            body, released = await self._turn(call_id, token, rec, seq, ev, opt_out, begun.journal, prepare, t0)
            return body
        finally:
            if not released:
                await self.sessions.unlock(call_id, token)

    async def _honour_opt_out(self, call_id: str, seq: int, entry: bytes) -> None:
        """Journal the opt-out, then put the call's customer on the do-not-contact list, before any
        lock or model (durable: the database, or the fsync'd outbox while it is down). With the
        session store unreachable the list is still written when this worker knows the customer
        (then 503: the gateway retries). Idempotent: a retry writes both again, to no effect."""
        customer = self._customers.get(call_id)
        try:
            if customer is None:
                rec = await self.sessions.load(call_id)
                if rec is None:
                    return  # not a live call: no one to honour (the gate never let it start)
                customer = str(rec.state["customer_id"])
                self._remember(call_id, customer)
            await self.sessions.journal(call_id, seq, entry)
        except SessionsUnavailable:
            if customer is not None:
                await self._do_not_contact(call_id, customer)
            raise
        await self._failpoint("journaled", call_id, True)
        await self._do_not_contact(call_id, customer)

    async def _do_not_contact(self, call_id: str, customer: str) -> None:
        store = self.engine.store
        if store is None:
            return
        await self._run(store.mark_do_not_contact, customer, "opt_out", f"call:{call_id}", self.clock())
        self.metrics.opt_outs.inc()

    def _remember(self, call_id: str, customer_id: str) -> None:
        if call_id in self._customers or not customer_id:
            return
        if len(self._customers) >= KNOWN_CALLS:  # oldest half out (dicts keep insertion order)
            for old in list(self._customers)[: KNOWN_CALLS // 2]:
                del self._customers[old]
        self._customers[call_id] = customer_id

    async def _turn(self, call_id: str, token: str, rec: CallRecord, seq: int, ev: CustomerEvent, opt_out: bool,
                    journal: dict[int, bytes], prepare: Prepare | None, t0: float) -> tuple[bytes, bool]:
        key = f"e{seq}"
        state = SessionState.from_dict(rec.state)
        last_seq = max(seq, rec.last_seq)
        owed: list[dict[str, Any]] = []
        if rec.pending is not None:
            if rec.deferred is not None:
                owed = rec.deferred
            else:  # the slow turn's worker died before finishing: redo it from the stored input
                state, owed = await self._run(self._compute, state, _pending_events(rec.pending),
                                              datetime.fromisoformat(rec.pending["at"]), None)
        backlog = self._backlog(journal, rec.last_seq, seq)
        steps = [] if state.ended else plan_steps(backlog, ev, opt_out, bool(owed))
        if not steps:  # the filler finished / the customer waited: deliver what the slow turn owed
            body = json_bytes({"actions": owed, "ended": state.ended})
            done = rec.next(state=state_dict(state), last_seq=last_seq, pending=None, deferred=None)
            return await self._commit(call_id, token, rec, done, key, body, state,
                                      was_ended=bool(rec.state.get("ended"))), True
        at = self.clock()
        task = asyncio.ensure_future(self._run(self._compute, state, steps, at,
                                               prepare if steps[-1] is ev else None))
        if ev.kind is EventKind.HANGUP:
            await asyncio.wait({task})
        else:
            await asyncio.wait({task}, timeout=max(self.budget_s - (time.monotonic() - t0), 0.0))
        if task.done():
            new_state, actions = task.result()
            await self._failpoint("stepped", call_id, opt_out or any(flag for _, flag in backlog))
            body = json_bytes({"actions": _owed_then(owed, actions), "ended": new_state.ended})
            done = rec.next(state=state_dict(new_state), last_seq=last_seq, pending=None, deferred=None)
            return await self._commit(call_id, token, rec, done, key, body, new_state, was_ended=state.ended), True
        # Past the budget: a filler now, the real answer on the next event.
        self.metrics.fillers.inc()
        body = json_bytes({"actions": _owed_then(owed, self._filler(state)), "ended": False})
        pending = {"seq": seq, "events": [event_to_json(e) for e in steps], "at": at.isoformat()}
        marked = rec.next(state=state_dict(state), last_seq=last_seq, pending=pending, deferred=None)
        if not await self.sessions.commit(call_id, marked, {key: body}, rec.version):
            return STALE_BODY, False
        log.info("call %s seq %d over the %.0f ms budget: filler", mask_id(call_id), seq, self.budget_s * 1000)
        late = asyncio.ensure_future(self._finish_late(call_id, token, task, marked, state.ended))
        self.background.add(late)
        late.add_done_callback(self.background.discard)
        return body, True

    def _backlog(self, journal: dict[int, bytes], after: int, seq: int) -> list[tuple[CustomerEvent, bool]]:
        """Journaled events between the last answered seq and this one, in seq order."""
        backlog: list[tuple[CustomerEvent, bool]] = []
        for k in sorted(k for k in journal if after < k < seq):
            d = fastjson.loads(journal[k])
            backlog.append((event_from_json(d), bool(d.get("opt_out"))))
        if backlog:
            self.metrics.queued_speech.inc(len(backlog))
        return backlog

    async def _finish_late(self, call_id: str, token: str, task: asyncio.Future[tuple[SessionState, list[dict[str, Any]]]],
                           marked: CallRecord, was_ended: bool) -> None:
        try:
            new_state, actions = await task
            final = marked.next(state=state_dict(new_state), deferred=actions)
            if await self.sessions.commit(call_id, final, {}, marked.version, unlock=token):
                self._count_outcome(new_state, was_ended)
            return
        except Exception:
            log.exception("call %s: slow turn failed; the next event redoes it", mask_id(call_id))
        with contextlib.suppress(Exception):  # else the lease runs out: the next event redoes the turn
            await self.sessions.unlock(call_id, token)

    async def _commit(self, call_id: str, token: str, rec: CallRecord, done: CallRecord, key: str, body: bytes,
                      state: SessionState, *, was_ended: bool) -> bytes:
        """Commit the turn and release the call's lock in one step."""
        if not await self.sessions.commit(call_id, done, {key: body}, rec.version, unlock=token):
            # Someone else moved this call on (our lock lease ran out): no effect from us.
            cached = await self.sessions.response(call_id, key)
            return cached if cached is not None else STALE_BODY
        self._count_outcome(state, was_ended)
        return body

    def _count_outcome(self, state: SessionState, was_ended: bool) -> None:
        if state.ended and not was_ended:
            self.metrics.outcomes.labels(state.track_id, state.node, state.outcome or "").inc()
            log.info("call %s ended: outcome=%s grade=%s node=%s", mask_id(state.call_id), state.outcome,
                     state.grade, state.node)

    # -- engine work (worker threads) ---------------------------------------------------------
    def _compute(self, state: SessionState, events: list[CustomerEvent], at: datetime,
                 prepare: Prepare | None) -> tuple[SessionState, list[dict[str, Any]]]:
        """Step the engine through `events` in order (`prepare` makes the last one); the actions of
        every step, each step's trailing listen superseded by the next. Stops when the call ends."""
        actions: list[dict[str, Any]] = []
        for i, ev in enumerate(events):
            if state.ended:
                break
            started = time.perf_counter()
            if prepare is not None and i == len(events) - 1:
                ev = prepare(state)
            state, step = self._step(state, ev, at)
            actions = _owed_then(actions, step)
            self.metrics.nlu_latency.observe(time.perf_counter() - started)
        return state, actions

    def _step(self, state: SessionState, ev: CustomerEvent, at: datetime) -> tuple[SessionState, list[dict[str, Any]]]:
        engine = self.engine
        try:
            new_state, reply = engine.step(state, ev, at)
        except KeyError as exc:  # a track reload removed this call's track or node
            log.warning("call %s cannot continue after a track reload (%s): hanging up",
                        mask_id(state.call_id), exc)
            return state.with_(ended=True, ended_by="bot"), [{"type": "hangup"}]
        return new_state, [a.to_json() for a in reply.actions]

    def _filler(self, state: SessionState) -> list[dict[str, Any]]:
        """Filler clip (when the persona has one) + listen, from the call's current node."""
        engine = self.engine
        actions: list[dict[str, Any]] = []
        try:
            track = engine.bundle.track(state.track_id)
        except KeyError:
            return [{"type": "listen", "timeout_ms": 6000}]
        persona = engine.bundle.persona_for(track)
        spec = persona.clips.get(self.filler_clip)
        if spec is not None:
            values = {**state.variables, **state.slots}
            actions.append({"type": "play", "clip": self.filler_clip,
                            "url": clip_url(engine.config.clip_base_url, persona, self.filler_clip, values),
                            "text": render_text(spec.text, values), "barge_in": spec.barge_in})
        node = track.nodes.get(state.node)
        timeout = (node.listen_timeout_ms if node is not None else None) or track.settings.listen_timeout_ms
        actions.append({"type": "listen", "timeout_ms": timeout})
        return actions
