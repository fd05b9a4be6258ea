"""The WeCom agent-assist service: suggestions for a customer, the agent's pick written back to the
store (exactly once, like a call result), and messages arriving through the WeCom callback.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from core.conversation import BotAction, ConversationResult, TurnRecord, Utterance
from core.customers import Customer, CustomerStore
from core.parse import IntentClassifier, Parse
from core.settings import Settings
from core.vocab import grade_for
from dialogue.loader import Bundle
from dialogue.render import render_text
from store.phones import mask_id
from wecom.callback import CallbackMessage, CallbackVerifier, SeenStore
from wecom.context import ChatContext, build_context
from wecom.crypto import WeComCrypto
from wecom.jssdk import TicketClient
from wecom.library import Library, Reply, load_library
from wecom.suggest import HistoryItem, Suggester, SuggestResult

log = logging.getLogger("huashu.wecom")
CHAT_TRACK = "wecom_chat"  # track id of chat results in the store (never a talk track)
CHAT_NODE = "wecom_chat"
INBOX_SIZE = 20
INBOX_TTL_S = 7 * 86400  # shared inbox: a week after a customer's last message
SEEN_TTL_S = 3600  # WeCom retries within minutes; an hour covers every redelivery


class UnknownReply(KeyError):
    """The agent picked a reply id the library does not have."""


@dataclass(frozen=True, slots=True)
class WriteBack:
    """What a pick or a callback message wrote to the store."""

    written: bool  # False: nothing to record, or a replay of the same event
    conversation_id: str
    outcome: str | None
    grade: str | None
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"written": self.written, "conversation_id": self.conversation_id, "outcome": self.outcome,
                "grade": self.grade, "tags": list(self.tags)}


@dataclass(frozen=True, slots=True)
class InboxMessage:
    role: str
    text: str
    at: str
    intent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "text": self.text, "at": self.at, "intent": self.intent}


class InboxStore(Protocol):
    """The latest chat messages per customer: `Inbox` in one process, `SharedInbox` for N workers."""

    def add(self, customer_id: str, message: InboxMessage) -> None: ...

    def messages(self, customer_id: str) -> list[InboxMessage]: ...


class RecentItems(Protocol):
    def append(self, key: str, item: dict[str, Any]) -> None: ...

    def items(self, key: str) -> list[dict[str, Any]]: ...


class SharedInbox:
    """The inbox in shared storage (Redis with HUASHU_REDIS_URL): a message received by one worker
    is in the sidebar served by any other, and in the history its suggestions use."""

    def __init__(self, recent: RecentItems) -> None:
        self.recent = recent

    def add(self, customer_id: str, message: InboxMessage) -> None:
        self.recent.append(customer_id, message.to_json())

    def messages(self, customer_id: str) -> list[InboxMessage]:
        return [InboxMessage(str(d["role"]), str(d["text"]), str(d["at"]),
                             None if d.get("intent") is None else str(d["intent"]))
                for d in self.recent.items(customer_id)]


class Inbox:
    """The latest chat messages per customer in this process (what the sidebar shows as live)."""

    def __init__(self, size: int = INBOX_SIZE, max_customers: int = 10_000) -> None:
        self.size = size
        self.max_customers = max_customers
        self._items: dict[str, deque[InboxMessage]] = {}
        self._lock = threading.Lock()

    def add(self, customer_id: str, message: InboxMessage) -> None:
        with self._lock:
            if customer_id not in self._items and len(self._items) >= self.max_customers:
                self._items.pop(next(iter(self._items)))
            self._items.setdefault(customer_id, deque(maxlen=self.size)).append(message)

    def messages(self, customer_id: str) -> list[InboxMessage]:
        with self._lock:
            return list(self._items.get(customer_id, ()))


def library_for(settings: Settings, bundle: Bundle) -> Library:
    """The reply library under the scripts folder, checked against the bundle's personas."""
    persona_vars: set[str] = set()
    for persona in bundle.personas.values():
        persona_vars |= set(persona.variables)
    return load_library(settings.effective_scripts_dir / "replies", frozenset(persona_vars),
                        frozenset(bundle.personas))


class WecomService:
    """Suggestions, write-back and callbacks for one process. Thread-safe."""

    def __init__(self, settings: Settings, bundle: Bundle, classifier: IntentClassifier,
                 store: CustomerStore | None, library: Library | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.bundle = bundle
        self.library = library or library_for(settings, bundle)
        persona = bundle.personas[self.library.spec.persona]
        self.persona_id = persona.id
        self.persona_vars = {"agent_name": persona.name, "brand": persona.brand, **persona.variables}
        self.suggester = Suggester(self.library, classifier)
        self.store = store
        self.tz = ZoneInfo(settings.timezone)
        self.clock = clock or (lambda: datetime.now(self.tz))
        self.inbox: InboxStore = Inbox()
        seen: SeenStore | None = None
        if settings.redis_url:  # N workers: one inbox and one set of processed callbacks for all
            from core.shared_kv import RedisOnce, RedisRecent

            prefix = f"{settings.redis_prefix}wecom:"
            self.inbox = SharedInbox(RedisRecent(settings.redis_url, prefix=prefix, size=INBOX_SIZE,
                                                 ttl_s=INBOX_TTL_S))
            seen = RedisOnce(settings.redis_url, prefix=prefix, ttl_s=SEEN_TTL_S)
        self.verifier: CallbackVerifier | None = None
        if settings.wecom_token and settings.wecom_aes_key:
            self.verifier = CallbackVerifier(
                WeComCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id),
                settings.wecom_max_skew_s, seen)
        # The sidebar's JS-SDK signing: needs the corp id, the app's AgentId and its Secret.
        self.tickets: TicketClient | None = None
        if settings.wecom_corp_id and settings.wecom_agent_id and settings.wecom_secret:
            self.tickets = TicketClient(settings.wecom_api_base, settings.wecom_corp_id, settings.wecom_secret)

    def customer_for_contact(self, external_userid: str) -> str | None:
        """The customer behind a WeCom external contact (the imported external_userid column)."""
        lookup = getattr(self.store, "customer_id_for_external", None)
        return None if lookup is None else lookup(external_userid)

    # -- customers -------------------------------------------------------------------------
    def _customer(self, customer_id: str) -> tuple[Customer | None, dict[str, Any] | None]:
        if self.store is None:
            return None, None
        customer = self.store.get_customer(customer_id)
        profile = self.store.customer_profile(customer_id) if customer is not None else None
        return customer, profile

    def context(self, customer_id: str, stage: str | None = None, now: datetime | None = None) -> ChatContext:
        customer, profile = self._customer(customer_id)
        return build_context(self.library, self.persona_vars, customer_id, customer, profile,
                             now or self.clock(), stage)

    # -- suggestions -----------------------------------------------------------------------
    def suggest(self, customer_id: str, message: str, history: Sequence[HistoryItem] = (), k: int = 3,
                stage: str | None = None, now: datetime | None = None) -> SuggestResult:
        when = now or self.clock()
        ctx = self.context(customer_id, stage, when)
        if not history:
            history = [HistoryItem(m.role, m.text) for m in self.inbox.messages(customer_id)
                       if m.text != message]
        return self.suggester.suggest(message, ctx, history, when, k)

    # -- write-back ------------------------------------------------------------------------
    def _result(self, ctx: ChatContext, conversation_id: str, message: str, parse: Parse,
                reply: Reply | None, text: str, now: datetime, only_outcomes: frozenset[str] | None = None,
                last_slots: dict[str, object] | None = None) -> tuple[ConversationResult | None, WriteBack]:
        spec = self.library.spec
        revealed = spec.intent_outcomes.get(parse.intent)
        if only_outcomes is not None and revealed not in only_outcomes:
            revealed = None
        tags = list(spec.intent_tags.get(parse.intent, ())) if only_outcomes is None else []
        if reply is not None:
            tags += reply.tags
        if revealed:
            tags.append(revealed)
        tags = list(dict.fromkeys(tags))
        if not tags:
            return None, WriteBack(False, conversation_id, None, None, ())
        slots: dict[str, object] = {}
        if revealed:
            outcome = revealed
            time_entity = parse.entity("time")
            if revealed == "promised_to_pay" and time_entity is not None:
                slots["promised_pay_time"] = time_entity.value
        else:
            # Nothing concluded in chat: the customer's last outcome (and its promised time) stands.
            outcome = ctx.last_call.outcome or "completed"
            slots = dict(last_slots or {})
        grade = grade_for(outcome, {*tags, outcome})
        bot = (Utterance(clip=reply.id, text=text),) if reply is not None else ()
        actions = (BotAction("send_wecom", template=reply.id, text=text),) if reply is not None else ()
        turn = TurnRecord(user=message, kind="speech", intent=parse.intent, confidence=float(parse.confidence),
                          node=CHAT_NODE, bot=bot, actions=actions)
        result = ConversationResult(
            conversation_id=conversation_id, customer_id=ctx.customer_id, track=CHAT_TRACK,
            persona=self.persona_id, channel="wecom", variant="", started_at=now, ended_at=now,
            outcome=outcome, grade=grade, tags=tuple(tags), slots=slots, node_path=(CHAT_NODE,),
            turns=(turn,), ended_by="bot" if reply is not None else "customer")
        return result, WriteBack(True, conversation_id, outcome, grade, tuple(tags))

    def pick(self, customer_id: str, message: str, reply_id: str, event_id: str | None = None,
             text: str | None = None, now: datetime | None = None) -> WriteBack:
        """The agent sent library reply `reply_id` to `message`: write its tags (and any outcome the
        message revealed) back, exactly once per `event_id` (default: customer + message + reply)."""
        reply = self.library.replies.get(reply_id)
        if reply is None:
            raise UnknownReply(reply_id)
        when = now or self.clock()
        customer, profile = self._customer(customer_id)
        ctx = build_context(self.library, self.persona_vars, customer_id, customer, profile, when)
        parse = self.suggester.classify(message, (), when)
        key = event_id or hashlib.sha256(f"{customer_id}\n{message}\n{reply_id}".encode()).hexdigest()[:32]
        conversation_id = f"wecom:{customer_id}:pick:{key}"[:128]
        sent = text if text is not None else render_text(reply.text, ctx.variables)
        result, outcome = self._result(ctx, conversation_id, message, parse, reply, sent, when,
                                       last_slots=dict(customer.last_slots) if customer else None)
        if result is None or self.store is None:
            return WriteBack(False, conversation_id, outcome.outcome, outcome.grade, outcome.tags)
        new = self.store.write_result(result)
        self.inbox.add(customer_id, InboxMessage("agent", sent, when.isoformat()))
        log.info("wecom pick: customer=%s reply=%s outcome=%s new=%s", mask_id(customer_id), reply_id,
                 outcome.outcome, new)
        return WriteBack(new, conversation_id, outcome.outcome, outcome.grade, outcome.tags)

    # -- callbacks -------------------------------------------------------------------------
    def on_message(self, message: CallbackMessage, now: datetime | None = None) -> dict[str, Any]:
        """A decrypted customer message: into the inbox; an opt-out/complaint is written at once."""
        when = now or self.clock()
        # The sender is WeCom's external_userid: the customer it was imported for, if any.
        customer_id = (self.customer_for_contact(message.sender) if message.sender else None) or message.sender
        if message.msg_type != "text" or not customer_id or not message.text.strip():
            return {"handled": False, "msg_type": message.msg_type}
        parse = self.suggester.classify(message.text, (), when)
        self.inbox.add(customer_id, InboxMessage("customer", message.text, when.isoformat(), parse.intent))
        auto = frozenset(self.library.spec.auto_outcomes)
        written = WriteBack(False, "", None, None, ())
        if self.store is not None and self.library.spec.intent_outcomes.get(parse.intent) in auto:
            customer, profile = self._customer(customer_id)
            ctx = build_context(self.library, self.persona_vars, customer_id, customer, profile, when)
            conversation_id = f"wecom:{customer_id}:msg:{message.dedupe_key}"[:128]
            result, written = self._result(ctx, conversation_id, message.text, parse, None, "", when,
                                           only_outcomes=auto)
            if result is not None:
                if result.outcome == "do_not_contact":
                    self.store.mark_do_not_contact(customer_id, "opt_out", f"wecom:{message.dedupe_key}"[:64], when)
                new = self.store.write_result(result)
                written = WriteBack(new, written.conversation_id, written.outcome, written.grade, written.tags)
                log.info("wecom message: customer=%s intent=%s outcome=%s new=%s", mask_id(customer_id),
                         parse.intent, result.outcome, new)
        return {"handled": True, "customer_id": customer_id, "intent": parse.intent, **written.to_json()}
