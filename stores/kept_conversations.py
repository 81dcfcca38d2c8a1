"""Conversations answered while the conversation database was unreachable, kept in this process
until it answers again.

A conversation that could not be saved even after the retries goes on from what is kept here, and
is written as soon as the database answers (every FLUSH_INTERVAL seconds in the background, and
before that conversation's next turn is read), so turns answered during a longer outage are stored
too. A server stopped during an outage loses them.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import DBAPIError

from stores.retries import unreachable

logger = logging.getLogger(__name__)

# At most this many conversations wait (the oldest is dropped first), tried every few seconds.
PENDING_LIMIT = 10_000
FLUSH_INTERVAL = 5.0


class KeptConversations:
    """Unsaved conversations by sender id, oldest first, written back by `save`."""

    def __init__(self, save: Callable[[DialogueStateTracker], Awaitable[None]]) -> None:
        self._save = save
        self._trackers: dict[str, DialogueStateTracker] = {}
        self._flusher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._trackers)

    def __contains__(self, sender_id: str) -> bool:
        return sender_id in self._trackers

    def get(self, sender_id: str) -> DialogueStateTracker | None:
        return self._trackers.get(sender_id)

    def discard(self, sender_id: str) -> None:
        self._trackers.pop(sender_id, None)

    def keep(self, tracker: DialogueStateTracker) -> None:
        """Keeps the conversation's latest tracker and makes sure a catch-up is under way."""
        self._trackers.pop(tracker.sender_id, None)
        self._trackers[tracker.sender_id] = tracker
        if len(self._trackers) > PENDING_LIMIT:
            self._trackers.pop(next(iter(self._trackers)))
            logger.error(
                "Conversation database unreachable: more than %d conversations waiting; "
                "the oldest one is dropped.",
                PENDING_LIMIT,
            )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._catch_up())

    async def _catch_up(self) -> None:
        """Writes the kept conversations once the database answers again."""
        while self._trackers:
            await asyncio.sleep(FLUSH_INTERVAL)
            for sender, tracker in list(self._trackers.items()):
                try:
                    await self._save(tracker)
                except Exception as error:
                    if isinstance(error, DBAPIError) and unreachable(error):
                        break  # still unreachable: all of them wait for the next round
                    logger.error(
                        "A kept conversation could not be stored (%s); it is dropped.",
                        type(error).__name__,
                    )
                    self._trackers.pop(sender, None)
            else:
                if not self._trackers:
                    logger.info("Conversation database reachable again: kept conversations stored.")
