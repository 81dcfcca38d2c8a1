"""The conversation store: Rasa's SQL tracker store on DATABASE_URL, masked, and patient.

- Masked: Rasa's SQLTrackerStore stores each event as JSON, the user's text and the parsed text
  included. This subclass stores masked copies of user messages (addons.privacy.mask); the
  conversation held in memory for the current turn is unchanged.
- One setting: the database comes from DATABASE_URL (actions.settings), the same database as the
  project's own tables; endpoints.yml names only the class.
- Patient: a database that is unreachable for a moment (a restart, a failover) is retried for a
  few seconds before Rasa's FailSafeTrackerStore falls back to memory, so a blip loses nothing.
- Catching up: a conversation that could not be saved even so is kept in memory, goes on from
  there while the database stays unreachable, and is written as soon as the database answers
  again (every few seconds in the background, and before that conversation's next turn is read),
  so turns answered during a longer outage are stored too. (The first turn after the database
  went away still starts afresh, as with Rasa's FailSafeTrackerStore.)
  Rasa finds the events to write by counting the stored ones; a conversation answered from memory
  is not a continuation of what is stored, so for those the events are found by content
  (`_unsaved_events`). Kept in this process only: a server stopped during an outage loses them.
- Messages the assistant did not understand (intent nlu_fallback) are counted, masked, in the
  unanswered-questions table, for the people who improve the training data.
"""
import asyncio
import copy
import logging
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Dict, Iterator, List, Optional, Set,
                    Text, TypeVar)

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
import sqlalchemy as sa
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
# Conversations kept in memory while the database is unreachable, and how often they are retried.
PENDING_LIMIT = 10_000
FLUSH_INTERVAL = 5.0
T = TypeVar("T")


def unreachable(error: DBAPIError) -> bool:
    """Refused, dropped or timed-out connections; any other database error is a bug."""
    return bool(error.connection_invalidated) or isinstance(error, OperationalError)


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
        # Conversations that could not be saved, oldest first, and conversations whose last read
        # failed (their turn went on from what was kept, or started afresh).
        self._pending: Dict[Text, DialogueStateTracker] = {}
        self._read_failed: Set[Text] = set()
        self._flusher: Optional["asyncio.Task[None]"] = None

    def _additional_events(self, session: "Session", tracker: DialogueStateTracker) -> Iterator:
        sender = tracker.sender_id
        if sender in self._pending or sender in self._read_failed:
            events: Iterator = iter(self._unsaved_events(session, tracker))
        else:
            events = super()._additional_events(session, tracker)
        for event in events:
            if isinstance(event, UserUttered):
                event = masked(event)
                if not_understood(event):
                    self._unanswered.setdefault(tracker.sender_id, []).append(event.text)
            yield event

    def _unsaved_events(self, session: "Session", tracker: DialogueStateTracker) -> List[Event]:
        """The tracker's events that the database lacks, for a conversation answered from memory.

        When the stored session is the start of the tracker (same count, same last timestamp), the
        rest is new. Otherwise the tracker began while the database was unreachable (Rasa started
        it afresh, or another server wrote meanwhile): its events newer than anything stored are
        appended, so the conversation continues from what the student last saw."""
        events = list(tracker.events)
        stored = self._event_query(session, tracker.sender_id, fetch_events_from_all_sessions=False)
        count = stored.count()
        if count == 0:
            return events
        last = stored.order_by(None).order_by(self.SQLEvent.id.desc()).first()
        if count <= len(events) and abs(events[count - 1].timestamp - last.timestamp) < 1e-6:
            return events[count:]
        newest = session.query(sa.func.max(self.SQLEvent.timestamp)).filter(
            self.SQLEvent.sender_id == tracker.sender_id).scalar()
        return [event for event in events if event.timestamp > newest]

    async def _patiently(self, operation: Callable[[], Awaitable[T]]) -> T:
        for delay in RETRY_DELAYS:
            try:
                return await operation()
            except DBAPIError as error:
                if not unreachable(error):
                    raise
                logger.warning(
                    "Conversation database unreachable (%s); retrying in %.2f s.",
                    type(error.orig).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
        return await operation()

    async def save(self, tracker: DialogueStateTracker) -> None:
        try:
            await self._patiently(lambda: self._save_once(tracker))
        except DBAPIError as error:
            if unreachable(error):
                self._keep_for_later(tracker)
            raise  # Rasa's FailSafeTrackerStore answers the turn all the same

    async def _save_once(self, tracker: DialogueStateTracker) -> None:
        sender = tracker.sender_id
        self._unanswered.pop(sender, None)
        await SQLTrackerStore.save(self, tracker)
        # stored: what was kept for this conversation is part of this tracker. (A failed read
        # still counts until a read succeeds: this turn's tracker is not the stored one.)
        self._pending.pop(sender, None)
        for text in self._unanswered.pop(sender, []):
            try:
                queries.record_unanswered(text, url=self.database_url)
            except Exception as error:  # the conversation matters more than the statistics
                logger.warning("Could not count an unanswered question: %s", type(error).__name__)

    def _keep_for_later(self, tracker: DialogueStateTracker) -> None:
        self._pending.pop(tracker.sender_id, None)
        self._pending[tracker.sender_id] = tracker
        if len(self._pending) > PENDING_LIMIT:
            self._pending.pop(next(iter(self._pending)))
            logger.error("Conversation database unreachable: more than %d conversations waiting; "
                         "the oldest one is dropped.", PENDING_LIMIT)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._catch_up())

    async def _catch_up(self) -> None:
        """Writes the kept conversations once the database answers again."""
        while self._pending:
            await asyncio.sleep(FLUSH_INTERVAL)
            for sender, tracker in list(self._pending.items()):
                try:
                    await self._save_once(tracker)
                except Exception as error:
                    if isinstance(error, DBAPIError) and unreachable(error):
                        break  # still unreachable: all of them wait for the next round
                    logger.error("A kept conversation could not be stored (%s); it is dropped.",
                                 type(error).__name__)
                    self._pending.pop(sender, None)
            else:
                if not self._pending:
                    logger.info("Conversation database reachable again: kept conversations stored.")

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        pending = self._pending.get(sender_id)
        if pending is not None:
            # Store what was kept first. While the database is still unreachable, the
            # conversation goes on from what was kept (Rasa's FailSafeTrackerStore would start it
            # afresh: its retrieve returns None on an error, it never reads its own fallback).
            try:
                await self._save_once(pending)
            except DBAPIError as error:
                if not unreachable(error):
                    raise
                self._read_failed.add(sender_id)
                return pending.copy()
        try:
            tracker = await self._patiently(lambda: SQLTrackerStore.retrieve(self, sender_id))
        except DBAPIError as error:
            if unreachable(error):
                self._read_failed.add(sender_id)
            raise
        self._read_failed.discard(sender_id)
        return tracker

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        return await self._patiently(
            lambda: SQLTrackerStore.retrieve_full_tracker(self, conversation_id)
        )

