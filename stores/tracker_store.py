"""The conversation store: Rasa's SQL tracker store on DATABASE_URL, masked, and patient.

- Masked: Rasa's SQLTrackerStore stores each event as JSON, the user's text and the parsed text
  included. This subclass stores masked copies of user messages (stores/masking.py); the
  conversation held in memory for the current turn is unchanged.
- One setting: the database comes from DATABASE_URL (core/settings.py), the same database as the
  project's own tables; endpoints.yml names only the class.
- Patient: a database that is unreachable for a moment is retried for about 4 s
  (stores/retries.py) before Rasa's FailSafeTrackerStore falls back to memory, so a blip loses
  nothing.
- Catching up: a conversation that could not be saved even so is kept in memory and goes on from
  there (stores/kept_conversations.py). (The first turn after the database went away still starts
  afresh, as with Rasa's FailSafeTrackerStore.) Rasa finds the events to write by counting the
  stored ones; a conversation answered from memory is not a continuation of what is stored, so for
  those the events are found by content (`_unsaved_events`).
- Not-understood messages are counted for the trainers (stores/unanswered.py).
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from core import settings
from core.db.engine import sqlite_engine
from stores.kept_conversations import KeptConversations
from stores.masking import masked
from stores.retries import unreachable, with_retries
from stores.unanswered import UnansweredQuestions

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class MaskingSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore on DATABASE_URL whose stored user messages are masked."""

    engine: Engine  # set by SQLTrackerStore.__init__

    def __init__(self, domain: Any = None, host: str | None = None, **kwargs: Any) -> None:
        # `host` is endpoints.yml's `url`; a full URL there wins over DATABASE_URL.
        self.database_url = host or settings.database_url()
        super().__init__(domain, host=self.database_url, **kwargs)
        if self.engine.dialect.name == "sqlite" and self.engine.url.database:
            self.engine.dispose()
            self.engine = sqlite_engine(self.database_url, future=False)
            self.sessionmaker = sessionmaker(bind=self.engine)
        self._unanswered = UnansweredQuestions(self.database_url)
        self._kept = KeptConversations(save=self._save_once)
        # Conversations whose last read failed: their turn went on from what was kept, or started
        # afresh, so what the database holds is not their beginning.
        self._read_failed: set[str] = set()

    def _additional_events(self, session: "Session", tracker: DialogueStateTracker) -> Iterator:
        sender = tracker.sender_id
        if sender in self._kept or sender in self._read_failed:
            events: Iterator = iter(self._unsaved_events(session, tracker))
        else:
            events = super()._additional_events(session, tracker)
        for event in events:
            if isinstance(event, UserUttered):
                event = masked(event)
                self._unanswered.note(sender, event)
            yield event

    def _unsaved_events(self, session: "Session", tracker: DialogueStateTracker) -> list[Event]:
        """The tracker's events that the database lacks, for a conversation answered from memory.

        When the stored session is the start of the tracker (same count, same last timestamp), the
        rest is new. Otherwise the tracker began while the database was unreachable (Rasa started
        it afresh, or another server wrote meanwhile): its events newer than anything stored are
        appended, so the conversation continues from what the student last saw.
        """
        events = list(tracker.events)
        stored = self._event_query(session, tracker.sender_id, fetch_events_from_all_sessions=False)
        count = stored.count()
        if count == 0:
            return events
        last = stored.order_by(None).order_by(self.SQLEvent.id.desc()).first()
        if count <= len(events) and abs(events[count - 1].timestamp - last.timestamp) < 1e-6:
            return events[count:]
        newest = (
            session.query(sa.func.max(self.SQLEvent.timestamp))
            .filter(self.SQLEvent.sender_id == tracker.sender_id)
            .scalar()
        )
        return [event for event in events if event.timestamp > newest]

    async def save(self, tracker: DialogueStateTracker) -> None:
        try:
            await with_retries(lambda: self._save_once(tracker))
        except DBAPIError as error:
            if unreachable(error):
                self._kept.keep(tracker)
            raise  # Rasa's FailSafeTrackerStore answers the turn all the same

    async def _save_once(self, tracker: DialogueStateTracker) -> None:
        sender = tracker.sender_id
        self._unanswered.forget(sender)
        await SQLTrackerStore.save(self, tracker)
        # Stored: what was kept for this conversation is part of this tracker. (A failed read
        # still counts until a read succeeds: this turn's tracker is not the stored one.)
        self._kept.discard(sender)
        self._unanswered.record(sender)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        kept = self._kept.get(sender_id)
        if kept is not None:
            # Store what was kept first. While the database is still unreachable, the
            # conversation goes on from what was kept (Rasa's FailSafeTrackerStore would start it
            # afresh: its retrieve returns None on an error, it never reads its own fallback).
            try:
                await self._save_once(kept)
            except DBAPIError as error:
                if not unreachable(error):
                    raise
                self._read_failed.add(sender_id)
                return kept.copy()
        try:
            tracker = await with_retries(lambda: SQLTrackerStore.retrieve(self, sender_id))
        except DBAPIError as error:
            if unreachable(error):
                self._read_failed.add(sender_id)
            raise
        self._read_failed.discard(sender_id)
        return tracker

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await with_retries(
            lambda: SQLTrackerStore.retrieve_full_tracker(self, conversation_id)
        )
