"""The facts check of a call touch, before it is placed: the step's talk track must be able to say
everything it would say about this customer from their record and the campaign's values, else the
touch is skipped `missing_fact:<variable>` / `expired:<variable>` — the refusal `POST /v1/calls`
would answer when the call connects, and what `campaign plan` leaves out (dialogue.facts)."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from campaign.spec import RunCampaign, RunStep
from dialogue.facts import BadValue, needed_variables, resolve

if TYPE_CHECKING:
    from dialogue.loader import Bundle
    from store.sql import SqlStore


class FactsCheck:
    """`check(camp, step, customer_id, today)` → the refusal reason, or None. The talk tracks are
    loaded on the first call touch (message-only campaigns never read them)."""

    def __init__(self, store: SqlStore, scripts_dir: Path) -> None:
        self.store = store
        self.scripts_dir = scripts_dir
        self._bundle: Bundle | None = None
        self._lock = threading.Lock()
        self._needed: dict[str, tuple[str, ...]] = {}  # per track: what a call cannot do without

    @property
    def bundle(self) -> Bundle:
        with self._lock:
            if self._bundle is None:
                from dialogue.loader import load_bundle

                self._bundle = load_bundle(self.scripts_dir)
            return self._bundle

    def refusals(self, camp: RunCampaign, step: RunStep, customer_ids: list[str], today: date) -> dict[str, str]:
        """Of these customers, those whose call would be refused, with the reason (what
        dialogue.facts.task_vars answers for `campaign plan`, with the track's needs computed once)."""
        bundle = self.bundle
        track = bundle.tracks.get(step.spec.track)
        if track is None:
            return dict.fromkeys(customer_ids, f"unknown_track:{step.spec.track}"[:80])
        variables = {**camp.file.vars, **step.spec.vars}
        persona = bundle.persona_for(track)
        if set(variables) - set(track.variables) - set(persona.variables):
            return dict.fromkeys(customer_ids, "invalid_vars")  # the campaign gives the track a variable it lacks
        needed = self._needed.get(track.id)
        if needed is None:
            needed = self._needed[track.id] = needed_variables(track, persona)
        customers = self.store.customers_by_id(customer_ids)
        out: dict[str, str] = {}
        for cid in customer_ids:
            customer = customers.get(cid)
            try:
                res = resolve(track, needed, facts=customer.facts() if customer else {}, call_vars=variables,
                              test_customer=bool(customer and customer.is_test), today=today)
            except BadValue:  # a campaign date that is not a date
                out[cid] = "invalid_vars"
                continue
            if res.refused:
                out[cid] = res.refused
        return out

    def __call__(self, camp: RunCampaign, step: RunStep, customer_id: str, today: date) -> str | None:
        return self.refusals(camp, step, [customer_id], today).get(customer_id)
