"""The dialogue engine: NLU + the pure policy + actions + persona rendering + store write-back.

One instance serves many calls; per-call state lives in `SessionState` values that the caller
keeps (in memory, or in Redis on the server), so the engine itself holds no call state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from asr.carrier import classify_text
from core.conversation import (
    BotAction,
    ConversationResult,
    CustomerEvent,
    EventKind,
    Reply,
    SessionState,
    Turn,
    TurnRecord,
    Utterance,
)
from core.customers import CustomerStore
from core.parse import ClassifyContext, IntentClassifier, Parse
from core.vocab import TAG_SET
from dialogue import policy
from dialogue.actions import ActionFailed, ActionRunner, apply_events
from dialogue.facts import BadValue, needed_variables, resolve
from dialogue.loader import Bundle
from dialogue.policy import Decision
from dialogue.render import clip_url, render_text
from dialogue.schema import Persona, Track

log = logging.getLogger(__name__)


class CallRefused(Exception):
    """The compliance gate refused the call; `reason` is the contract's reason code."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UnknownVariable(ValueError):
    """A call variable that the track does not declare."""


@dataclass(frozen=True)
class EngineConfig:
    clip_base_url: str = "/v1/clips"
    confidence_threshold: float | None = None  # None: the policy default / the track's


class DialogueEngine:
    """Runs calls of every track in `bundle`. Thread-safe: it keeps no per-call state."""

    def __init__(self, bundle: Bundle, classifier: IntentClassifier, *, store: CustomerStore | None = None,
                 actions: ActionRunner | None = None, config: EngineConfig | None = None) -> None:
        self.bundle = bundle
        self.classifier = classifier
        self.store = store
        self.actions = actions
        self.config = config or EngineConfig()
        self._needed: dict[str, tuple[str, ...]] = {}

    def with_classifier(self, classifier: IntentClassifier) -> DialogueEngine:
        """The same engine (scripts, store, actions, config) reading customer turns with `classifier`."""
        return DialogueEngine(self.bundle, classifier, store=self.store, actions=self.actions, config=self.config)

    # -- call lifecycle --------------------------------------------------------------------
    def needed(self, track: Track) -> tuple[str, ...]:
        """The track's variables a call cannot do without (computed once per track)."""
        got = self._needed.get(track.id)
        if got is None:
            got = self._needed[track.id] = needed_variables(track, self.bundle.persona_for(track))
        return got

    def variables_for(self, track: Track, facts: Mapping[str, str] | None, call_vars: Mapping[str, str], *,
                      test_customer: bool = True, today: date | None = None) -> dict[str, str]:
        """Persona and track variables for one call: claims from the customer's `facts`, campaign
        values from `call_vars`, else defaults (test customers: samples). Raises CallRefused
        (missing_fact / expired) and UnknownVariable."""
        persona = self.bundle.persona_for(track)
        unknown = sorted(set(call_vars) - set(track.variables) - set(persona.variables))
        if unknown:
            raise UnknownVariable(f"track {track.id!r} has no variable(s) {', '.join(unknown)}; "
                                  f"declared: {', '.join(sorted(track.variables)) or 'none'}")
        try:
            res = resolve(track, self.needed(track), facts=facts, call_vars=call_vars,
                          test_customer=test_customer, today=today or date.today())
        except BadValue as exc:
            raise UnknownVariable(str(exc)) from None
        if res.refused:
            raise CallRefused(res.refused)
        out = {"agent_name": persona.name, "brand": persona.brand, **persona.variables}
        out.update({k: v for k, v in call_vars.items() if k in persona.variables})
        out.update(res.values)
        return out

    def start(self, call_id: str, customer_id: str, track_id: str, *, at: datetime,
              variables: Mapping[str, str] | None = None, channel: str = "call",
              check_gate: bool = True, facts: Mapping[str, str] | None = None) -> tuple[SessionState, Reply]:
        """Open a call: compliance gate, the customer's facts, variables, the bot's opening.
        `facts`: a record given directly (story tests), instead of the store's. Raises CallRefused."""
        track = self.bundle.track(track_id)
        test_customer = facts is None
        if self.store is not None:
            if check_gate:  # ensure_customer + check_contact in the store's one read transaction
                customer, reason = self.store.open_contact(customer_id, at, channel, conversation_id=call_id)
            else:
                customer, reason = self.store.ensure_customer(customer_id), None
            if reason:
                raise CallRefused(reason)
            if facts is None:
                facts, test_customer = customer.facts(), customer.is_test
        values = self.variables_for(track, facts, variables or {}, test_customer=test_customer,
                                    today=at.date())
        if self.store is not None:
            self.store.record_attempt(customer_id, call_id, at, channel)
        state = SessionState(
            call_id=call_id, track_id=track.id, customer_id=customer_id, node=track.start,
            started_at=at.isoformat(), variables=values,
            variant=self.variant_for(track, customer_id), channel=channel,
        )
        decision = policy.start(track, state)
        return self._finish_turn(track, decision, None, None, at)

    def step(self, state: SessionState, event: CustomerEvent, at: datetime) -> tuple[SessionState, Reply]:
        """Answer one customer event. A call that already ended answers with a hangup."""
        track = self.bundle.track(state.track_id)
        if state.ended:
            return state, Reply((), (BotAction("hangup"),), True, state.node)
        parse: Parse | None = None
        kind = event.kind
        if kind is EventKind.SPEECH and not (event.text or "").strip():
            kind = EventKind.SILENCE  # the ASR heard nothing: treat as silence, never guess
        reason = event.reason
        if kind is EventKind.SPEECH and state.user_turns == 0 and track.channel == "call":
            # The first words on the line may be the carrier's, a voicemail's or a screening
            # assistant's, not the customer's (asr.carrier).
            reason = classify_text(event.text or "")
            if reason is not None:
                kind = EventKind.UNREACHABLE
        if kind is EventKind.SPEECH:
            node = track.nodes[state.node]
            expected = node.expect or tuple(i for i in node.on if i != "*")
            parse = self.classifier.classify(event.text or "", ClassifyContext(expected, at))
        turn = Turn(kind=kind, intent=parse.intent if parse else None,
                    confidence=parse.confidence if parse else 1.0, parse=parse,
                    digits=event.digits, barged_in=event.barged_in, reason=reason)
        threshold = self.config.confidence_threshold
        decision = policy.decide(track, state, turn, threshold)
        user = event.text if kind is EventKind.SPEECH or event.text else (f"<dtmf:{event.digits}>" if kind is EventKind.DTMF
                                                             else f"<{kind.value}>")
        return self._finish_turn(track, decision, user, turn, at)

    # -- internals -------------------------------------------------------------------------
    def _run_actions(self, track: Track, decision: Decision, turn: Turn | None) -> Decision:
        """Run the custom actions the policy named, apply their events, resume the policy."""
        clips, messages = list(decision.clips), list(decision.messages)
        for _ in range(len(track.nodes)):
            if not decision.custom_actions:
                break
            state = decision.state
            failed = False
            latest = turn.parse.to_rasa() if turn and turn.parse else None
            endpoint = track.action_endpoint
            for name in decision.custom_actions:
                try:
                    if self.actions is None:
                        raise ActionFailed(f"no action runner configured for {name!r}")
                    local = name in self.actions.names
                    result = self.actions.run(
                        name, state, latest,
                        endpoint=None if local or endpoint is None else endpoint.url,
                        timeout_ms=endpoint.timeout_ms if endpoint else 1500)
                except ActionFailed as exc:
                    log.warning("call %s: %s", state.call_id, exc)
                    failed = True
                    break
                state = apply_events(state, result.events)
                state = state.with_(tags=tuple(t for t in state.tags if t in TAG_SET))
            decision = policy.resume(track, state, failed=failed)
            clips += decision.clips
            messages += decision.messages
        return Decision(decision.state, tuple(clips), tuple(messages), (), decision.terminal,
                        decision.transfer_to, decision.listen_timeout_ms, decision.intent)

    def _finish_turn(self, track: Track, decision: Decision, user: str | None, turn: Turn | None,
                     at: datetime) -> tuple[SessionState, Reply]:
        intent = decision.intent
        decision = self._run_actions(track, decision, turn)
        state = decision.state
        persona = self.bundle.persona_for(track)
        values = {**state.variables, **state.slots}
        utterances = tuple(self._utterance(persona, clip, values, at) for clip in decision.clips)
        actions: list[BotAction] = [BotAction("play", clip=u.clip, url=u.url, text=u.text, barge_in=u.barge_in)
                                    for u in utterances]
        for kind, template in decision.messages:
            actions.append(BotAction(kind, template=template, text=render_text(persona.templates[template], values, at)))
        if decision.terminal == "listen":
            actions.append(BotAction("listen", timeout_ms=decision.listen_timeout_ms))
        elif decision.terminal == "hangup":
            actions.append(BotAction("hangup"))
        elif decision.terminal == "transfer":
            actions.append(BotAction("transfer", to=decision.transfer_to))
        if turn is not None and turn.kind is EventKind.PLAYBACK_DONE:
            return state, Reply((), tuple(actions), state.ended, state.node)
        record = TurnRecord(user=user, kind=turn.kind.value if turn else "start",
                            intent=intent if turn is None or turn.kind is not EventKind.SPEECH else
                            (turn.intent if turn.parse else None),
                            confidence=turn.confidence if turn and turn.parse else None,
                            node=state.node, bot=utterances, actions=tuple(actions),
                            barged_in=bool(turn and turn.barged_in), at=at.isoformat(),
                            secondary=turn.parse.secondary if turn and turn.parse else None)
        state = state.with_(turns=(*state.turns, record.to_json()))
        if state.ended:
            self._write_back(state, at)
        return state, Reply(utterances, tuple(actions), state.ended, state.node, record)

    def _utterance(self, persona: Persona, clip: str, values: Mapping[str, Any], at: datetime) -> Utterance:
        spec = persona.clips[clip]
        return Utterance(clip=clip, text=render_text(spec.text, values, at), barge_in=spec.barge_in,
                         url=clip_url(self.config.clip_base_url, persona, clip, values, at))

    def _write_back(self, state: SessionState, at: datetime) -> None:
        if self.store is None:
            return
        if "do_not_contact" in state.tags:
            # The one writer of a call's opt-out (tracks run no opt-out action), timed with the
            # turn and durable before the bot's goodbye is returned: honoured at once and forever.
            self.store.mark_do_not_contact(state.customer_id, "opt_out", f"call:{state.call_id}", at)
        self.store.write_result(self.result(state, at))

    def result(self, state: SessionState, ended_at: datetime) -> ConversationResult:
        """The finished conversation as written to the store."""
        if not state.ended or state.outcome is None or state.grade is None:
            raise ValueError(f"call {state.call_id} has not ended")
        track = self.bundle.track(state.track_id)
        return ConversationResult(
            conversation_id=state.call_id, customer_id=state.customer_id, track=state.track_id,
            persona=track.persona, channel=state.channel, variant=state.variant,
            started_at=datetime.fromisoformat(state.started_at), ended_at=ended_at,
            outcome=state.outcome, grade=state.grade, tags=state.tags, slots=dict(state.slots),
            node_path=state.path, turns=tuple(TurnRecord.from_json(t) for t in state.turns),
            ended_by=state.ended_by or "bot",
        )

    @staticmethod
    def variant_for(track: Track, customer_id: str) -> str:
        """Deterministic A/B assignment per customer (stable across calls and processes)."""
        if not track.variants:
            return ""
        import hashlib

        names = sorted(track.variants)
        digest = hashlib.sha256(f"{track.id}:{customer_id}".encode()).digest()
        return names[int.from_bytes(digest[:4], "big") % len(names)]
