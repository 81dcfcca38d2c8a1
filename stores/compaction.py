"""A turn that stays cheap however long the conversation: the tracker a turn reads is compacted.

Rasa's SQL tracker store reads, deserialises and replays every event of the session on each
turn, and the policies then walk every one of them again (`past_states`): turn 300 of a session
cost 8.9 times turn 10 (`make bench`, docs/measuring.md). Yet what a turn's answer depends on is
small: the slots, the active form, whether an agent has taken over, and the last few turns
(MemoizationPolicy looks 4 states back, the rules a few more).

So the session is split at a user message (the *boundary*): everything before it is summed up in
a checkpoint (the slot values, the active loop, the pause; the `conversation_checkpoints` table),
and the turn reads only the checkpoint and the events after the boundary. The tracker it gets
starts with a few events that restore that state (SlotSet, ActiveLoop, ConversationPaused, then an
`action_listen`, as before any user message), then holds the last KEEP_USER_MESSAGES messages and
what followed them, as stored. When more than COMPACT_AFTER user messages have gathered after the
boundary, the boundary moves forward (one replay of those events), so a turn never reads more than
about COMPACT_AFTER messages' worth of events.

Nothing stored changes: the events table keeps the whole conversation (the staff console, the
handoff ticket's path, `rasa export` and Rasa's `/conversations/<id>/tracker` read it all). The
checkpoint is derived only from stored (masked) events and is the same whichever server writes
it; it belongs to one session and is ignored once another session starts.
"""

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    Event,
    SlotSet,
)
from rasa.shared.core.slots import Slot
from rasa.shared.core.trackers import DialogueStateTracker, TrackerActiveLoop

from core.db import queries

# The user messages (with what followed each) a compacted tracker keeps in full: more than the
# policies look back (max_history 4 states; each rule spans one user message).
KEEP_USER_MESSAGES = 8
# The boundary moves when this many user messages have gathered after it.
COMPACT_AFTER = 2 * KEEP_USER_MESSAGES
# Metadata key of the event that closes the restored state: the id of the last stored event the
# checkpoint sums up (actions/handoff.py reads the earlier steps from the database with it).
COMPACTED_UNTIL = queries.COMPACTED_UNTIL


def state_of(tracker: DialogueStateTracker) -> dict[str, Any]:
    """What a turn's answer depends on from before the boundary, as JSON-ready values."""
    loop = tracker.active_loop
    return {
        "slots": {name: slot.value for name, slot in tracker.slots.items() if slot.has_been_set},
        "active_loop": dataclasses.asdict(loop) if loop is not None and loop.name else None,
        "paused": tracker.is_paused(),
    }


def restoring_events(state: dict[str, Any], until_id: int, timestamp: float) -> list[Event]:
    """Events that bring a new tracker to `state`, dated at the boundary."""
    events: list[Event] = [
        SlotSet(name, value, timestamp=timestamp) for name, value in state["slots"].items()
    ]
    if state["active_loop"]:
        events.append(ActiveLoop(state["active_loop"]["name"], timestamp=timestamp))
    if state["paused"]:
        events.append(ConversationPaused(timestamp=timestamp))
    events.append(
        ActionExecuted(
            ACTION_LISTEN_NAME, timestamp=timestamp, metadata={COMPACTED_UNTIL: until_id}
        )
    )
    return events


def tracker_from(
    sender_id: str,
    slots: Iterable[Slot],
    events: Sequence[Event],
    checkpoint: tuple[dict[str, Any], int, float] | None = None,
) -> DialogueStateTracker:
    """A tracker of `events`, after the checkpoint (state, until_id, timestamp) when given."""
    tracker = DialogueStateTracker(sender_id, slots)
    if checkpoint is not None:
        state, until_id, timestamp = checkpoint
        for event in restoring_events(state, until_id, timestamp):
            tracker.update(event)
        if state["active_loop"]:  # the loop's flags as they were, not as ActiveLoop sets them
            tracker.active_loop = TrackerActiveLoop(**state["active_loop"])
    for event in events:
        tracker.update(event)
    return tracker


def boundary(type_names: Sequence[str]) -> int | None:
    """Where to split events of these types so that KEEP_USER_MESSAGES user messages stay after
    the split; None while no more than COMPACT_AFTER user messages are there."""
    users = [i for i, name in enumerate(type_names) if name == "user"]
    if len(users) <= COMPACT_AFTER:
        return None
    return users[-KEEP_USER_MESSAGES]
