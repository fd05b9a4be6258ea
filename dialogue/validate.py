"""Definition-time graph checks of a talk track against its persona and the contract vocabulary.

Like python-statemachine's checks: nothing starts with an unreachable node, a node that can never
reach an end, an unknown intent, clip, action, template, tag or variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from core.vocab import INTENT_SET, OUTCOME_SET, TAG_SET
from core.yamlio import Problem, SourceMap
from dialogue.facts import binding_problems
from dialogue.schema import BACK, Branch, Persona, Track

PSEUDO_INTENTS = frozenset({"transfer"})  # DTMF 0 / "转人工" routes through this handler
DICT_ACTIONS = frozenset({"send_sms", "send_wecom", "tag"})
_VAR = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
BUILTIN_VARIABLES = frozenset({"agent_name", "brand"})


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
    problems: list[Problem] = []

    def bad(node: str, message: str, key: str = "") -> None:
        problems.append(Problem(src.file, src.line(node, key), node, message))

    persona = personas.get(track.persona)
    if persona is None:
        bad("", f"unknown persona {track.persona!r} (known: {', '.join(sorted(personas)) or 'none'})", "persona")
        return problems
    nodes = track.nodes

    def check_target(node: str, target: str, what: str) -> None:
        if target != BACK and target not in nodes:
            bad(node, f"{what} goes to unknown node {target!r}")

    def check_intents(node: str, intents: Iterable[str], what: str) -> None:
        for intent in intents:
            if intent not in INTENT_SET and intent not in PSEUDO_INTENTS and intent != "*":
                bad(node, f"unknown intent {intent!r} in {what}")

    def check_tags(node: str, tags: Iterable[str]) -> None:
        for tag in tags:
            if tag not in TAG_SET:
                bad(node, f"unknown tag {tag!r}")

    def check_clip(node: str, clip: str) -> None:
        if clip not in persona.clips:
            bad(node, f"unknown clip {clip!r} (not in persona {persona.id!r})")

    if track.start not in nodes:
        bad("", f"start node {track.start!r} does not exist", "start")
    check_intents("", track.handlers, "handlers")
    check_intents("", track.dtmf.values(), "dtmf")
    check_intents("", track.intent_tags, "intent_tags")
    check_tags("", track.intent_tags.values())
    for outcome in track.outcome_priority:
        if outcome not in OUTCOME_SET:
            bad("", f"unknown outcome {outcome!r} in outcome_priority", "outcome_priority")
    for name, edge in track.handlers.items():
        check_target("", edge.goto, f"handler {name!r}")
        check_tags("", edge.tags)
    for rp, what in ((track.silence, "silence"), (track.fallback, "fallback")):
        check_clip("", rp.clip)
        check_target("", rp.then, what)
    if track.repeat_clip:
        check_clip("", track.repeat_clip)
    if track.action_endpoint:
        check_target("", track.action_endpoint.fallback, "action_endpoint.fallback")
    for variant, overrides in track.variants.items():
        for old, new in overrides.items():
            check_clip("", old)
            check_clip("", new)
            if not variant:
                bad("", "variant names must not be empty", "variants")

    used_clips: set[str] = set(c for c in (track.silence.clip, track.fallback.clip, track.repeat_clip) if c)
    used_templates: set[str] = set()
    for node_id, node in nodes.items():
        for clip in (*node.say, *node.reprompt):
            check_clip(node_id, clip)
            used_clips.add(clip)
        check_intents(node_id, node.on, "on")
        check_intents(node_id, node.expect, "expect")
        for edge in node.on.values():
            check_target(node_id, edge.goto, "an edge")
            check_tags(node_id, edge.tags)
            for slot in edge.set:
                if slot not in track.slots:
                    bad(node_id, f"edge sets undeclared slot {slot!r} (declare it under slots)")
        if node.end:
            if node.end.outcome not in OUTCOME_SET:
                bad(node_id, f"unknown outcome {node.end.outcome!r}")
            check_tags(node_id, node.end.tags)
        if isinstance(node.next, str):
            check_target(node_id, node.next, "next")
        elif isinstance(node.next, Branch):
            unset = () if node.next.unset is None else (node.next.unset,)
            for target in (*node.next.cases.values(), *unset, node.next.default):
                check_target(node_id, target, "branch")
            if node.next.slot is not None and node.next.slot not in track.slots:
                bad(node_id, f"branch on undeclared slot {node.next.slot!r}")
            if node.next.var is not None and node.next.var not in track.variables:
                bad(node_id, f"branch on undeclared variable {node.next.var!r}")
        if node.return_ and node.say == ():
            bad(node_id, "a return node must say something")
        if node.waits and not node.say and not node.reprompt:
            bad(node_id, "a node that waits for the customer must ask something (say)")
        for action in node.actions:
            if isinstance(action, dict):
                if len(action) != 1 or next(iter(action)) not in DICT_ACTIONS:
                    bad(node_id, f"unknown action {action!r} (use one of {sorted(DICT_ACTIONS)} or an action name)")
                    continue
                kind, arg = next(iter(action.items()))
                if kind == "tag":
                    check_tags(node_id, [arg])
                elif arg not in persona.templates:
                    bad(node_id, f"unknown template {arg!r} for {kind} (not in persona {persona.id!r})")
                else:
                    used_templates.add(arg)
            elif known_actions is not None and action not in known_actions and track.action_endpoint is None:
                bad(node_id, f"unknown action {action!r} (not registered and no action_endpoint)")

    declared = set(track.variables) | set(persona.variables) | BUILTIN_VARIABLES | set(track.slots)
    texts = [(c, persona.clips[c].text) for c in used_clips if c in persona.clips]
    texts += [(t, persona.templates[t]) for t in used_templates]
    for name, text in sorted(texts):
        for var in template_variables(text):
            if var not in declared:
                bad("", f"clip/template {name!r} uses undeclared variable {{{var}}}", "variables")

    for name, variable in track.variables.items():
        for message in binding_problems(name, variable):
            problems.append(Problem(src.file, src.var_line(name), f"variables.{name}", message))

    if problems:  # graph walks assume the references are sound
        return problems
    _check_graph(track, bad)
    return problems


def _check_graph(track: Track, bad: object) -> None:
    assert callable(bad)
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
