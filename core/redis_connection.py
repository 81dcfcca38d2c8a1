"""The project's Redis: one asyncio client per URL and event loop, and one key namespace.

Every call has a one-second timeout, so a Redis that stops answering delays the messages in flight
by at most that long instead of freezing the event loop. Shared state (core/shared_state.py) and
the conversation lock store (stores/lock_store.py) both go through here.
"""

import asyncio
from typing import Any

TIMEOUT_SECONDS = 1.0
KEY_PREFIX = "chsi-assistant:"

# url -> (id of the event loop, its client): an asyncio client is bound to the loop it was made in.
_CLIENTS: dict[str, tuple[int, Any]] = {}


def client(url: str) -> Any:
    """The running loop's asyncio Redis client for `url`."""
    import redis.asyncio

    loop = id(asyncio.get_running_loop())
    known = _CLIENTS.get(url)
    if known is None or known[0] != loop:
        made = redis.asyncio.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        known = _CLIENTS[url] = (loop, made)
    return known[1]


def key(*parts: str) -> str:
    """A key in the project's namespace ("lock", "abc" make "chsi-assistant:lock:abc")."""
    return KEY_PREFIX + ":".join(parts)
