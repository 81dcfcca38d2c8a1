"""Whether an answer helped: the student's yes or no right after an answer that asks.

The self-service answers end with "did it work?" buttons; the rules run action_record_feedback
between the student's reply (affirm, or deny / self_service_failed) and what follows it.
"""

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from core.answers import HELPFUL_INTENTS, last_response
from core.db import queries

logger = logging.getLogger(__name__)


def answer_before_last_message(tracker: Tracker) -> str | None:
    """The last response the bot gave before the student's latest message."""
    return last_response(reversed(tracker.events))


class ActionRecordFeedback(Action):
    """Counts a 有帮助 / 没帮助 on the answer just given."""

    def name(self) -> str:
        return "action_record_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        answer = answer_before_last_message(tracker)
        if answer is None:
            return []
        helpful = (tracker.latest_message.get("intent") or {}).get("name") in HELPFUL_INTENTS
        try:
            queries.record_feedback(tracker.sender_id, answer, helpful)
        except Exception as error:  # feedback is for statistics; the conversation goes on
            logger.error("Could not record answer feedback: %s", type(error).__name__)
        return []
