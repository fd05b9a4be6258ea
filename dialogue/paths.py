"""Ways through a talk track: for each outcome the track can produce, one shortest path of real
nodes and the customer intents that take it (demo history, docs, coverage checks).

The walk follows the policy's moves: a waiting node's `on` edges and the track's handlers, `next`
chains and branches, `return` back to the node a side question interrupted, the silence route,
and the customer hanging up at a waiting node (hung_up_early before any reply, else completed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

from core.vocab import grade_for
from dialogue.policy import final_outcome
from dialogue.schema import BACK, Branch, Track

SILENCE = "<silence>"
HANGUP = "<hangup>"


@dataclass(frozen=True, slots=True)
class TrackPath:
    """One conversation the track can have: nodes entered (as SessionState.path records them),
    the customer's moves (an intent, <silence> or <hangup>) with the node each led to, the end."""

    track: str
    outcome: str
    grade: str
    tags: tuple[str, ...]
    nodes: tuple[str, ...]
    moves: tuple[tuple[str, str], ...]  # (intent | <silence> | <hangup>, node after it)
    opening: str  # where the bot first waits for the customer


@dataclass(frozen=True, slots=True)
class _At:
    node: str
    tags: tuple[str, ...]
    back: str | None  # the waiting node a side question returns to
    replied: bool


def _branch_target(branch: Branch, known: Collection[str]) -> str:
    """A variable branch follows the customer's facts; a slot branch takes the no-value way
    (the walk fills no slots), else its default."""
    if branch.var is not None:
        return branch.default if branch.var in known else (branch.unset or branch.default)
    return branch.unset or branch.default


def _enter(track: Track, at: _At, node_id: str, nodes: list[str], edge_tags: tuple[str, ...],
           known: Collection[str]) -> list[tuple[_At, list[str], str | None]]:
    """Follow automatic moves from entering `node_id`; every (waiting node | end outcome) reached."""
    out: list[tuple[_At, list[str], str | None]] = []
    stack = [(node_id, list(nodes), tuple(dict.fromkeys((*at.tags, *edge_tags))), at.back)]
    for _ in range(64 * len(track.nodes)):
        if not stack:
            break
        nid, path, tags, back = stack.pop()
        node = track.nodes[nid]
        path = [*path, nid]
        tags = tuple(dict.fromkeys((*tags, *(a["tag"] for a in node.actions
                                             if isinstance(a, dict) and "tag" in a))))
        if node.end is not None:
            tags = tuple(dict.fromkeys((*tags, *node.end.tags)))
            out.append((_At(nid, tags, back, at.replied), path, final_outcome(track, tags, node.end.outcome)))
        elif node.transfer is not None:
            out.append((_At(nid, tags, back, at.replied), path, final_outcome(track, tags, "transferred")))
        elif node.return_:
            stack.append((back or track.start, path, tags, None))
        elif isinstance(node.next, Branch):
            stack.append((_branch_target(node.next, known), path, tags, back))
        elif isinstance(node.next, str):
            stack.append((node.next, path, tags, back))
        else:
            out.append((_At(nid, tags, back, at.replied), path, None))
    return out


def track_paths(track: Track, known: Collection[str] = (), max_moves: int = 6) -> dict[str, TrackPath]:
    """Outcome → one shortest conversation that ends with it, for a customer whose call has the
    variables `known` set (variable branches follow them)."""
    found: dict[str, TrackPath] = {}
    start = _At(track.start, (), None, False)
    queue: deque[tuple[_At, list[str], list[tuple[str, str]]]] = deque()
    for at, path, outcome in _enter(track, start, track.start, [], (), known):
        if outcome is None:
            queue.append((at, path, []))
    opening = queue[0][0].node if queue else track.start
    seen: set[tuple[str, tuple[str, ...], str | None]] = set()
    while queue:
        at, path, moves = queue.popleft()
        key = (at.node, tuple(sorted(at.tags)), at.back)
        if key in seen or len(moves) >= max_moves:
            continue
        seen.add(key)
        node = track.nodes[at.node]
        hung = final_outcome(track, at.tags, "completed" if at.replied else "hung_up_early")
        _keep(found, track, hung, at.tags, path, [*moves, (HANGUP, at.node)], opening)
        edges = [(i, e.goto, e.tags) for i, e in node.on.items() if i != "*"]
        edges += [(i, e.goto, e.tags) for i, e in track.handlers.items() if i not in node.on]
        edges.append((SILENCE, track.silence.then, ()))
        for intent, goto, tags in edges:
            if goto == BACK:
                continue
            side = track.nodes[goto].return_ or goto in {e.goto for e in track.handlers.values()}
            moved = _At(at.node, at.tags, at.node if side else at.back, intent != SILENCE or at.replied)
            for new, new_path, outcome in _enter(track, moved, goto, path, tags, known):
                step = [*moves, (intent, new.node)]
                if outcome is not None:
                    _keep(found, track, outcome, new.tags, new_path, step, opening)
                else:
                    queue.append((new, new_path, step))
    return found


def _keep(found: dict[str, TrackPath], track: Track, outcome: str, tags: tuple[str, ...],
          nodes: list[str], moves: list[tuple[str, str]], opening: str) -> None:
    if outcome in found:
        return
    all_tags = tuple(dict.fromkeys((*tags, outcome)))
    found[outcome] = TrackPath(track.id, outcome, grade_for(outcome, set(all_tags)), all_tags,
                               tuple(nodes), tuple(moves), opening)
