"""The student's one-tap rating of the person who just helped them in a live takeover.

The hand-back note asks "这次人工服务帮到你了吗？回复 1 有帮助，回复 2 没帮助。" and names the agent
in its metadata (channels/takeover_endpoint.py); the answer policy sends a reply that reads as a
rating here (understanding/answer_policy.py). Recorded per agent, shown on the outcomes dashboard.
"""

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from core.answers import rated_agent, rating
from core.db import queries

logger = logging.getLogger(__name__)


class ActionRecordAgentRating(Action):
    """Records 有帮助 / 没帮助 for the agent the hand-back asked about."""

    def name(self) -> str:
        return "action_record_agent_rating"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        agent = rated_agent(reversed(tracker.events))
        message = tracker.latest_message or {}
        helped = rating(message.get("text") or "", (message.get("intent") or {}).get("name") or "")
        if agent is not None and helped is not None:
            try:
                queries.record_agent_rating(tracker.sender_id, agent, helped)
            except Exception as error:  # a statistic; the student is thanked all the same
                logger.error("Could not record an agent rating: %s", type(error).__name__)
        return []  # the rule that follows thanks the student (data/rules/handoff.yml)
