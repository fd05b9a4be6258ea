"""Earlier AI calls for demo customers (`huashu customers demo`), each one a call its track could
have had: a track the customer's record allows, a path through that track's real nodes, and an
outcome, grade and tags that path produces (dialogue.paths walks the track as the policy does).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from core.conversation import ConversationResult, TurnRecord
from core.customers import Customer, CustomerRecord
from dialogue.facts import campaign_samples, needed_variables, resolve
from dialogue.loader import Bundle, load_bundle
from dialogue.paths import HANGUP, SILENCE, TrackPath, track_paths
from dialogue.policy import DEFAULT_INTENT_TAGS
from dialogue.schema import Track

SHARE_CALLED = 0.18  # of demo customers, how many were called before
# How often each outcome ends a demo call (outcomes a track cannot produce are never chosen).
OUTCOME_WEIGHTS = {"high_intent": 18, "call_back_later": 14, "not_interested": 20, "no_response": 18,
                   "promised_to_pay": 8, "wechat_added": 8, "do_not_contact": 6, "hung_up_early": 6,
                   "complaint": 2, "deposit_paid": 4, "balance_paid": 4, "payment_issue": 3,
                   "completed": 5, "transferred": 2, "wrong_number": 2}
# What a customer says for an intent in a demo transcript.
SAYS = {"affirm": "好的，可以", "deny": "不用了，谢谢", "busy": "我现在在忙，晚点再说吧", "opt_out": "以后别再打了",
        "greet": "喂，你好", "ask_price": "多少钱啊？", "ask_detail": "具体是什么活动？", "thanks_bye": "好的谢谢，再见",
        "complaint": "上次买的东西有问题，一直没人处理", "wrong_person": "你打错了吧", "transfer": "帮我转人工",
        "already_paid": "我已经付过了", "already_added": "我已经加过了", "will_pay": "好，我晚点付",
        "payment_problem": "付款一直失败", "ask_how_to_add": "怎么加？", "ask_product": "这个孕妇能用吗？",
        "ask_robot": "你是机器人吗？", "ask_identity": "你是哪里？", "ask_logistics": "什么时候发货？"}


def default_bundle() -> Bundle:
    import scripts_zh

    return load_bundle(Path(scripts_zh.__file__).parent)


def _fits(track: Track, c: Customer) -> bool:
    """Tracks a campaign would send this customer (presale before a deposit, balance after)."""
    if track.id == "presale_deposit":
        return not c.deposit_paid
    if track.id == "balance_reminder":
        return c.deposit_paid and not c.balance_paid
    return True


class HistoryMaker:
    """Turns demo customers into earlier calls. Paths are walked once per (track, known facts)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._paths: dict[tuple[str, frozenset[str]], dict[str, TrackPath]] = {}

    def call(self, rec: CustomerRecord, started: datetime, rng: random.Random) -> ConversationResult | None:
        customer = rec.as_customer()
        options: list[tuple[Track, dict[str, str]]] = []
        for track in sorted(self.bundle.tracks.values(), key=lambda t: t.id):
            if track.channel != "call" or not _fits(track, customer):
                continue
            res = resolve(track, needed_variables(track, self.bundle.persona_for(track)), facts=customer.facts(),
                          call_vars=campaign_samples(track, started.date()), test_customer=False, today=started.date())
            if res.refused is None:
                options.append((track, res.values))
        if not options:
            return None
        track, values = rng.choice(options)
        key = (track.id, frozenset(values))
        if key not in self._paths:
            self._paths[key] = track_paths(track, values.keys())
        paths = self._paths[key]
        outcomes = sorted(paths)
        path = paths[rng.choices(outcomes, weights=[OUTCOME_WEIGHTS.get(o, 1) for o in outcomes])[0]]
        return _result(track, rec.customer_id, path, started, rng)


def _result(track: Track, customer_id: str, path: TrackPath, started: datetime,
            rng: random.Random) -> ConversationResult:
    intent_tags = {**DEFAULT_INTENT_TAGS, **track.intent_tags}
    tags = list(path.tags)
    tags += [t for i, _ in path.moves if (t := intent_tags.get(i)) and t not in tags]
    at = started
    turns = [TurnRecord(user=None, kind="start", intent=None, confidence=None, node=path.opening, bot=(),
                        actions=(), at=at.isoformat())]
    for intent, node in path.moves:
        at += timedelta(seconds=rng.randrange(5, 25))
        kind = "hangup" if intent == HANGUP else "silence" if intent == SILENCE else "speech"
        speech = kind == "speech"
        turns.append(TurnRecord(user=SAYS.get(intent, "嗯") if speech else f"<{kind}>", kind=kind,
                                intent=intent if speech else None, confidence=0.9 if speech else None,
                                node=node, bot=(), actions=(), at=at.isoformat()))
    last = path.moves[-1][0] if path.moves else HANGUP
    return ConversationResult(
        conversation_id=f"demo-call-{customer_id}", customer_id=customer_id, track=track.id,
        persona=track.persona, channel="call", variant="", started_at=started,
        ended_at=at + timedelta(seconds=rng.randrange(3, 15)), outcome=path.outcome, grade=path.grade,
        tags=tuple(tags), slots={}, node_path=path.nodes, turns=tuple(turns),
        ended_by="customer" if last == HANGUP else "bot")


def generate_history(customers: Sequence[CustomerRecord], seed: int, now: datetime,
                     bundle: Bundle | None = None) -> tuple[list[ConversationResult], list[tuple[str, str, datetime]]]:
    """Earlier AI calls for some customers: their results, and contact attempts (id, call id, at).
    The same (customers, seed, now, tracks) always give the same history."""
    maker = HistoryMaker(bundle or default_bundle())
    rng = random.Random(seed + 1)
    results: list[ConversationResult] = []
    attempts: list[tuple[str, str, datetime]] = []
    for c in customers:
        if rng.random() >= SHARE_CALLED:
            continue
        started = now - timedelta(hours=rng.randrange(2, 24 * 10), minutes=rng.randrange(60))
        result = maker.call(c, started, rng)
        if result is not None:
            results.append(result)
            attempts.append((c.customer_id, result.conversation_id, started))
    return results, attempts
