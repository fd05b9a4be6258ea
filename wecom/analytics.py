"""Campaign analytics over finished conversations (store.list_conversations): per-node funnel,
barge-in per clip, outcome/grade/intent distributions, fallback rate, and A/B variants with a
significance test on conversion. Pure: results in, numbers out.

Definitions (docs/wecom.md):
- reached: conversations whose node path contains the node; hung up here: conversations the
  customer ended (`ended_by == "customer"`) while waiting at the node.
- dwell: seconds from a turn that left the bot waiting at the node to the next turn; mean over
  those waits (`visits`). Records without turn times fall back to the call duration split evenly over turns.
- barge-in rate of a clip: customer turns that barged in while the clip was the last one played,
  over the times the clip was played last in a bot turn followed by a customer turn.
- fallback: a speech turn the bot did not understand (it played the track's fallback clip, or
  the NLU said out_of_scope / nothing).
- conversion: grade A (committed: agreed to add/pay, or already did).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.conversation import ConversationResult
from core.vocab import GRADES
from dialogue.schema import Branch, Track

CONVERTED_GRADES = frozenset({"A"})
ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class NodeStats:
    node: str
    reached: int
    hung_up_here: int
    visits: int
    dwell_mean_s: float | None


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """One step of the main path: conversations that got this far (in path order), how many of
    those that reached the step before did not (dropped), and how many hung up at that step."""

    node: str
    reached: int
    dropped: int
    hung_up_before: int  # of `dropped`: the customer hung up while the bot waited at the step before

    @property
    def drop_rate(self) -> float:
        previous = self.reached + self.dropped
        return self.dropped / previous if previous else 0.0


@dataclass(frozen=True, slots=True)
class ClipStats:
    clip: str
    plays: int
    barge_ins: int

    @property
    def rate(self) -> float:
        return self.barge_ins / self.plays if self.plays else 0.0


@dataclass(frozen=True, slots=True)
class VariantStats:
    variant: str
    n: int
    converted: int
    outcomes: dict[str, int]

    @property
    def rate(self) -> float:
        return self.converted / self.n if self.n else 0.0


@dataclass(frozen=True, slots=True)
class Significance:
    """A test of 'conversion differs between variants'. p_value None: too little data to test."""

    test: str
    variants: tuple[str, ...]
    statistic: float | None
    p_value: float | None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA


@dataclass(frozen=True)
class TrackReport:
    track: str
    since: datetime | None
    n: int
    outcomes: dict[str, int]
    grades: dict[str, int]
    intents: dict[str, int]
    speech_turns: int
    fallback_turns: int
    ended_by: dict[str, int]
    mean_duration_s: float | None
    nodes: tuple[NodeStats, ...]
    clips: tuple[ClipStats, ...]
    variants: tuple[VariantStats, ...]
    significance: tuple[Significance, ...]
    dwell_estimated: bool  # some records had no turn times
    funnel: tuple[FunnelStep, ...] = ()  # along the main path (main_path)
    titles: dict[str, str] = field(default_factory=dict)  # node id → the node's title

    @property
    def fallback_rate(self) -> float:
        return self.fallback_turns / self.speech_turns if self.speech_turns else 0.0

    @property
    def converted(self) -> int:
        return sum(n for g, n in self.grades.items() if g in CONVERTED_GRADES)


def node_order(track: Track) -> list[str]:
    """Nodes breadth-first from the start (the funnel's order), then any unreachable ones."""
    seen = [track.start]
    queue = [track.start]
    while queue:
        node = track.nodes[queue.pop(0)]
        targets: list[str] = [e.goto for e in node.on.values()]
        if isinstance(node.next, Branch):
            targets += [*node.next.cases.values(), node.next.default]
        elif node.next:
            targets.append(node.next)
        for t in targets:
            if t in track.nodes and t not in seen:
                seen.append(t)
                queue.append(t)
    for edge in track.handlers.values():
        if edge.goto in track.nodes and edge.goto not in seen:
            seen.append(edge.goto)
    return seen + [n for n in track.nodes if n not in seen]


def _times(result: ConversationResult) -> tuple[list[float], bool]:
    """Seconds since the start for each turn; (times, estimated)."""
    turns = result.turns
    start = result.started_at.timestamp()
    if turns and all(t.at for t in turns):
        return [datetime.fromisoformat(t.at).timestamp() - start for t in turns if t.at], False
    total = max(0.0, result.ended_at.timestamp() - start)
    step = total / len(turns) if turns else 0.0
    return [i * step for i in range(len(turns))], True


def two_proportion_z(c1: int, n1: int, c2: int, n2: int) -> tuple[float, float] | None:
    """Pooled two-proportion z-test: (z, two-sided p); None when undefined (empty or all equal)."""
    from scipy.stats import norm

    if n1 == 0 or n2 == 0:
        return None
    pooled = (c1 + c2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (c1 / n1 - c2 / n2) / se
    return z, float(2 * norm.sf(abs(z)))


def chi_square(table: Sequence[tuple[int, int]]) -> tuple[float, float] | None:
    """Chi-square test of independence on (converted, not converted) rows; None when undefined."""
    from scipy.stats import chi2_contingency

    rows = [r for r in table if sum(r) > 0]
    if len(rows) < 2 or any(sum(col) == 0 for col in zip(*rows, strict=True)):
        return None
    stat, p, _, _ = chi2_contingency(rows, correction=False)
    return float(stat), float(p)


def _significance(variants: list[VariantStats]) -> list[Significance]:
    if len(variants) < 2:
        return []
    names = tuple(v.variant for v in variants)
    out = []
    if len(variants) == 2:
        a, b = variants
        z = two_proportion_z(a.converted, a.n, b.converted, b.n)
        out.append(Significance("two-proportion z-test", names, None if z is None else z[0],
                                None if z is None else z[1]))
    chi = chi_square([(v.converted, v.n - v.converted) for v in variants])
    out.append(Significance("chi-square", names, None if chi is None else chi[0], None if chi is None else chi[1]))
    return out


def analyse(results: Sequence[ConversationResult], track_id: str, track: Track | None = None,
            since: datetime | None = None) -> TrackReport:
    """The report numbers for `results` (all of one track)."""
    reached: Counter[str] = Counter()
    hung: Counter[str] = Counter()
    visits: Counter[str] = Counter()
    dwell: defaultdict[str, list[float]] = defaultdict(list)
    plays: Counter[str] = Counter()
    barges: Counter[str] = Counter()
    intents: Counter[str] = Counter()
    by_variant: defaultdict[str, list[ConversationResult]] = defaultdict(list)
    speech = fallback = 0
    estimated = False
    durations: list[float] = []
    fallback_clip = track.fallback.clip if track else None
    for r in results:
        by_variant[r.variant].append(r)
        durations.append(max(0.0, (r.ended_at - r.started_at).total_seconds()))
        for node in dict.fromkeys(r.node_path):
            reached[node] += 1
        if r.ended_by == "customer" and r.turns:
            hung[r.turns[-1].node] += 1
        times, est = _times(r)
        estimated |= est and len(r.turns) > 0
        for i, turn in enumerate(r.turns):
            if i + 1 < len(r.turns):  # the bot waited at turn.node until the next turn
                visits[turn.node] += 1
                dwell[turn.node].append(max(0.0, times[i + 1] - times[i]))
            if turn.kind == "speech":
                speech += 1
                intents[turn.intent or "none"] += 1
                played = {u.clip for u in turn.bot}
                if (fallback_clip and fallback_clip in played) or turn.intent in (None, "out_of_scope"):
                    fallback += 1
            if i > 0 and turn.kind in ("speech", "dtmf", "silence"):
                prev = r.turns[i - 1]
                if prev.bot:
                    last_clip = prev.bot[-1].clip
                    plays[last_clip] += 1
                    if turn.barged_in:
                        barges[last_clip] += 1
    order = node_order(track) if track else list(dict.fromkeys(n for r in results for n in r.node_path))
    order += [n for n in reached if n not in order]
    nodes = tuple(NodeStats(n, reached[n], hung[n], visits[n],
                            sum(dwell[n]) / len(dwell[n]) if dwell[n] else None) for n in order)
    clips = tuple(ClipStats(c, plays[c], barges[c]) for c in sorted(plays, key=lambda c: (-plays[c], c)))
    variant_stats = [VariantStats(v or "-", len(rs), sum(1 for r in rs if r.grade in CONVERTED_GRADES),
                                  dict(Counter(r.outcome for r in rs).most_common()))
                     for v, rs in sorted(by_variant.items())]
    grades = Counter(r.grade for r in results)
    return TrackReport(
        funnel=funnel(results, main_path(results, track)),
        titles={k: v.title for k, v in track.nodes.items() if v.title} if track is not None else {},
        track=track_id, since=since, n=len(results),
        outcomes=dict(Counter(r.outcome for r in results).most_common()),
        grades={g: grades.get(g, 0) for g in GRADES}, intents=dict(intents.most_common()),
        speech_turns=speech, fallback_turns=fallback,
        ended_by=dict(Counter(r.ended_by for r in results).most_common()),
        mean_duration_s=sum(durations) / len(durations) if durations else None,
        nodes=nodes, clips=clips, variants=tuple(variant_stats),
        significance=tuple(_significance(variant_stats)), dwell_estimated=estimated)


def main_path(results: Sequence[ConversationResult], track: Track | None) -> tuple[str, ...]:
    """The track's main path as customers walk it: the most common node path of the converted
    conversations (grade A), else of all; a revisited node counts once, at its first visit.
    Without conversations, the start node."""
    def first_visits(path: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(path))
    converted = [first_visits(r.node_path) for r in results if r.grade in CONVERTED_GRADES and r.node_path]
    pool = converted or [first_visits(r.node_path) for r in results if r.node_path]
    if pool:
        return Counter(pool).most_common(1)[0][0]
    return (track.start,) if track is not None else ()


def _reached(path: Sequence[str], steps: Sequence[str]) -> int:
    """How many leading steps of `steps` the path visits in order (gaps allowed)."""
    i = 0
    for node in path:
        if i < len(steps) and node == steps[i]:
            i += 1
    return i


def funnel(results: Sequence[ConversationResult], steps: Sequence[str]) -> tuple[FunnelStep, ...]:
    """Conversations per main-path step; each step counts those that also passed every step before."""
    depth = [(_reached(r.node_path, steps), r) for r in results]
    out: list[FunnelStep] = []
    previous = len(results)
    for i, node in enumerate(steps):
        reached = sum(1 for d, _ in depth if d > i)
        stopped = [r for d, r in depth if d == i]  # got to the step before, never here
        hung_up = sum(1 for r in stopped if r.ended_by == "customer") if i else 0
        out.append(FunnelStep(node, reached, previous - reached, hung_up))
        previous = reached
    return tuple(out)
