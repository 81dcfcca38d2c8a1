"""Masked copies of user messages, for everything that is written to the database."""

import copy

from rasa.shared.core.events import UserUttered

from core.privacy import mask


def masked(event: UserUttered) -> UserUttered:
    """A copy of `event` whose text and parsed text have personal data masked."""
    safe = copy.deepcopy(event)
    safe.text = mask(safe.text)
    if isinstance(safe.parse_data, dict) and safe.parse_data.get("text"):
        safe.parse_data["text"] = mask(safe.parse_data["text"])
    return safe
