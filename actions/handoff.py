"""Handing a student to human support: a ticket with the case written up, and a ready email.

action_create_handoff_ticket runs right after utter_handoff (the contacts). It opens a ticket (or
brings the conversation's unresolved one up to date), and fills the slots that utter_ticket_created
shows: the ticket number and a mailto: link to the FAQ's support address with the subject and body
filled in. Nothing the student typed goes into the ticket: only the topic, the slots the flow
filled and the steps taken (intent names), so no personal data can reach it. When the database
cannot be reached the number stays empty and utter_ticket_created says so.
"""

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import team_notice
from actions.intent_titles import intent_titles
from core.db import queries
from core.shared_state import SharedState
from core.yaml_files import read_yaml

logger = logging.getLogger(__name__)

# New tickets from one client address in an hour (the channels tag each message with its client
# address, channels/limits.py: with_client). One client had opened 32 tickets a second, one per
# new conversation; a campus network puts many students behind one address, so the limit is
# well above what one campus asks for in an hour. Over it, the student still gets the contacts
# and is told no ticket number was made (utter_ticket_created); a conversation's existing ticket
# is always brought up to date.
NEW_TICKETS_PER_ADDRESS_HOUR = 30
_COUNTS: SharedState | None = None


def counts() -> SharedState:
    global _COUNTS
    if _COUNTS is None:  # made on first use: no connection at import
        _COUNTS = SharedState()
    return _COUNTS


async def may_open_ticket(tracker: Tracker) -> bool:
    """Whether this handoff may open (or update) the conversation's ticket."""
    metadata = tracker.latest_message.get("metadata") or {}
    client = metadata.get("client") if isinstance(metadata, dict) else None
    if not isinstance(client, str) or not client:
        return True
    if queries.open_ticket_id(tracker.sender_id) is not None:
        return True  # brought up to date, not a new one
    opened = await counts().add(f"new-tickets:{client}", 1, 3600)
    if opened > NEW_TICKETS_PER_ADDRESS_HOUR:
        logger.warning(
            "More than %d new tickets from one client address this hour; no ticket opened.",
            NEW_TICKETS_PER_ADDRESS_HOUR,
        )
        return False
    return True


TEXTS_FILE = Path(__file__).with_name("ticket_texts.yml")


def ticket_texts() -> dict[Any, Any]:
    """The ticket's wording (ticket_texts.yml): step names, subject and body of the email."""
    texts: dict[Any, Any] = read_yaml(TEXTS_FILE)
    return texts


def session_events(tracker: Tracker) -> list[tuple[str, str | None]]:
    """(event type, intent or action name) of the session's events, oldest first.

    A long conversation's tracker starts from a checkpoint (stores/compaction.py): the event that
    closes it names the last stored event it sums up, and the steps up to it are read from the
    database.
    """
    found: list[tuple[str, str | None]] = []
    for event in tracker.events:
        kind = event.get("event") or ""
        until = (event.get("metadata") or {}).get(queries.COMPACTED_UNTIL)
        if kind == "action" and isinstance(until, int):
            found = queries.session_steps_until(tracker.sender_id, until)
        elif kind == "user":
            found.append((kind, ((event.get("parse_data") or {}).get("intent") or {}).get("name")))
        elif kind in ("action", "session_started"):
            found.append((kind, event.get("name")))
        elif kind == "rewind":
            found.append((kind, None))
    return queries.without_reverted(found, kind=lambda step: step[0])


def topics_of_intents(domain: dict[str, Any]) -> dict[str, str]:
    """Intent -> the topic it makes the conversation's, from the topic slot's mappings."""
    found: dict[str, str] = {}
    for mapping in ((domain.get("slots") or {}).get("topic") or {}).get("mappings") or []:
        intents = mapping.get("intent") or []
        for intent in [intents] if isinstance(intents, str) else intents:
            found[intent] = mapping.get("value")
    return found


def path_taken(tracker: Tracker, domain: dict[str, Any] | None = None) -> str:
    """What the student raised and what they were told about the current problem, in order: the
    steps about an earlier topic of the same conversation are left out (a password ticket does
    not retell the ID-number questions before it)."""
    titles, answers = intent_titles(), ticket_texts()["answers"]
    topics, current = topics_of_intents(domain or {}), topic(tracker)
    steps: list[str] = []
    elsewhere = False  # inside the steps of another topic
    for kind, name in session_events(tracker):
        step = None
        if kind == "session_started":
            steps, elsewhere = [], False
        elif kind == "user":
            raised = topics.get(name or "")
            if raised and current and raised != current:
                steps, elsewhere = [], True
            elif raised == current:
                elsewhere = False
            step = titles.get(name or "")
        elif kind == "action":
            step = answers.get(name or "")
        if step and not elsewhere and (not steps or steps[-1] != step):
            steps.append(step)
    return " → ".join(steps) or ticket_texts()["unknown"]


def topic(tracker: Tracker) -> str:
    """The topic slot; a message quoted in passing (id_error) also makes it a duplicate-ID case."""
    return tracker.get_slot("topic") or ("duplicate_id" if tracker.get_slot("id_error") else "")


def summary(tracker: Tracker, path: str) -> str:
    """The case as the ticket and the email describe it; `path` is path_taken(tracker)."""
    texts = ticket_texts()

    def label(table: str, value: Any) -> str:
        return texts[table].get(value, texts["unknown"]) if value is not None else texts["unknown"]

    template = texts["summary" if topic(tracker) == "duplicate_id" else "summary_account"]
    return template.format(
        topic=label("topics", topic(tracker)),
        id_error=label("id_error", tracker.get_slot("id_error")),
        registered_before=label("registered_before", tracker.get_slot("registered_before")),
        student_status=label("student_status", tracker.get_slot("student_status")),
        path=path,
    )


def mailto(ticket: int, case: str) -> str:
    texts = ticket_texts()
    subject = texts["mail_subject"].format(ticket=ticket)
    body = texts["mail_body"].format(ticket=ticket, summary=case)
    return f"mailto:{texts['support_email']}?subject={quote(subject)}&body={quote(body)}"


class ActionCreateHandoffTicket(Action):
    """Opens (or updates) the conversation's ticket and fills ticket_number / ticket_mailto."""

    def name(self) -> str:
        return "action_create_handoff_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        steps = path_taken(tracker, domain)
        case = summary(tracker, steps)
        channel = tracker.get_latest_input_channel() or ""
        try:
            if not await may_open_ticket(tracker):
                return [SlotSet("ticket_number", None), SlotSet("ticket_mailto", None)]
            number, new = queries.opened_ticket(
                conversation_id=tracker.sender_id,
                channel=channel,
                topic=topic(tracker),
                path=steps,
                summary=case,
            )
        except Exception as error:  # the contacts were given already; say the number is missing
            logger.error("Could not open a handoff ticket: %s", type(error).__name__)
            return [SlotSet("ticket_number", None), SlotSet("ticket_mailto", None)]
        if new:
            texts = ticket_texts()
            title = texts["topics"].get(topic(tracker), texts["unknown"])
            team_notice.tell_team(number, title, channel, steps, texts)
        return [
            SlotSet("ticket_number", str(number)),
            SlotSet("ticket_mailto", mailto(number, case)),
        ]
