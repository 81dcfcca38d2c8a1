"""Duplicate deliveries are harmless: a message id is processed once, and a re-delivery gets the
first delivery's reply.

Clients retry when an answer is slow (WeChat resends after 5 s; a phone on a weak network resends
the same POST). The first delivery of (conversation, message id) claims it; the others wait for
its reply and return that. Claims live in Redis when REDIS_URL is set, so this holds across
servers; otherwise in this process (core.shared_state). Only the bot's replies are kept, for a
short while.
"""

import asyncio
import hashlib
import json
import time
from typing import Any

from core.shared_state import SharedState

KEEP_SECONDS = 3600
PENDING = "pending"

Reply = list[dict[str, Any]]


class Deliveries:
    """Claims each delivered message id once and keeps its reply for a re-delivery."""

    def __init__(self, url: str | None = None, state: SharedState | None = None) -> None:
        self.state = state or SharedState(url)

    @staticmethod
    def key(sender_id: str, message_id: str) -> str:
        """A fixed-length key that no other (sender, message id) pair can produce: the two are
        hashed as a JSON list, so "a:b" + "c" and "a" + "b:c" differ."""
        pair = json.dumps([sender_id, message_id], ensure_ascii=False)
        return "delivery:" + hashlib.sha256(pair.encode("utf-8")).hexdigest()

    async def claim(self, key: str) -> bool:
        """True for the first delivery of this key, False for a re-delivery."""
        return await self.state.set(key, PENDING, KEEP_SECONDS, only_if_new=True)

    async def keep_reply(self, key: str, reply: Reply) -> None:
        """Keeps the first delivery's reply for the re-deliveries that wait for it."""
        await self.state.set(
            key, json.dumps(reply, ensure_ascii=False), KEEP_SECONDS, only_if_present=True
        )

    async def first_reply(self, key: str) -> Reply | None:
        """The first delivery's reply if it is known already, else None (still pending)."""
        value = await self.state.get(key)
        return json.loads(value) if value is not None and value != PENDING else None

    async def wait_for_reply(self, key: str, wait_seconds: float) -> Reply | None:
        """The first delivery's reply, waiting for it while it is being worked out."""
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            value = await self.state.get(key)
            if value is None:
                return None
            if value != PENDING:
                return json.loads(value)
            await asyncio.sleep(0.05)
        return None
