"""The conversation store: Rasa's SQL tracker store on DATABASE_URL, masked, and patient.

- Masked: Rasa's SQLTrackerStore stores each event as JSON, the user's text and the parsed text
  included. This subclass stores masked copies of user messages (addons.privacy.mask); the
  conversation held in memory for the current turn is unchanged.
- One setting: the database comes from DATABASE_URL (actions.settings), the same database as the
  project's own tables; endpoints.yml names only the class.
- Patient: a database that is unreachable for a moment (a restart, a failover) is retried for a
  few seconds before Rasa's FailSafeTrackerStore falls back to memory, so a blip loses nothing.
- Messages the assistant did not understand (intent nlu_fallback) are counted, masked, in the
  unanswered-questions table, for the people who improve the training data.
"""
import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Iterator, List, Optional, Text, TypeVar

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import sessionmaker

from actions import settings
from actions.db import queries
from actions.db.engine import sqlite_engine
from addons import speedups
from addons.privacy import mask

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

# The Rasa server always loads its tracker store (endpoints.yml): the place to apply the measured
# fixes of addons/speedups.py, once, in that process only.
speedups.apply()

# Seconds to wait before each new attempt; about 4 s in all before giving up on a turn.
RETRY_DELAYS = (0.25, 0.75, 1.0, 2.0)
T = TypeVar("T")


def masked(event: UserUttered) -> UserUttered:
    safe = copy.deepcopy(event)
    safe.text = mask(safe.text)
    if isinstance(safe.parse_data, dict) and safe.parse_data.get("text"):
        safe.parse_data["text"] = mask(safe.parse_data["text"])
    return safe


def not_understood(event: UserUttered) -> bool:
    return (event.intent or {}).get("name") == "nlu_fallback" and bool(event.text)


class MaskingSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore on DATABASE_URL whose stored user messages are masked."""

    def __init__(self, domain: Any = None, host: Optional[Text] = None, **kwargs: Any) -> None:
        # `host` is endpoints.yml's `url`; a full URL there wins over DATABASE_URL.
        self.database_url = host or settings.database_url()
        super().__init__(domain, host=self.database_url, **kwargs)
        if self.engine.dialect.name == "sqlite" and self.engine.url.database:
            self.engine.dispose()
            self.engine = sqlite_engine(self.database_url, future=False)
            self.sessionmaker = sessionmaker(bind=self.engine)
        # Per conversation: the not-understood messages of the save in progress.
        self._unanswered: Dict[Text, List[Text]] = {}

    def _additional_events(self, session: "Session", tracker: DialogueStateTracker) -> Iterator:
        for event in super()._additional_events(session, tracker):
            if isinstance(event, UserUttered):
                event = masked(event)
                if not_understood(event):
                    self._unanswered.setdefault(tracker.sender_id, []).append(event.text)
            yield event

    async def _patiently(self, operation: Callable[[], Awaitable[T]]) -> T:
        for delay in RETRY_DELAYS:
            try:
                return await operation()
            except DBAPIError as error:
                # OperationalError: refused, dropped or timed-out connections. Others are bugs.
                if not error.connection_invalidated and not isinstance(error, OperationalError):
                    raise
                logger.warning(
                    "Conversation database unreachable (%s); retrying in %.2f s.",
                    type(error.orig).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
        return await operation()

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._patiently(lambda: self._save_once(tracker))
        for text in self._unanswered.pop(tracker.sender_id, []):
            try:
                queries.record_unanswered(text, url=self.database_url)
            except Exception as error:  # the conversation matters more than the statistics
                logger.warning("Could not count an unanswered question: %s", type(error).__name__)

    async def _save_once(self, tracker: DialogueStateTracker) -> None:
        self._unanswered.pop(tracker.sender_id, None)
        await SQLTrackerStore.save(self, tracker)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        return await self._patiently(lambda: SQLTrackerStore.retrieve(self, sender_id))

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        return await self._patiently(
            lambda: SQLTrackerStore.retrieve_full_tracker(self, conversation_id)
        )

