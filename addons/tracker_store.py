"""A SQL tracker store that never writes a student's personal data in plain text.

Rasa's SQLTrackerStore stores each event as JSON, the user's text and the parsed text included.
This subclass stores masked copies of user messages (addons.privacy.mask); the conversation held
in memory for the current turn is unchanged. Configured in endpoints.yml by module path.
"""
import copy
from typing import TYPE_CHECKING, Iterator

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from addons.privacy import mask

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def masked(event: UserUttered) -> UserUttered:
    safe = copy.deepcopy(event)
    safe.text = mask(safe.text)
    if isinstance(safe.parse_data, dict) and safe.parse_data.get("text"):
        safe.parse_data["text"] = mask(safe.parse_data["text"])
    return safe


class MaskingSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose stored user messages are masked."""

    def _additional_events(self, session: "Session", tracker: DialogueStateTracker) -> Iterator:
        for event in super()._additional_events(session, tracker):
            yield masked(event) if isinstance(event, UserUttered) else event
