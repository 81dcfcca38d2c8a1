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
- Not-understood messages are counted for the trainers (stores/unanswered.py), and answered
  ones worth a second look (stores/review.py).
- Compacted: a turn reads the session's checkpoint and its last messages only, not the whole
  session, so its cost does not grow with the conversation (stores/compaction.py). The checkpoints
  live in the table `conversation_checkpoints`, which Rasa creates with its `events`.
"""

import itertools
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import ujson
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, Event, UserUtteranceReverted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from core import settings
from core.db.engine import sqlite_engine
from stores import compaction
from stores.kept_conversations import KeptConversations
from stores.masking import masked
from stores.retries import unreachable, with_retries
from stores.review import ReviewNotes
from stores.unanswered import UnansweredQuestions

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

# Trackers remembered as read (see _stored_after); the oldest are forgotten first.
MAX_REMEMBERED_READS = 10_000

# One row per conversation: the state its current session had at the boundary (compaction.py).
# In the metadata of Rasa's `events` table, so that Rasa creates it with that table (and copes, as
# for that one, with several servers starting at once).
CHECKPOINTS = sa.Table(
    "conversation_checkpoints",
    SQLTrackerStore.Base.metadata,
    sa.Column("conversation_id", sa.String(255), primary_key=True),
    sa.Column("session_start", sa.Float, nullable=True),  # the session's session_started time
    sa.Column("until_id", sa.Integer, nullable=False),  # the last event summed up
    sa.Column("until_timestamp", sa.Float, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)


class MaskingSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore on DATABASE_URL whose stored user messages are masked."""

    engine: Engine  # set by SQLTrackerStore.__init__

    def __init__(
        self, domain: Any = None, host: str | None = None, compact: bool = True, **kwargs: Any
    ) -> None:
        # `host` is endpoints.yml's `url`; a full URL there wins over DATABASE_URL. `compact:
        # false` there makes every turn read the whole session, as Rasa's own store does.
        self.database_url = host or settings.database_url()
        self.compact = compact
        super().__init__(domain, host=self.database_url, **kwargs)
        if self.engine.dialect.name == "sqlite" and self.engine.url.database:
            self.engine.dispose()
            self.engine = sqlite_engine(self.database_url, future=False)
            self.sessionmaker = sessionmaker(bind=self.engine)
        self._unanswered = UnansweredQuestions(self.database_url)
        self._review = ReviewNotes(self.database_url)
        self._kept = KeptConversations(save=self._save_once)
        # Conversations whose last read failed: their turn went on from what was kept, or started
        # afresh, so what the database holds is not their beginning.
        self._read_failed: set[str] = set()
        # Conversation -> (the tracker last read or saved, how many of its events are stored).
        self._read: OrderedDict[str, tuple[weakref.ref[DialogueStateTracker], int]] = OrderedDict()

    def _additional_events(self, session: "Session", tracker: DialogueStateTracker) -> Iterator:
        sender = tracker.sender_id
        if sender in self._kept or sender in self._read_failed:
            events: Iterator = iter(self._unsaved_events(session, tracker))
        else:
            events = self._stored_after(session, tracker)
        for event in events:
            self._review.saw(sender, event)
            if isinstance(event, UserUttered):
                event = masked(event)
                self._unanswered.note(sender, event)
            elif isinstance(event, UserUtteranceReverted):
                self._unanswered.take_back(sender)
            yield event

    def _remember_read(self, tracker: DialogueStateTracker) -> None:
        """Notes that the tracker's events so far are stored: its next save writes what follows."""
        self._read[tracker.sender_id] = (weakref.ref(tracker), len(tracker.events))
        self._read.move_to_end(tracker.sender_id)
        while len(self._read) > MAX_REMEMBERED_READS:
            self._read.popitem(last=False)

    def _stored_after(self, session: "Session", tracker: DialogueStateTracker) -> Iterator:
        """The tracker's events after those read from the database: known when this store read
        the very same tracker (turns of a conversation run one at a time, so nothing else wrote
        meanwhile); otherwise counted, as Rasa does (a compacted tracker holds only the events
        after its checkpoint)."""
        reference, stored = self._read.pop(tracker.sender_id, (None, 0))
        if reference is not None and id(reference()) == id(tracker):  # the same, still alive
            return itertools.islice(tracker.events, stored, None)
        restored = compacted_until(tracker)
        if restored is None:
            return super()._additional_events(session, tracker)
        position, until_id = restored
        stored = session.execute(
            sa.select(sa.func.count(self.SQLEvent.id)).where(
                self.SQLEvent.sender_id == tracker.sender_id, self.SQLEvent.id > until_id
            )
        ).scalar()
        return itertools.islice(tracker.events, position + 1 + stored, None)

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
        newest = session.execute(
            sa.select(sa.func.max(self.SQLEvent.timestamp)).where(
                self.SQLEvent.sender_id == tracker.sender_id
            )
        ).scalar()
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
        self._review.forget(sender)
        try:
            await self._write(tracker)
        except BaseException:
            self._review.forget(sender)  # noted by the write that failed: kept no longer
            raise
        self._remember_read(tracker)
        # Stored: what was kept for this conversation is part of this tracker. (A failed read
        # still counts until a read succeeds: this turn's tracker is not the stored one.)
        self._kept.discard(sender)
        self._unanswered.record(sender)
        self._review.record(sender, tracker)

    async def _write(self, tracker: DialogueStateTracker) -> None:
        """SQLTrackerStore.save, the new events written in one statement: the same rows as
        Rasa's ORM objects, one flush each, at a third of the cost (0.3 ms instead of 0.9 ms
        for a turn's 8 events)."""
        await self.stream_events(tracker)
        with self.session_scope() as session:
            rows = [
                event_row(tracker.sender_id, e) for e in self._additional_events(session, tracker)
            ]
            if rows:
                session.execute(sa.insert(self.SQLEvent.__table__), rows)
            session.commit()

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
            tracker = await with_retries(lambda: self._retrieve_compacted(sender_id))
        except DBAPIError as error:
            if unreachable(error):
                self._read_failed.add(sender_id)
            raise
        self._read_failed.discard(sender_id)
        return tracker

    async def _retrieve_compacted(self, sender_id: str) -> DialogueStateTracker | None:
        """The current session as a compacted tracker (compaction.py); None when unknown."""
        if self.domain is None or not self.compact:
            return await SQLTrackerStore.retrieve(self, sender_id)
        Events = self.SQLEvent
        with self.session_scope() as session:
            session_start = session.execute(
                sa.select(sa.func.max(Events.timestamp)).where(
                    Events.sender_id == sender_id, Events.type_name == "session_started"
                )
            ).scalar()
            saved = session.execute(
                sa.select(CHECKPOINTS).where(CHECKPOINTS.c.conversation_id == sender_id)
            ).first()
            checkpoint: tuple[dict[str, Any], int, float] | None = None
            # columns, not ORM objects: nothing here is changed and written back
            query = sa.select(Events.id, Events.type_name, Events.timestamp, Events.data).where(
                Events.sender_id == sender_id
            )
            if saved is not None and saved.session_start == session_start:
                checkpoint = (json.loads(saved.state), saved.until_id, saved.until_timestamp)
                query = query.where(Events.id > saved.until_id)
            elif session_start is not None:  # the session, as Rasa's _event_query finds it
                query = query.where(Events.timestamp >= session_start)
            rows = session.execute(query.order_by(Events.id)).all()
            read = [(row, Event.from_parameters(ujson.loads(row.data))) for row in rows]
            read = [(row, event) for row, event in read if event is not None]
            if not read and checkpoint is None:
                return None
            events = [event for _, event in read]
            cut = compaction.boundary([row.type_name for row, _ in read])
            if cut is not None:
                head = compaction.tracker_from(
                    sender_id, self.domain.slots, events[:cut], checkpoint
                )
                last = read[cut - 1][0]
                checkpoint = (compaction.state_of(head), last.id, last.timestamp)
                self._save_checkpoint(session, sender_id, session_start, checkpoint)
                events = events[cut:]
            tracker = compaction.tracker_from(sender_id, self.domain.slots, events, checkpoint)
        self._remember_read(tracker)
        return tracker

    @staticmethod
    def _save_checkpoint(
        session: "Session",
        sender_id: str,
        session_start: float | None,
        checkpoint: tuple[dict[str, Any], int, float],
    ) -> None:
        """Writes the conversation's checkpoint; a failure only means the next turn reads more."""
        state, until_id, until_timestamp = checkpoint
        values = {
            "session_start": session_start,
            "until_id": until_id,
            "until_timestamp": until_timestamp,
            "state": json.dumps(state, ensure_ascii=False, sort_keys=True),
        }
        try:
            updated = session.execute(
                sa.update(CHECKPOINTS)
                .where(CHECKPOINTS.c.conversation_id == sender_id)
                .values(**values)
            )
            if not updated.rowcount:
                session.execute(sa.insert(CHECKPOINTS).values(conversation_id=sender_id, **values))
            session.commit()
        except DBAPIError as error:
            session.rollback()
            logger.warning("Could not write a conversation checkpoint: %s", type(error).__name__)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await with_retries(
            lambda: SQLTrackerStore.retrieve_full_tracker(self, conversation_id)
        )


def event_row(sender_id: str, event: Event) -> dict[str, Any]:
    """The row of Rasa's `events` table for the event, as SQLTrackerStore.save writes it."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


def compacted_until(tracker: DialogueStateTracker) -> tuple[int, int] | None:
    """(position, until_id) of the event closing a compacted tracker's restored state, if any."""
    for position, event in enumerate(itertools.islice(tracker.events, len(tracker.slots) + 3)):
        if isinstance(event, ActionExecuted) and compaction.COMPACTED_UNTIL in event.metadata:
            return position, int(event.metadata[compaction.COMPACTED_UNTIL])
    return None
