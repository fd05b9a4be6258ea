"""A merchant's own rasa-sdk actions, as they would live in their action server."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher


class ActionCheckWechat(Action):
    """Looks the customer up in the merchant's CRM: did they really add our WeCom?"""

    def name(self) -> str:
        return "action_check_wechat"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        customer = tracker.get_slot("customer_id") or ""
        added = "yes" if customer.startswith("vip") else "no"
        return [SlotSet("wechat_status", added)]
