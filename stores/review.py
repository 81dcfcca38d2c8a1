"""Answered messages that deserve a second look, counted masked for the people who improve the
training data (#27), beside the not-understood ones (stores/unanswered.py):

- unsure: the assistant answered, but its top intent had less than UNSURE_CONFIDENCE, or the
  second came within CLOSE_MARGIN of it (closer still, FallbackClassifier asks to rephrase);
- did_not_help: the message whose answer the student said did not help (any answer to "did it
  work?" that is not a yes, as action_record_feedback counts it);
- handed_off: the message whose answer was followed by a ticket within HANDOFF_TURNS of the
  student's turns (the answer did not settle it).

Each with the intent the assistant chose, so that a reviewer can confirm or correct it. Worked
out when a turn is stored, on the events the turn added, looking back at most MAX_LOOK_BACK
events. Not counted: buttons' payloads, answers to the forms' questions, a ticket that answers the
assistant's own offer of a person (the flow's designed end), and a question a ticket already
counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rasa.shared.core.events import ActionExecuted, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from core.answers import HELPFUL_INTENTS
from core.db import queries
from stores.masking import masked

logger = logging.getLogger(__name__)

# On both hold-out sets (620 messages answered, 8 of them wrongly; 2026-12-03), a
# top confidence under 0.6 flagged 1.8 % and caught 1 wrong answer, under 0.8 flagged 6.1 % and
# caught 3, under 0.9 flagged 10.8 % and caught 4. Grouped, 6 % is a list a person reads.
UNSURE_CONFIDENCE = 0.8
CLOSE_MARGIN = 0.2
HANDOFF_TURNS = 2
FEEDBACK_ACTION = "action_record_feedback"
TICKET_ACTION = "action_create_handoff_ticket"
OFFER_ACTION = "utter_offer_handoff"
# Events looked back over from a ticket or a feedback (a turn is a few events; forms add slots).
MAX_LOOK_BACK = 60
# Messages that are no question the FAQ answers: a reply to the assistant, a request for a
# person, small talk. An answer given to them is not "an answer that did not help".
NOT_QUESTIONS = frozenset(
    {
        "greet",
        "thank",
        "goodbye",
        "affirm",
        "deny",
        "bot_challenge",
        "start_over",
        "self_service_failed",
        "request_human",
        "out_of_scope",
        "share_personal_info",
        "nlu_fallback",
        # answers to the forms' questions, not questions
        "registered_before",
        "never_registered",
        "current_student",
        "graduate",
    }
)


def intent_of(event: UserUttered) -> str:
    return str((event.intent or {}).get("name") or "")


def unsure(event: UserUttered) -> bool:
    """Answered (an intent, not the fallback) with a low or a close top confidence."""
    intent = intent_of(event)
    if not intent or intent == "nlu_fallback" or not event.text or event.text.startswith("/"):
        return False
    ranking = [
        float(entry.get("confidence") or 0.0)
        for entry in (event.parse_data or {}).get("intent_ranking", [])
        if entry.get("name") != "nlu_fallback"
    ]
    top = float((event.intent or {}).get("confidence") or 0.0)
    second = ranking[1] if len(ranking) > 1 else 0.0
    return top < UNSURE_CONFIDENCE or top - second < CLOSE_MARGIN


def asked(event: Event) -> bool:
    """A message that asked a question the FAQ answers: typed, not a button's payload, not a
    reply to the assistant, a request for a person or small talk."""
    return (
        isinstance(event, UserUttered)
        and bool(event.text)
        and not (event.text or "").startswith("/")
        and intent_of(event) not in NOT_QUESTIONS
    )


def answered_question(events: Sequence[Event], before: int, turns: int) -> UserUttered | None:
    """The latest of the last `turns` student messages before position `before` that asked a
    question; None when a ticket was opened since it (that ticket counted it already)."""
    seen = 0
    for position in range(before - 1, max(-1, before - 1 - MAX_LOOK_BACK), -1):
        event = events[position]
        if isinstance(event, ActionExecuted) and event.action_name == TICKET_ACTION:
            return None
        if isinstance(event, UserUttered):
            if asked(event):
                return event
            seen += 1
            if seen >= turns:
                return None
    return None


def offered_a_person(events: Sequence[Event], ticket_at: int) -> bool:
    """Whether the ticket answers the assistant's own offer of a person (utter_offer_handoff, then
    a yes): the flow's designed end, not an answer that failed."""
    users = 0
    for position in range(ticket_at - 1, max(-1, ticket_at - 1 - MAX_LOOK_BACK), -1):
        event = events[position]
        if isinstance(event, UserUttered):
            users += 1
            if users > 1:
                return False
        elif (
            users == 1
            and isinstance(event, ActionExecuted)
            and event.action_name not in (None, "action_listen")
        ):
            return event.action_name == OFFER_ACTION  # what the assistant said before the yes
    return False


def worth_review(events: Sequence[Event], new: set[int]) -> list[tuple[str, UserUttered]]:
    """(kind, message) for what the events whose id() is in `new` make worth a second look."""
    found: list[tuple[str, UserUttered]] = []
    latest_user = -1
    for position, event in enumerate(events):
        if isinstance(event, UserUttered):
            latest_user = position
        if id(event) not in new:
            continue
        if isinstance(event, UserUttered) and unsure(event):
            found.append(("unsure", event))
        elif isinstance(event, ActionExecuted) and event.action_name == FEEDBACK_ACTION:
            reply = events[latest_user] if latest_user >= 0 else None
            if isinstance(reply, UserUttered) and intent_of(reply) not in HELPFUL_INTENTS:
                question = answered_question(events, latest_user, 1)
                if question is not None:
                    found.append(("did_not_help", question))
        elif isinstance(event, ActionExecuted) and event.action_name == TICKET_ACTION:
            if offered_a_person(events, position):
                continue
            question = answered_question(events, position, HANDOFF_TURNS + 1)
            if question is not None:
                found.append(("handed_off", question))
    unique: dict[tuple[str, int], tuple[str, UserUttered]] = {}
    for kind, message in found:
        unique.setdefault((kind, id(message)), (kind, message))
    return list(unique.values())


class ReviewNotes:
    """The events each conversation's save in progress adds, and what they make worth review."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._new: dict[str, set[int]] = {}

    def saw(self, sender_id: str, event: Event) -> None:
        self._new.setdefault(sender_id, set()).add(id(event))

    def forget(self, sender_id: str) -> None:
        self._new.pop(sender_id, None)

    def record(self, sender_id: str, tracker: DialogueStateTracker) -> None:
        """Counts what the stored turn made worth review, once the conversation is stored.
        Nothing here may fail the student's turn: errors are logged by type and dropped."""
        new = self._new.pop(sender_id, set())
        if not new:
            return
        try:
            # applied: without the messages a rewind took back (read again as an answer)
            for kind, message in worth_review(tracker.applied_events(), new):
                queries.record_for_review(
                    kind, masked(message).text or "", intent_of(message), url=self.database_url
                )
        except Exception as error:  # the conversation matters more than the statistics
            logger.warning("Could not count a message for review: %s", type(error).__name__)
