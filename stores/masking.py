"""Masked copies of user messages, for everything that is written to the database."""

import copy
import re

from rasa.shared.core.events import UserUttered

from core.privacy import mask, masked_values, stored_message_id

DIGEST = re.compile(r"#[0-9a-f]{32}")


def is_digest(message_id: str) -> bool:
    """Already stored_message_id's digest (an event read back and saved again)."""
    return DIGEST.fullmatch(message_id) is not None


def masked(event: UserUttered) -> UserUttered:
    """A copy of `event` whose text and parsed text have personal data masked, whose metadata's
    strings are masked too, and whose message id (the client's to choose) is kept as a digest."""
    safe = copy.deepcopy(event)
    safe.text = mask(safe.text)
    if isinstance(safe.parse_data, dict) and safe.parse_data.get("text"):
        safe.parse_data["text"] = mask(safe.parse_data["text"])
    if safe.metadata:
        safe.metadata = masked_values(safe.metadata)
    if safe.message_id is not None and not is_digest(safe.message_id):
        safe.message_id = stored_message_id(safe.message_id)
    if isinstance(safe.parse_data, dict):  # Rasa keeps a copy of both in the parse data
        if safe.parse_data.get("metadata"):
            safe.parse_data["metadata"] = masked_values(safe.parse_data["metadata"])
        if safe.parse_data.get("message_id") is not None:
            safe.parse_data["message_id"] = safe.message_id
    return safe
