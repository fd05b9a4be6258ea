"""Definition-time graph checks of a talk track against its persona and the contract vocabulary.

Like python-statemachine's checks: nothing starts with an unreachable node, a node that can never
reach an end, an unknown intent, clip, action, template, tag or variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from core.vocab import INTENT_SET, OUTCOME_SET, TAG_SET
from core.yamlio import Problem, SourceMap
from dialogue.facts import binding_problems
from dialogue.schema import BACK, Branch, Node, Persona, Track

PSEUDO_INTENTS = frozenset({"transfer"})  # DTMF 0 / "转人工" routes through this handler
DICT_ACTIONS = frozenset({"send_sms", "send_wecom", "tag"})
_VAR = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
BUILTIN_VARIABLES = frozenset({"agent_name", "brand"})
# Store actions a track must not run: the engine writes these itself, once per conversation.
ENGINE_WRITES = {
    "action_mark_do_not_contact": "the engine writes a call's opt-out itself when it ends with the "
                                  "do_not_contact tag; drop the action so the opt-out is written once",
    "action_write_outcome": "the engine writes every finished call's outcome itself; drop the action",
}


def template_variables(text: str) -> list[str]:
    return _VAR.findall(text)


def _targets(track: Track, node_id: str) -> Iterator[str]:
    node = track.nodes[node_id]
    if node.waits:
        yield from (e.goto for e in node.on.values())
        yield from (e.goto for e in track.handlers.values())
        yield track.silence.then
        yield track.fallback.then
    if isinstance(node.next, str):
        yield node.next
    elif isinstance(node.next, Branch):
        yield from node.next.cases.values()
        if node.next.unset is not None:
            yield node.next.unset
        yield node.next.default
    if node.actions and track.action_endpoint is not None:
        yield track.action_endpoint.fallback


def check_track(track: Track, src: SourceMap, personas: dict[str, Persona],
                known_actions: frozenset[str] | None = None) -> list[Problem]:
    """All problems of one track (empty list: valid)."""
    persona = personas.get(track.persona)
    if persona is None:
        known = ", ".join(sorted(personas)) or "none"
        return [Problem(src.file, src.line(key="persona"), "", f"unknown persona {track.persona!r} (known: {known})")]
    checker = _TrackChecker(track, persona, src, known_actions)
    checker.check_track_level()
    for node_id, node in track.nodes.items():
        checker.check_node(node_id, node)
    checker.check_variables()
    if checker.problems:  # graph walks assume the references are sound
        return checker.problems
    _check_graph(track, checker.bad)
    return checker.problems


class _TrackChecker:
    """The reference checks of one track, one named step each; findings collect in `problems`."""

    def __init__(self, track: Track, persona: Persona, src: SourceMap, known_actions: frozenset[str] | None) -> None:
        self.track, self.persona, self.src, self.known_actions = track, persona, src, known_actions
        self.problems: list[Problem] = []
        self.used_clips: set[str] = {c for c in (track.silence.clip, track.fallback.clip, track.repeat_clip) if c}
        self.used_templates: set[str] = set()

    def bad(self, node: str, message: str, key: str = "") -> None:
        self.problems.append(Problem(self.src.file, self.src.line(node, key), node, message))

    def target(self, node: str, target: str, what: str) -> None:
        if target != BACK and target not in self.track.nodes:
            self.bad(node, f"{what} goes to unknown node {target!r}")

    def intents(self, node: str, intents: Iterable[str], what: str) -> None:
        for intent in intents:
            if intent not in INTENT_SET and intent not in PSEUDO_INTENTS and intent != "*":
                self.bad(node, f"unknown intent {intent!r} in {what}")

    def tags(self, node: str, tags: Iterable[str]) -> None:
        for tag in tags:
            if tag not in TAG_SET:
                self.bad(node, f"unknown tag {tag!r}")

    def clip(self, node: str, clip: str) -> None:
        if clip not in self.persona.clips:
            self.bad(node, f"unknown clip {clip!r} (not in persona {self.persona.id!r})")

    def check_track_level(self) -> None:
        """Start node, handlers, DTMF, intent tags, outcome priority, reprompts and variants."""
        track = self.track
        if track.start not in track.nodes:
            self.bad("", f"start node {track.start!r} does not exist", "start")
        self.intents("", track.handlers, "handlers")
        self.intents("", track.dtmf.values(), "dtmf")
        self.intents("", track.intent_tags, "intent_tags")
        self.tags("", track.intent_tags.values())
        for outcome in track.outcome_priority:
            if outcome not in OUTCOME_SET:
                self.bad("", f"unknown outcome {outcome!r} in outcome_priority", "outcome_priority")
        for name, edge in track.handlers.items():
            self.target("", edge.goto, f"handler {name!r}")
            self.tags("", edge.tags)
        for rp, what in ((track.silence, "silence"), (track.fallback, "fallback")):
            self.clip("", rp.clip)
            self.target("", rp.then, what)
        if track.repeat_clip:
            self.clip("", track.repeat_clip)
        if track.action_endpoint:
            self.target("", track.action_endpoint.fallback, "action_endpoint.fallback")
        for variant, overrides in track.variants.items():
            for old, new in overrides.items():
                self.clip("", old)
                self.clip("", new)
                if not variant:
                    self.bad("", "variant names must not be empty", "variants")

    def check_node(self, node_id: str, node: Node) -> None:
        """Clips, edges, end, next/branch and the shape rules of one node, then its actions."""
        for clip in (*node.say, *node.reprompt):
            self.clip(node_id, clip)
            self.used_clips.add(clip)
        self.intents(node_id, node.on, "on")
        self.intents(node_id, node.expect, "expect")
        for edge in node.on.values():
            self.target(node_id, edge.goto, "an edge")
            self.tags(node_id, edge.tags)
            for slot in edge.set:
                if slot not in self.track.slots:
                    self.bad(node_id, f"edge sets undeclared slot {slot!r} (declare it under slots)")
        if node.end:
            if node.end.outcome not in OUTCOME_SET:
                self.bad(node_id, f"unknown outcome {node.end.outcome!r}")
            self.tags(node_id, node.end.tags)
        if isinstance(node.next, str):
            self.target(node_id, node.next, "next")
        elif isinstance(node.next, Branch):
            unset = () if node.next.unset is None else (node.next.unset,)
            for target in (*node.next.cases.values(), *unset, node.next.default):
                self.target(node_id, target, "branch")
            if node.next.slot is not None and node.next.slot not in self.track.slots:
                self.bad(node_id, f"branch on undeclared slot {node.next.slot!r}")
            if node.next.var is not None and node.next.var not in self.track.variables:
                self.bad(node_id, f"branch on undeclared variable {node.next.var!r}")
        if node.return_ and node.say == ():
            self.bad(node_id, "a return node must say something")
        if node.waits and not node.say and not node.reprompt:
            self.bad(node_id, "a node that waits for the customer must ask something (say)")
        for action in node.actions:
            self.check_action(node_id, action)

    def check_action(self, node_id: str, action: str | dict[str, str]) -> None:
        """A built-in `{send_sms|send_wecom|tag: …}` or a registered (or remote) action name."""
        if isinstance(action, dict):
            if len(action) != 1 or next(iter(action)) not in DICT_ACTIONS:
                self.bad(node_id, f"unknown action {action!r} (use one of {sorted(DICT_ACTIONS)} or an action name)")
                return
            kind, arg = next(iter(action.items()))
            if kind == "tag":
                self.tags(node_id, [arg])
            elif arg not in self.persona.templates:
                self.bad(node_id, f"unknown template {arg!r} for {kind} (not in persona {self.persona.id!r})")
            else:
                self.used_templates.add(arg)
        elif action in ENGINE_WRITES:
            self.bad(node_id, f"{action}: {ENGINE_WRITES[action]}")
        elif self.known_actions is not None and action not in self.known_actions and self.track.action_endpoint is None:
            self.bad(node_id, f"unknown action {action!r} (not registered and no action_endpoint)")

    def check_variables(self) -> None:
        """Every {variable} of a clip or template the track uses is declared somewhere, and every
        variable's binding (`from: customer.<fact>`…) is sound."""
        persona = self.persona
        declared = set(self.track.variables) | set(persona.variables) | BUILTIN_VARIABLES | set(self.track.slots)
        texts = [(c, persona.clips[c].text) for c in self.used_clips if c in persona.clips]
        texts += [(t, persona.templates[t]) for t in self.used_templates]
        for name, text in sorted(texts):
            for var in template_variables(text):
                if var not in declared:
                    self.bad("", f"clip/template {name!r} uses undeclared variable {{{var}}}", "variables")
        for name, variable in self.track.variables.items():
            for message in binding_problems(name, variable):
                self.problems.append(Problem(self.src.file, self.src.var_line(name), f"variables.{name}", message))


def _check_graph(track: Track, bad: Callable[..., None]) -> None:
    nodes = track.nodes
    waiting = [n for n, node in nodes.items() if node.waits]

    def succ(node_id: str) -> list[str]:
        out = []
        for t in _targets(track, node_id):
            out.extend(waiting if t == BACK else [t])
        if nodes[node_id].return_:
            out.extend(waiting)
        return out

    seen = {track.start}
    stack = [track.start]
    while stack:
        for t in succ(stack.pop()):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    for node_id in nodes:
        if node_id not in seen:
            bad(node_id, "unreachable node (no edge, handler or next leads here)")

    # Reverse reachability from the ends: a node that cannot reach one would trap the call.
    ends = {n for n, node in nodes.items() if node.end is not None or node.transfer is not None}
    if not ends:
        bad("", "track has no end node (end: or transfer:)", "nodes")
        return
    preds: dict[str, set[str]] = {n: set() for n in nodes}
    for n in nodes:
        for t in succ(n):
            preds[t].add(n)
    alive = set(ends)
    stack = list(ends)
    while stack:
        for p in preds[stack.pop()]:
            if p not in alive:
                alive.add(p)
                stack.append(p)
    for node_id in nodes:
        if node_id not in alive and node_id in seen:
            bad(node_id, "dead end: no path from this node to an end of the call")
