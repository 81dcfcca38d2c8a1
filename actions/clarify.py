"""When the classifier hesitates between two topics, ask which one instead of guessing.

The FallbackClassifier turns a low-confidence or ambiguous prediction into nlu_fallback; the
intent ranking still holds the candidates. If the two best are topics the assistant can name
(actions/intent_titles.yml) and close to each other, this action fills the slots that
utter_did_you_mean shows as two buttons plus "都不是"; otherwise the rules go on to
utter_please_rephrase. The choice is made by the `clarifying` slot, which the rules read.

Two candidates that lead to the same next step are not offered as a choice: the message is read
again as the first of them (actions/answers.py).
"""

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import reinterpreted, same_next_step
from actions.intent_titles import intent_titles

# Ask only when the best candidate has some support and the second is nearly as likely.
MIN_CONFIDENCE = 0.15
MAX_GAP = 0.25


def candidates(ranking: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The two intents to offer, or None when the ranking does not call for the question."""
    ranked = [r for r in ranking if r.get("name") != "nlu_fallback"]
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]
    titles = intent_titles()
    if first["name"] not in titles or second["name"] not in titles:
        return None
    if first["confidence"] < MIN_CONFIDENCE or first["confidence"] - second["confidence"] > MAX_GAP:
        return None
    return first["name"], second["name"]


class ActionClarify(Action):
    """Fills the did-you-mean slots, or sets clarifying=false for the plain rephrase request."""

    def name(self) -> str:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = tracker.latest_message.get("intent") or {}
        # UnknownWordsFallback says confidence 1.0: no candidate is worth offering then.
        pair = None
        if intent.get("confidence", 1.0) < 1.0:
            pair = candidates(tracker.latest_message.get("intent_ranking") or [])
        if pair is None:
            return [SlotSet("clarifying", False)]
        if same_next_step(*pair):
            return reinterpreted(tracker, pair[0])
        titles = intent_titles()
        return [
            SlotSet("clarifying", True),
            SlotSet("clarify_first", pair[0]),
            SlotSet("clarify_first_title", titles[pair[0]]),
            SlotSet("clarify_second", pair[1]),
            SlotSet("clarify_second_title", titles[pair[1]]),
        ]
