"""Conversation-level actions."""

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, AllSlotsReset, EventType
from rasa_sdk.executor import CollectingDispatcher


class ActionStartOver(Action):
    """Starts over ("重新开始"): forgets every answer and leaves any open question, keeping the
    history."""

    def name(self) -> str:
        return "action_start_over"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        # The reply (utter_start_over) comes from the rule; this action only resets state.
        # Rasa's own restart would also drop the conversation from later predictions' view of
        # the session; here the student's earlier messages stay in the tracker store.
        return [AllSlotsReset(), ActiveLoop(None)]
