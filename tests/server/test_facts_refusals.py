"""POST /v1/calls tells a customer only what their record backs: a call the record cannot back is
409 missing_fact:<variable>, a passed campaign date 409 expired:<variable> (CONTRACT round 2)."""

from __future__ import annotations

from collections.abc import Callable

from core.customers import CustomerRecord
from core.settings import Settings
from tests.server.conftest import client_for, context

DATES = {"deadline": "2026-06-10", "balance_start": "2026-06-11", "balance_end": "2026-06-13"}  # NOW: 2026-06-02


def test_calls_the_record_cannot_back_are_409_with_the_reason(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings()) as client:
        store = context(client).runtime.store
        assert store is not None
        store.upsert_customers([CustomerRecord("never", "13800000001", name="王芳"),  # type: ignore[attr-defined]
                                CustomerRecord("bought", "13800000002", purchase_count=2, last_product="深海鱼油")])
        refused = client.post("/v1/calls", json={"call_id": "f-1", "customer_id": "never",
                                                 "track": "balance_reminder", "vars": {"balance_deadline": "2026-06-10"}})
        assert refused.status_code == 409 and refused.json()["refused"] == "missing_fact:product"
        # a caller cannot assert a claim for a real customer: the record has no deposit
        asserted = client.post("/v1/calls", json={"call_id": "f-2", "customer_id": "never", "track": "balance_reminder",
                                                  "vars": {"balance_deadline": "2026-06-10", "product": "DHA"}})
        assert asserted.status_code == 409 and asserted.json()["refused"] == "missing_fact:product"
        expired = client.post("/v1/calls", json={"call_id": "f-3", "customer_id": "never", "track": "presale_deposit",
                                                 "vars": {**DATES, "deadline": "2026-06-01"}})
        assert expired.status_code == 409 and expired.json()["refused"] == "expired:deadline"
        new = client.post("/v1/calls", json={"call_id": "f-4", "customer_id": "never", "track": "presale_deposit",
                                             "vars": DATES})
        assert new.status_code == 200, new.text
        words = "".join(a.get("text", "") for a in new.json()["actions"])
        assert "我们店的玻尿酸水光精华" in words and "买过" not in words and "6月10日" not in words
        old = client.post("/v1/calls", json={"call_id": "f-5", "customer_id": "bought", "track": "presale_deposit",
                                             "vars": DATES})
        assert old.status_code == 200 and "您之前在我们店买过深海鱼油" in "".join(
            a.get("text", "") for a in old.json()["actions"])
