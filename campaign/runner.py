"""The campaign runner: plans due steps into touches and executes one touch at a time.

`tick(now)` is the scheduler's beat (plan what became due, give up on calls whose result never
came, list the touches a worker may claim); `execute(touch_id)` is the body of the Dramatiq
actor. Every decision re-reads the store at that moment: the crowd and the step's `when`, the
compliance gate (do-not-contact, calling window in the customer's zone, frequency caps) and,
for calls, the facts check, the carrier rules per callee, pacing and the trunk's concurrent-call
limit (admitted in the store, across campaigns). Call results come back through `on_call_result`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

import sqlalchemy as sa

from campaign.channels import CallPlacer, CallRequest, PlaceError
from campaign.eligibility import still_in, target_if_in, targets_in
from campaign.repo import Touch, Touches, TrunkFull, TrunkLimit
from campaign.spec import RunCampaign, RunStep
from core.callstatus import reason_tag, unreached_result
from core.vocab import UNREACHABLE_REASON_SET
from store import schema as t
from store.campaigns import render
from store.errors import StoreError
from store.gate import DO_NOT_CONTACT, OUTSIDE_CALLING_WINDOW, POWERED_OFF, zone
from store.phones import mask_id
from store.providers import MessageProvider, OutboundMessage
from store.segment_sql import Target, evaluate, provider_phones

if TYPE_CHECKING:
    from store.sql import SqlStore

log = logging.getLogger("huashu.campaign")

CARRIER_LIMIT = "carrier_limit"
CARRIER_RULES = ((timedelta(minutes=5), 3), (timedelta(hours=24), 5))  # per callee, all caller numbers
FALLBACK_SUFFIX = "~sms"
UNREACHABLE_REASONS = ("powered_off", "invalid_number", "suspended", "voicemail", "call_screening")
FALLBACK_TEXT = "【小店】{name}您好，刚才给您来电没有接通，活动详情请看这里，回T退订"
BUDGETED = ("sms", "call")  # channels handed out by budget (WeCom is not paced)
UNPACED = 10_000  # a beat's budget without a pacer
DUE_LIMIT = 10_000  # touch ids a beat lists at most
TRUNK_RETRY_S = 1.0  # a full trunk is looked at again after this (a call frees a line within minutes)
# (campaign, step, customer id, the customer's local date) → why the call would be refused, or None
Facts = Callable[[RunCampaign, RunStep, str, date], str | None]


class Paced(Exception):
    """A pacing limit is full: the touch was released and should be tried again after `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(f"paced, retry in {delay_s:.1f} s")
        self.delay_s = delay_s


@dataclass
class Runner:
    touches: Touches
    clock: Callable[[], datetime]
    sms: MessageProvider | None = None
    wecom: MessageProvider | None = None
    calls: CallPlacer | None = None
    lease: timedelta = timedelta(minutes=5)
    result_timeout: timedelta = timedelta(minutes=30)
    pacer: Callable[[Touch, RunCampaign], None] | None = None  # raises Paced when a limit is full
    facts: Facts | None = None  # the facts check of call touches (campaign.facts.FactsCheck)
    beat_s: float = 2.0  # the scheduler's beat: the span a beat's budget of paced touches covers
    held: set[str] = field(default_factory=set)  # why the last beat held due touches back (rate, trunk)
    truncated: bool = False  # the last beat listed as many unpaced touches as it may (more are due)
    _verdicts: dict[int, str | None] = field(default_factory=dict)  # the gate's, per touch of the batch
    _tz_cache: dict[str, tzinfo | None] = field(default_factory=dict)
    _tags_seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def store(self) -> SqlStore:
        return self.touches.store

    # ---- scheduler -----------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[int]:
        """Plan due steps, time out lost call results; the touch ids a worker may claim now.

        Calls and SMS are handed out by budget: per campaign and beat no more than its rate allows
        (calls/s, SMS/s × the beat) and no more calls than its trunk has free lines, so touches a
        limit would send back stay pending instead of cycling through the queue. What was held
        back, and why (`rate`: again next second, `trunk`: when a call ends), is in `self.held`."""
        now = now or self.clock()
        runs = self.touches.runs("running")
        for run in runs:
            self.plan(run["name"], now)
            self._tag_triggers(run["name"], run["started_at"], now)
        for touch_id in self.touches.stale_waiting(now - self.result_timeout):
            self.on_call_result_id(touch_id, "failed", "no_result", now)
        ids = self.touches.due_ids(now, DUE_LIMIT, skip_pending=BUDGETED)
        self.truncated = len(ids) >= DUE_LIMIT
        held: set[str] = set()
        handed: dict[str, int] = {}  # calls handed out this beat per trunk (campaigns share its free lines)
        for run in runs:
            camp, _, _ = self.touches.campaign(run["name"], fresh=False)
            for channel in BUDGETED:
                budget, why = self._budget(camp, channel, handed.get(camp.trunk.name, 0))
                got = self.touches.due_pending(now, camp.name, channel, budget + 1)
                if len(got) > budget:
                    held.add(why)
                ids += got[:budget]
                if channel == "call":
                    handed[camp.trunk.name] = handed.get(camp.trunk.name, 0) + len(got[:budget])
        self.held = held
        return ids

    def _budget(self, camp: RunCampaign, channel: str, handed: int = 0) -> tuple[int, str]:
        """How many touches of this channel the campaign may hand out this beat, and what limits it
        (`handed`: calls already handed out this beat on the campaign's trunk)."""
        pacing = camp.file.pacing
        rate = pacing.calls_per_second if channel == "call" else pacing.sms_per_second
        budget, why = (math.ceil(rate * self.beat_s), "rate") if self.pacer is not None else (UNPACED, "rate")
        if channel == "call":
            free = camp.trunk.concurrency - self.touches.in_flight(camp.trunk.name) - handed
            if pacing.trunk_concurrency is not None:
                free = min(free, pacing.trunk_concurrency - self.touches.in_flight(camp.trunk.name, camp.name))
            if free < budget:
                budget, why = max(free, 0), "trunk"
        return budget, why

    def plan(self, name: str, now: datetime) -> int:
        """Turn every scheduled step that is due into touches (once, whichever runner is first)."""
        camp, _, started = self.touches.campaign(name)
        done = self.touches.planned_steps(name)
        planned = 0
        for step in camp.steps:
            if step.spec.trigger is not None or step.id in done or started + step.offset > now:
                continue
            rows, skipped = self._step_rows(camp, step, now, started + step.offset)
            if self.touches.claim_step(name, step.id, now, skipped, rows):
                log.info("campaign %s step %s planned: %d touches, left out %s", name, step.id, len(rows), skipped)
                planned += len(rows)
        return planned

    def _step_rows(self, camp: RunCampaign, step: RunStep, now: datetime,
                   due: datetime) -> tuple[list[dict[str, object]], dict[str, int]]:
        ev = evaluate(self.store, camp.crowd, now, extra=step.when)
        skipped: dict[str, int] = {}
        if ev.excluded_dnc:
            skipped[DO_NOT_CONTACT] = ev.excluded_dnc
        if ev.duplicates:
            skipped["duplicate_phone"] = ev.duplicates
        targets = self._filter(camp, step, [tg.customer_id for tg in ev.targets], skipped)
        return [self._row(camp, step, cid, due, now) for cid in targets], skipped

    def _filter(self, camp: RunCampaign, step: RunStep, ids: list[str], skipped: dict[str, int]) -> list[str]:
        if step.spec.requires:
            sent = self.touches.sent_customers(camp.name, step.spec.requires, ids)
            if len(sent) < len(ids):
                skipped["previous_step_not_sent"] = len(ids) - len(sent)
            ids = [c for c in ids if c in sent]
        if step.spec.branch:
            mine = [c for c in ids if camp.branch_of(c) == step.spec.branch]
            if len(mine) < len(ids):
                skipped["other_branch"] = len(ids) - len(mine)
            ids = mine
        return ids

    @staticmethod
    def _row(camp: RunCampaign, step: RunStep, customer_id: str, due: datetime, now: datetime,
             channel: str | None = None, step_id: str | None = None) -> dict[str, object]:
        return {"campaign": camp.name, "step": step_id or step.id, "customer_id": customer_id,
                "channel": channel or step.spec.channel, "branch": camp.branch_of(customer_id),
                "state": "pending", "status": None, "reason": "", "attempts": 0, "due_at": due, "created_at": now}

    def _tag_triggers(self, name: str, started: datetime, now: datetime) -> None:
        """`tag:<id>` steps: tags written by calls and chats since the last beat start the step."""
        camp, _, _ = self.touches.campaign(name, fresh=False)
        wanted = {s.spec.trigger[4:] for s in camp.steps if s.spec.trigger and s.spec.trigger.startswith("tag:")}
        if not wanted:
            return
        since = max(started, self._tags_seen.get(name, started))
        tg = t.tags.c
        rows = self.store._tx(lambda conn: conn.execute(
            sa.select(tg.customer_id, tg.tag, tg.at).where(tg.tag.in_(sorted(wanted)), tg.at > since, tg.at <= now)
            .order_by(tg.at)).all())
        for customer_id, tag, at in rows:
            self.on_event(f"tag:{tag}", customer_id, at)
        self._tags_seen[name] = now

    def on_event(self, event_type: str, customer_id: str, at: datetime) -> int:
        """A customer event (paid, tagged, replied): start every step triggered by it for them."""
        started = 0
        for run in self.touches.runs("running"):
            camp, _, _ = self.touches.campaign(run["name"])
            for step in camp.steps:
                if step.spec.trigger != event_type:
                    continue
                if not still_in(self.store, camp.crowd, step.when, [customer_id], at):
                    continue
                if not self._filter(camp, step, [customer_id], {}):
                    continue
                due = at + timedelta(hours=step.spec.after_hours)
                started += self.touches.add_touches([self._row(camp, step, customer_id, due, at)])
        return started

    # ---- worker --------------------------------------------------------------------------------
    def execute(self, touch_id: int) -> str:
        """Claim one touch and act on it; returns what happened (for logs and tests)."""
        now: datetime = self.clock()
        touch = self.touches.claim(touch_id, now, self.lease)
        if touch is None:
            return "not_claimed"
        return self._run_claimed(touch, now)

    def execute_batch(self, touch_ids: list[int]) -> tuple[list[str], list[int]]:
        """Claim a batch at once; messages of one step go to their provider in one request with one
        commit per phase (calls and resumed touches take the one-by-one path). Returns what
        happened and the ids a pacing limit sent back (to enqueue again later)."""
        now: datetime = self.clock()
        claimed = self.touches.claim_many(touch_ids, now, self.lease)
        out = ["not_claimed"] * (len(set(touch_ids)) - len(claimed))
        self._verdicts.update(self._gate_batch(claimed, now))  # distinct ids per thread: one dict serves all
        try:
            return self._execute_claimed(claimed, now, out)
        finally:
            for touch in claimed:
                self._verdicts.pop(touch.id, None)

    def _execute_claimed(self, claimed: list[Touch], now: datetime, out: list[str]) -> tuple[list[str], list[int]]:
        paced: list[int] = []
        groups: dict[tuple[str, str], list[Touch]] = {}
        for touch in claimed:
            if touch.channel == "call" or touch.state == "sending" or touch.step.endswith(FALLBACK_SUFFIX):
                try:
                    out.append(self._run_claimed(touch, now))
                except Paced:
                    paced.append(touch.id)
            else:
                groups.setdefault((touch.campaign, touch.step), []).append(touch)
        for (name, step_id), group in groups.items():
            try:
                out += self._send_group(name, step_id, group, now, paced)
            except StoreError:
                raise  # the leases run out and other workers take the touches over
            except Exception as exc:  # a provider outage: try again later, never lose a touch
                log.exception("batch of %s/%s failed", name, step_id)
                for touch in group:
                    self.touches.finish(touch, state="pending", status=None, reason=f"error:{type(exc).__name__}",
                                        due_at=now + timedelta(minutes=10))
        return out, paced

    def _send_group(self, name: str, step_id: str, group: list[Touch], now: datetime, paced: list[int]) -> list[str]:
        """Pacing first (one commit releases what a full limit holds back), then the gate, then who
        still belongs to the step, right before the send: a customer who paid while this batch
        was being paced and gated is not reminded (the window left is one query and one commit)."""
        camp, _, _ = self.touches.campaign(name, fresh=False)
        step = camp.step(step_id)
        out: list[str] = []
        if self.pacer is not None:
            allowed: list[Touch] = []
            held: list[Touch] = []
            wait_s = 0.0
            for touch in group:
                try:
                    self.pacer(touch, camp)
                except Paced as p:
                    held.append(touch)
                    wait_s = max(wait_s, p.delay_s)
                    continue
                allowed.append(touch)
            self.touches.release_many(held, "paced", now + timedelta(seconds=wait_s))
            paced += [x.id for x in held]
            group = allowed
        gated: list[Touch] = []
        for touch in group:
            verdict = self._gate(touch, now)
            if verdict is None:
                gated.append(touch)
            else:
                out.append(verdict)
        targets = targets_in(self.store, camp.crowd, step.when, [x.customer_id for x in gated], now) if gated else {}
        ready: list[Touch] = []
        for touch in gated:
            if touch.customer_id in targets:
                ready.append(touch)
            else:
                out.append(self._skip(touch, now, "no_longer_matches"))
        sending = self.touches.begin_send_many(ready, now)
        if not sending:
            return out
        provider = self.sms if step.spec.channel == "sms" else self.wecom
        if provider is None:
            raise StoreError(f"no {step.spec.channel} provider configured (campaign {camp.name})")
        phones = provider_phones(self.store, [x.customer_id for x in sending]) if provider.include_phone else {}
        messages = [OutboundMessage(x.key, x.customer_id, x.channel, step.spec.template,
                                    render(step.spec.text, targets[x.customer_id]), phones.get(x.customer_id, ""),
                                    targets[x.customer_id].phone_masked) for x in sending]
        accepted = provider.send(messages)
        self.touches.sent_many([x for x in sending if x.key in accepted], now)
        for touch in sending:
            if touch.key not in accepted:
                self.touches.finish(touch, status="failed", reason="provider_rejected", at=now, result="failed")
        return out + ["sent" if x.key in accepted else "failed" for x in sending]

    def _gate_batch(self, claimed: list[Touch], now: datetime) -> dict[int, str | None]:
        """The gate's verdicts for a claimed batch, a few queries per channel instead of a few per
        touch. A customer with two touches of one channel in the batch is left to the one-by-one
        check (the first may use up the cap the second is checked against)."""
        out: dict[int, str | None] = {}
        by_channel: dict[str, list[Touch]] = {}
        for touch in claimed:
            if touch.state != "sending":
                by_channel.setdefault(touch.channel, []).append(touch)
        for channel, group in by_channel.items():
            twice = {c for c, n in Counter(x.customer_id for x in group).items() if n > 1}
            once = [x for x in group if x.customer_id not in twice]
            refused = self.store.check_contacts([(x.customer_id, x.task_id) for x in once], now, channel)
            out.update({x.id: refused.get(x.customer_id) for x in once})
        return out

    def _gate(self, touch: Touch, now: datetime) -> str | None:
        """The store's gate for one touch: None to go on, else what was done (postponed, skipped)."""
        if touch.id in self._verdicts:  # checked with its batch, at this same instant
            reason = self._verdicts.pop(touch.id)
        else:
            reason = self.store.check_contact(touch.customer_id, now, touch.channel, conversation_id=touch.task_id)
        if reason in (OUTSIDE_CALLING_WINDOW, POWERED_OFF):  # powered off today: try again tomorrow
            later = self.next_window(touch.customer_id, now if reason == OUTSIDE_CALLING_WINDOW
                                     else self.next_local_day(touch.customer_id, now))
            self.touches.finish(touch, state="pending", status=None, reason=reason, due_at=later)
            return "postponed"
        if reason is not None:
            return self._skip(touch, now, reason)
        return None

    def _run_claimed(self, touch: Touch, now: datetime) -> str:
        touch_id = touch.id
        try:
            camp, _, _ = self.touches.campaign(touch.campaign, fresh=False)
            return self._execute(camp, touch, now)
        except Paced as p:  # not due again before the limit can have room (the scheduler lists due touches)
            self.touches.finish(touch, state="pending", status=None, reason="paced",
                                due_at=now + timedelta(seconds=p.delay_s))
            raise
        except StoreError:
            raise  # the lease runs out and another worker takes the touch over
        except Exception as exc:  # a bug or a provider outage: try again later, never lose the touch
            log.exception("touch %d failed", touch_id)
            self.touches.finish(touch, state="pending", status=None, reason=f"error:{type(exc).__name__}",
                                at=now, due_at=now + timedelta(minutes=10))
            return "error"

    def _execute(self, camp: RunCampaign, touch: Touch, now: datetime) -> str:
        if touch.state == "sending":  # the worker that was sending died; its attempt stands
            if touch.channel == "call":  # never dial twice: wait for the result (or its timeout)
                self.touches.finish(touch, state="waiting", status=None)
                return "waiting"
            return self._send_message(camp, touch, now)
        base = touch.step.removesuffix(FALLBACK_SUFFIX)
        step = camp.step(base)
        target = target_if_in(self.store, camp.crowd, step.when, touch.customer_id, now)
        if target is None:
            return self._skip(touch, now, "no_longer_matches")
        verdict = self._gate(touch, now)
        if verdict is not None:
            return verdict
        trunk: TrunkLimit | None = None
        if touch.channel == "call":
            if self.facts is not None and touch.step == base:
                refused = self.facts(camp, step, touch.customer_id,
                                     now.astimezone(self.customer_zone(touch.customer_id)).date())
                if refused:
                    return self._skip(touch, now, refused)
            free_at = self.carrier_free_at(touch.customer_id, now)
            if free_at is not None:
                self.touches.finish(touch, state="pending", status=None, reason=CARRIER_LIMIT, due_at=free_at)
                return "postponed"
            trunk = TrunkLimit(camp.trunk.name, camp.trunk.concurrency, camp.file.pacing.trunk_concurrency)
        if self.pacer is not None:
            self.pacer(touch, camp)
        try:
            sending = self.touches.begin_send(touch, now, trunk, self.clock)
        except TrunkFull:
            raise Paced(TRUNK_RETRY_S) from None
        if sending is None:
            return "not_claimed"
        if touch.channel == "call":
            return self._place_call(camp, step, sending, now)
        return self._send_message(camp, sending, now, target)

    def _skip(self, touch: Touch, now: datetime, reason: str) -> str:
        self.touches.finish(touch, status="skipped", reason=reason, at=now)
        return f"skipped:{reason}"

    def _target(self, customer_id: str) -> Target:
        c, o = t.customers.c, t.orders.c
        row = self.store._tx(lambda conn: conn.execute(
            sa.select(c.customer_id, c.phone_masked, c.name, c.persona_group, c.price_sensitivity,
                      sa.func.coalesce(o.deposit_paid, sa.false()), sa.func.coalesce(o.balance_paid, sa.false()),
                      sa.func.coalesce(o.deposit_product, ""), c.last_outcome)
            .select_from(t.customers.outerjoin(t.orders)).where(c.customer_id == customer_id)).first())
        if row is None:
            raise StoreError(f"customer {mask_id(customer_id)} is gone")
        return Target(row[0], row[1], row[2], row[3], row[4], bool(row[5]), bool(row[6]), row[7], row[8])

    def _send_message(self, camp: RunCampaign, touch: Touch, now: datetime, target: Target | None = None) -> str:
        provider = self.sms if touch.channel == "sms" else self.wecom
        if provider is None:
            raise StoreError(f"no {touch.channel} provider configured (campaign {camp.name})")
        base = touch.step.removesuffix(FALLBACK_SUFFIX)
        spec = camp.step(base).spec
        text = (spec.fallback_text or FALLBACK_TEXT) if touch.step != base else spec.text
        target = target or self._target(touch.customer_id)
        phone = provider_phones(self.store, [touch.customer_id]).get(touch.customer_id, "") \
            if provider.include_phone else ""
        msg = OutboundMessage(touch.key, touch.customer_id, touch.channel, spec.template, render(text, target),
                              phone, target.phone_masked)
        accepted = touch.key in provider.send([msg])
        if not accepted:
            self.touches.finish(touch, status="failed", reason="provider_rejected", at=now, result="failed")
            return "failed"
        self.touches.finish(touch, status="sent", at=now, result="sent", contact={
            "customer_id": touch.customer_id, "conversation_id": touch.task_id, "channel": touch.channel, "at": now})
        return "sent"

    def _place_call(self, camp: RunCampaign, step: RunStep, touch: Touch, now: datetime) -> str:
        if self.calls is None:
            raise StoreError(f"no call gateway configured (campaign {camp.name})")
        phone = provider_phones(self.store, [touch.customer_id]).get(touch.customer_id, "") \
            if self.calls.include_phone else ""
        variables = {**getattr(camp.file, "vars", {}), **step.spec.vars}  # the campaign's, the step's win
        at = touch.at or now  # the admission time (the attempt's)
        request = CallRequest(touch.key, touch.customer_id, step.spec.track, variables, phone, camp.name, step.id,
                              caller_id=camp.trunk.caller_for(touch.customer_id), trunk=camp.trunk.sip_trunk)
        try:
            self.calls.place(request)
        except PlaceError as exc:
            self.touches.finish(touch, status="failed", reason=exc.reason, at=at, result="failed")
            return "failed"
        # A result that came back before this line already finished the touch: this is then a no-op.
        self.touches.finish(touch, state="waiting", status=None, at=at)
        return "placed"

    # ---- results ---------------------------------------------------------------------------------
    def on_call_result(self, call_id: str, result: str, reason: str, at: datetime, *,
                       conversation_id: str = "") -> str:
        """A gateway's result for a placed call (answered, busy, no_answer, failed, unreachable).
        `conversation_id`: the id the call's conversation was stored under when the gateway names
        calls itself (jambonz' call_sid); else the touch key."""
        touch = self.touches.by_key(call_id)
        if touch is None or touch.channel != "call" or touch.key != call_id:
            return "unknown"
        return self._result(touch, result, reason, at, conversation_id=conversation_id)

    def on_call_result_id(self, touch_id: int, result: str, reason: str, at: datetime) -> str:
        touch = self.touches.get(touch_id)
        return "unknown" if touch is None else self._result(touch, result, reason, at)

    def _result(self, touch: Touch, result: str, reason: str, at: datetime, *, conversation_id: str = "") -> str:
        if touch.state not in ("sending", "waiting"):
            return "duplicate"
        camp, _, _ = self.touches.campaign(touch.campaign, fresh=False)
        step = camp.step(touch.step)
        if result == "answered":  # the conversation may have found a machine (voicemail, announcement)
            result, reason = self._heard(conversation_id or touch.key, result, reason)
        if result == "failed" and reason.startswith("refused:"):  # our own gate or facts check said no
            ok = self.touches.finish(touch, status="skipped", reason=reason.removeprefix("refused:"), at=at,
                                     result=result, any_claim=True)
            return "skipped" if ok else "duplicate"
        if result == "answered":
            self.store.record_attempt(touch.customer_id, touch.key, at, "call")  # caps count connected calls
            ok = self.touches.finish(touch, status="answered", at=at, answered=True, result=result, any_claim=True)
            return "answered" if ok else "duplicate"
        tag = reason_tag(result, reason)
        if tag is not None:  # the line was never picked up: the store keeps why (the gate reads it)
            self.store.write_result(unreached_result(touch.key, touch.customer_id, step.spec.track or "", tag, at))
        key = reason if result == "unreachable" and reason in UNREACHABLE_REASONS else result
        rule = step.retry_rule(key)
        status = result if result in ("busy", "no_answer", "failed", "unreachable") else "failed"
        detail = reason or key
        if rule.then == "sms":
            ok = self.touches.finish(touch, status=status, reason=detail, at=at, result=result, any_claim=True)
            if ok:
                self.touches.add_touches([self._row(camp, step, touch.customer_id, at, at, "sms",
                                                    touch.step + FALLBACK_SUFFIX)])
            return "fallback_sms"
        if touch.attempts - 1 < rule.max:
            due = self.next_window(touch.customer_id, at + timedelta(hours=12)) if rule.next_day \
                else at + timedelta(minutes=max(rule.after_minutes, 10))
            ok = self.touches.finish(touch, state="pending", status=None, reason=detail, at=at, due_at=due,
                                     result=result, any_claim=True)
            return "retry" if ok else "duplicate"
        ok = self.touches.finish(touch, status=status, reason=detail, at=at, result=result, any_claim=True)
        return status if ok else "duplicate"

    def _heard(self, call_id: str, result: str, reason: str) -> tuple[str, str]:
        """An answered call whose conversation ended `unreachable` counts as unreachable (its reason tag)."""
        c = t.conversations.c
        row = self.store._tx(lambda conn: conn.execute(
            sa.select(c.outcome, c.tags).where(c.conversation_id == call_id)).first())
        if row is None or row.outcome != "unreachable":
            return result, reason
        tag = next((x for x in row.tags or () if x in UNREACHABLE_REASON_SET), "")
        return (tag, "") if tag in ("busy", "no_answer") else ("unreachable", tag)

    # ---- rules -------------------------------------------------------------------------------------
    def customer_zone(self, customer_id: str) -> tzinfo:
        if customer_id not in self._tz_cache:
            c = t.customers.c
            name = self.store._tx(lambda conn: conn.execute(
                sa.select(c.timezone).where(c.customer_id == customer_id)).scalar())
            self._tz_cache[customer_id] = zone(name, "customer timezone") if name else None
        return self._tz_cache[customer_id] or self.store.tz

    def next_window(self, customer_id: str, after: datetime) -> datetime:
        """The next opening of the calling window in the customer's zone, after `after`."""
        tz = self.customer_zone(customer_id)
        window = self.store.window
        local = after.astimezone(tz)
        if window.allows(local):
            return after
        for days in range(0, 3):
            day = (local + timedelta(days=days)).date()
            opening = datetime.combine(day, window.start, tz)
            if opening > local:
                return opening
        raise StoreError(f"calling window {window} never opens")

    def next_local_day(self, customer_id: str, after: datetime) -> datetime:
        """Midnight starting the customer's next local day."""
        local = after.astimezone(self.customer_zone(customer_id))
        return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo)

    def carrier_free_at(self, customer_id: str, now: datetime) -> datetime | None:
        """None when a call to this callee is allowed now; else when the carrier rules allow it."""
        attempts = self.touches.call_attempts(customer_id, now - timedelta(hours=24))
        free: datetime | None = None
        for span, limit in CARRIER_RULES:
            recent = [a for a in attempts if a > now - span]
            if len(recent) >= limit:
                at = recent[-limit] + span + timedelta(seconds=1)
                free = at if free is None or at > free else free
        return free
