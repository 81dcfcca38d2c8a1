"""Messages the assistant did not understand (intent nlu_fallback), counted masked in the
unanswered-questions table for the people who improve the training data."""

import logging

from rasa.shared.core.events import UserUttered

from core.db import queries

logger = logging.getLogger(__name__)


def not_understood(event: UserUttered) -> bool:
    return (event.intent or {}).get("name") == "nlu_fallback" and bool(event.text)


class UnansweredQuestions:
    """The not-understood messages of each conversation's save in progress."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._texts: dict[str, list[str]] = {}

    def note(self, sender_id: str, event: UserUttered) -> None:
        """Remembers `event` (already masked) if the assistant did not understand it."""
        if not_understood(event):
            self._texts.setdefault(sender_id, []).append(event.text)

    def take_back(self, sender_id: str) -> None:
        """The latest message was read again (a rewind: actions/answers.py), as an answer the
        assistant did understand: it is not counted."""
        texts = self._texts.get(sender_id)
        if texts:
            texts.pop()

    def forget(self, sender_id: str) -> None:
        self._texts.pop(sender_id, None)

    def record(self, sender_id: str) -> None:
        """Counts the noted messages, once the conversation itself is stored."""
        for text in self._texts.pop(sender_id, []):
            try:
                queries.record_unanswered(text, url=self.database_url)
            except Exception as error:  # the conversation matters more than the statistics
                logger.warning("Could not count an unanswered question: %s", type(error).__name__)
