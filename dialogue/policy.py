"""The talk-track policy: (state, recognised turn) -> decision. Pure and deterministic.

No I/O, no clock, no randomness: the same track, state and turn always give the same decision,
in microseconds. Custom actions are only *named* here; the engine runs them and calls `resume`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.conversation import EventKind, SessionState, Turn
from core.parse import Parse
from core.vocab import DEFAULT_DTMF, OUTCOMES, UNREACHABLE_REASON_SET, grade_for
from dialogue.schema import BACK, Branch, Edge, Node, Track

DEFAULT_INTENT_TAGS = {"ask_price": "price_sensitive", "ask_robot": "asked_robot", "ask_product": "asked_product"}
DEFAULT_OUTCOME_PRIORITY = (
    "do_not_contact", "complaint", "wrong_number", "unreachable", "balance_paid", "deposit_paid", "wechat_added",
    "promised_to_pay", "high_intent", "payment_issue", "transferred", "call_back_later",
    "not_interested", "no_response", "hung_up_early", "completed",
)
DEFAULT_THRESHOLD = 0.5
# A customer who hangs up right after saying they are busy wants a call back; after a refusal,
# they refused. Anything else after the first reply is a completed call.
HANGUP_OUTCOMES = {"busy": "call_back_later", "deny": "not_interested"}
# An explicit goal in a yes (嗯，那我加一下企业微信吧 / 好的我现在就付) answers the call's own
# question, not the offer just made (需要转人工吗？): read as this intent at the node we came from.
GOAL_INTENTS = {"add_wecom": "ask_how_to_add", "pay": "will_pay"}
# Never answered as a side question next to these: they decide the call on their own.
NO_SIDE_ANSWER = frozenset({"opt_out", "wrong_person", "complaint"})


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy wants done for one event."""

    state: SessionState
    clips: tuple[str, ...] = ()
    messages: tuple[tuple[str, str], ...] = ()  # (send_sms|send_wecom, template id)
    custom_actions: tuple[str, ...] = ()  # run by the engine, then `resume`
    terminal: str = "listen"  # listen | hangup | transfer | none
    transfer_to: str = ""
    listen_timeout_ms: int = 0
    intent: str | None = None  # the intent the policy acted on (after DTMF mapping / fallback)

    @property
    def ended(self) -> bool:
        return self.state.ended


class _Acc:
    """Accumulates what one decision says and does while nodes are entered."""

    def __init__(self) -> None:
        self.clips: list[str] = []
        self.messages: list[tuple[str, str]] = []


def _clips(track: Track, state: SessionState, clips: tuple[str, ...]) -> list[str]:
    overrides = track.variants.get(state.variant, {}) if state.variant else {}
    return [overrides.get(c, c) for c in clips]


def final_outcome(track: Track, tags: tuple[str, ...], candidate: str | None) -> str:
    """The best outcome among the tags gathered and the end node's outcome (track priority)."""
    priority = track.outcome_priority or DEFAULT_OUTCOME_PRIORITY
    pool = {t for t in tags if t in OUTCOMES}
    if candidate:
        pool.add(candidate)
    for outcome in priority:
        if outcome in pool:
            return outcome
    return candidate or next(iter(sorted(pool)), "completed")


def _finish(track: Track, state: SessionState, outcome: str, by: str, extra: tuple[str, ...] = ()) -> SessionState:
    state = state.add_tags(*extra)
    best = final_outcome(track, state.tags, outcome)
    state = state.add_tags(best)
    return state.with_(ended=True, ended_by=by, outcome=best, grade=grade_for(best, set(state.tags)),
                       pending_node=None)


def _enter(track: Track, state: SessionState, node_id: str, acc: _Acc, *, resume: bool = False,
           skip_actions: bool = False) -> Decision:
    """Enter `node_id` (and follow `next`/`return` chains) until the bot waits, runs actions or ends."""
    for _ in range(len(track.nodes) + 2):  # chains are acyclic by validation; bound anyway
        node = track.nodes[node_id]
        state = state.with_(node=node_id, path=(*state.path, node_id))
        if resume:
            acc.clips += _clips(track, state, node.reprompt or node.say)
            resume = False
        elif skip_actions:  # back from this node's custom actions: its clips were already said
            pass
        else:
            acc.clips += _clips(track, state, node.say)
            custom: list[str] = []
            if not skip_actions:
                for action in node.actions:
                    if isinstance(action, dict):
                        kind, arg = next(iter(action.items()))
                        if kind == "tag":
                            state = state.add_tags(arg)
                        else:
                            acc.messages.append((kind, arg))
                    else:
                        custom.append(action)
            if custom:
                return Decision(state.with_(pending_node=node_id), tuple(acc.clips), tuple(acc.messages),
                                tuple(custom), terminal="none")
        skip_actions = False
        if node.end is not None:
            state = _finish(track, state, node.end.outcome, "bot", node.end.tags)
            return Decision(state, tuple(acc.clips), tuple(acc.messages), terminal="hangup")
        if node.transfer is not None:
            state = _finish(track, state, "transferred", "bot")
            return Decision(state, tuple(acc.clips), tuple(acc.messages), terminal="transfer",
                            transfer_to=node.transfer)
        if node.return_:
            target = state.return_node or track.start
            state = state.with_(return_node=None)
            node_id, resume = target, True
            continue
        if node.next is not None:
            node_id = _branch(node.next, state) if isinstance(node.next, Branch) else node.next
            continue
        timeout = node.listen_timeout_ms or track.settings.listen_timeout_ms
        return Decision(state.with_(pending_node=None), tuple(acc.clips), tuple(acc.messages),
                        listen_timeout_ms=timeout)
    raise RuntimeError(f"track {track.id}: node chain from {node_id!r} does not settle")


def _branch(branch: Branch, state: SessionState) -> str:
    value = state.slots.get(branch.slot) if branch.slot is not None else \
        state.variables.get(branch.var or "")
    if value is None and branch.unset is not None:
        return branch.unset
    return branch.cases.get(str(value).lower() if isinstance(value, bool) else str(value), branch.default)


def _bot_turn(state: SessionState) -> SessionState:
    return state.with_(bot_turns=state.bot_turns + 1)


def start(track: Track, state: SessionState) -> Decision:
    """The bot's opening: enter the start node of a fresh state."""
    return _enter(track, _bot_turn(state), track.start, _Acc())


def resume(track: Track, state: SessionState, *, failed: bool = False) -> Decision:
    """Continue after the custom actions of `state.pending_node` ran (their events applied)."""
    node_id = state.pending_node
    if node_id is None:
        raise ValueError("resume called with no pending actions")
    if failed and track.action_endpoint is not None:
        return _enter(track, state.with_(pending_node=None), track.action_endpoint.fallback, _Acc())
    state = state.with_(pending_node=None, path=state.path[:-1])  # re-entered below, counted once
    return _enter(track, state, node_id, _Acc(), skip_actions=True)


def _reprompt(track: Track, state: SessionState, clip: str, acc: _Acc) -> Decision:
    node = track.nodes[state.node]
    acc.clips += _clips(track, state, (clip, *(node.reprompt or node.say)))
    return Decision(state, tuple(acc.clips), listen_timeout_ms=node.listen_timeout_ms or track.settings.listen_timeout_ms)


def _loops(track: Track, state: SessionState, edge: Edge, from_handler: bool) -> bool:
    """Does this edge keep the call where it is (a side answer, a self-loop, a jump back)?"""
    if edge.goto in (state.node, BACK) or from_handler:
        return True
    return track.nodes[edge.goto].return_


def _intent_tag(track: Track, state: SessionState, intent: str) -> SessionState:
    tag = {**DEFAULT_INTENT_TAGS, **track.intent_tags}.get(intent)
    return state.add_tags(tag) if tag else state


def _edge_for(track: Track, node: Node, intent: str) -> tuple[Edge | None, bool]:
    """The node's own edge for `intent`, else the track's handler (flagged True)."""
    edge = node.on.get(intent)
    if edge is None and intent in track.handlers:
        return track.handlers[intent], True
    return edge, False


def _secondary(turn: Turn, limit: float) -> str | None:
    parse = turn.parse
    if parse is None or parse.secondary is None or turn.kind is not EventKind.SPEECH:
        return None
    name, confidence = parse.secondary
    return name if confidence >= limit and name != parse.intent else None


def _redirect(track: Track, state: SessionState, parse: Parse | None, intent: str) -> tuple[SessionState, str]:
    """At a side node (an offer made after a side question: 需要转人工吗？) a reply that pursues
    the call's own goal is read at the node the side question came from: an intent only that
    node handles (好的我这就去付 → will_pay), or a yes naming a goal (嗯，那我加一下企业微信吧)."""
    back = state.return_node
    if back is None or back == state.node:
        return state, intent
    goal = parse.entity("goal") if parse is not None and intent == "affirm" else None
    wanted = GOAL_INTENTS.get(str(goal.value), intent) if goal is not None else intent
    here = track.nodes[state.node]
    if wanted in here.on or wanted in track.handlers:
        return state, intent
    if wanted not in track.nodes[back].on:
        return state, intent
    return state.with_(node=back, return_node=None), wanted


def _side_answer(track: Track, edge: Edge | None) -> bool:
    return edge is not None and edge.goto in track.nodes and track.nodes[edge.goto].return_


def _combine(track: Track, state: SessionState, acc: _Acc, intent: str, edge: Edge, from_handler: bool,
             second: str) -> tuple[SessionState, str, Edge, bool]:
    """Two intents in one turn. A side question next to a move (可以，那运费谁出？) is answered
    first and the move is kept; next to a call-deciding intent (opt-out, complaint, wrong person)
    nothing is answered but the other intent's tags are recorded (opt-out + complaint: both)."""
    other, other_handler = _edge_for(track, track.nodes[state.node], second)
    if other is None:
        return state, intent, edge, from_handler
    if intent in NO_SIDE_ANSWER or second in NO_SIDE_ANSWER:
        if second in NO_SIDE_ANSWER:
            state = _intent_tag(track, state.add_tags(*other.tags), second)
        return state, intent, edge, from_handler
    if _side_answer(track, edge) and not _side_answer(track, other):  # the primary is the question
        intent, second, edge, other, from_handler = second, intent, other, edge, other_handler
    if not _side_answer(track, other) or _side_answer(track, edge):
        return state, intent, edge, from_handler
    side = track.nodes[other.goto]
    acc.clips += _clips(track, state, side.say)
    state = _intent_tag(track, state.add_tags(*other.tags), second)
    return state.with_(path=(*state.path, other.goto)), intent, edge, from_handler


def decide(track: Track, state: SessionState, turn: Turn, threshold: float | None = None) -> Decision:
    """The bot's answer to one customer turn."""
    if state.ended:
        return Decision(state, terminal="hangup")
    if turn.kind is EventKind.PLAYBACK_DONE:
        return Decision(state, terminal="none")
    if turn.kind is EventKind.HANGUP:
        fallback = ("hung_up_early" if state.user_turns == 0
                    else HANGUP_OUTCOMES.get(state.last_intent or "", "completed"))
        return Decision(_finish(track, state, fallback, "customer"), terminal="none")
    if turn.kind is EventKind.UNREACHABLE:
        # Nobody to talk to: end at once, no clip (the pitch is never played to a machine).
        reason = turn.reason if turn.reason in UNREACHABLE_REASON_SET else "no_answer"
        return Decision(_finish(track, state, "unreachable", "bot", (reason,)), terminal="hangup")
    if turn.barged_in:
        state = state.add_tags("interrupted")
    acc = _Acc()
    if turn.kind is EventKind.SILENCE:
        return _silence(track, state, acc)
    intent, confidence = _heard(track, turn)
    state = _bot_turn(state.with_(user_turns=state.user_turns + 1, silence_count=0))
    limit = track.settings.confidence_threshold or threshold or DEFAULT_THRESHOLD
    edge: Edge | None = None
    from_handler = False
    if intent is not None and confidence >= limit:
        matched = _match(track, state, turn, intent, limit, acc)
        if isinstance(matched, Decision):
            return matched
        state, intent, edge, from_handler = matched
    if edge is None:
        return _not_understood(track, state, acc)
    return _follow(track, state, edge, turn, intent, from_handler=from_handler, acc=acc)


def _silence(track: Track, state: SessionState, acc: _Acc) -> Decision:
    """Reprompt after silence; past the track's limit, go to its silence exit."""
    state = _bot_turn(state.with_(silence_count=state.silence_count + 1))
    if state.silence_count > track.silence.limit:
        return _enter(track, state, track.silence.then, acc)
    return _reprompt(track, state, track.silence.clip, acc)


def _heard(track: Track, turn: Turn) -> tuple[str | None, float]:
    """The turn's intent and confidence; a DTMF key means what the track (or the default) says."""
    if turn.kind is EventKind.DTMF:
        dtmf = {**DEFAULT_DTMF, **track.dtmf}
        return dtmf.get((turn.digits or "")[:1]), 1.0
    return turn.intent, turn.confidence


def _match(track: Track, state: SessionState, turn: Turn, intent: str, limit: float,
           acc: _Acc) -> Decision | tuple[SessionState, str, Edge | None, bool]:
    """The edge a confident intent takes: the node's, the track's handler, or the node's `*` (a
    second intent in the turn may come first). Answers at once for `repeat` and for a customer
    going round in circles."""
    second = _secondary(turn, limit)
    if second == "opt_out":  # an opt-out said next to anything else is honoured first
        intent, second = second, intent
    state, intent = _redirect(track, state, turn.parse, intent)
    state = _intent_tag(track, state, intent)
    same = state.same_intent_count + 1 if intent == state.last_intent else 1
    state = state.with_(last_intent=intent, same_intent_count=same)
    node = track.nodes[state.node]
    edge, from_handler = _edge_for(track, node, intent)
    if second is not None and edge is not None:
        state, intent, edge, from_handler = _combine(track, state, acc, intent, edge, from_handler, second)
        node = track.nodes[state.node]
    if edge is None and intent == "repeat":
        clips = (track.repeat_clip,) if track.repeat_clip else ()
        acc.clips += _clips(track, state, (*clips, *(node.reprompt or node.say)))
        return Decision(state, tuple(acc.clips), intent=intent,
                        listen_timeout_ms=node.listen_timeout_ms or track.settings.listen_timeout_ms)
    if edge is None and intent != "out_of_scope":
        edge = node.on.get("*")
    if edge is not None and same > track.settings.max_same_intent and _loops(track, state, edge, from_handler):
        # The customer keeps asking the same thing and we keep answering: close politely.
        return _enter(track, state, track.fallback.then, acc)
    return state, intent, edge, from_handler


def _not_understood(track: Track, state: SessionState, acc: _Acc) -> Decision:
    """Reprompt a turn no edge takes; past the track's limit, go to its fallback exit."""
    state = state.with_(fallback_count=state.fallback_count + 1)
    if state.fallback_count > track.fallback.limit:
        return _enter(track, state, track.fallback.then, acc)
    decision = _reprompt(track, state, track.fallback.clip, acc)
    return Decision(decision.state, decision.clips, listen_timeout_ms=decision.listen_timeout_ms, intent=None)


def _set_slots(state: SessionState, edge: Edge, turn: Turn) -> SessionState:
    """The edge's `set:`: a literal (`=value`) or the value of an entity the turn carries."""
    slots = dict(state.slots)
    for slot, entity in edge.set.items():
        if entity.startswith("="):  # a literal value (e.g. churn_reason: "=price")
            slots[slot] = entity[1:]
            continue
        found = turn.parse.entity(entity) if turn.parse is not None else None
        if found is not None:
            slots[slot] = found.value
    return state.with_(slots=slots)


def _follow(track: Track, state: SessionState, edge: Edge, turn: Turn, intent: str | None, *,
            from_handler: bool, acc: _Acc) -> Decision:
    """Take the edge: its tags and slots, where a side answer returns to, then enter the target."""
    state = state.with_(fallback_count=0).add_tags(*edge.tags)
    if edge.set:
        state = _set_slots(state, edge, turn)
    if edge.goto == BACK:
        target, resume_back = state.return_node or track.start, True
        state = state.with_(return_node=None)
    else:
        target, resume_back = edge.goto, False
        if from_handler:
            state = state.with_(return_node=state.return_node or state.node)
        elif not track.nodes[target].return_:
            state = state.with_(return_node=None)
    target_node = track.nodes[target]
    if state.bot_turns > track.settings.max_bot_turns and target_node.end is None and target_node.transfer is None:
        target, resume_back = track.fallback.then, False
    decision = _enter(track, state, target, acc, resume=resume_back)
    return Decision(decision.state, decision.clips, decision.messages, decision.custom_actions,
                    decision.terminal, decision.transfer_to, decision.listen_timeout_ms, intent)
