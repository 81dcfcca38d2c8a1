"""Duplicate deliveries are harmless: a message id is processed once, and a re-delivery gets the
first delivery's reply.

Clients retry when an answer is slow (WeChat resends after 5 s; a phone on a weak network resends
the same POST). The first delivery of (conversation, message id) claims it; the others wait for
its reply and return that. Claims live in Redis when REDIS_URL is set, so this holds across
servers; otherwise in this process (addons.shared_state). Only the bot's replies are kept, for a
short while.
"""
import asyncio
import hashlib
import json
import time
from typing import Any, Dict, List, Optional, Text

from addons.shared_state import SharedState

KEEP_SECONDS = 3600
PENDING = "pending"

Reply = List[Dict[Text, Any]]


class Deliveries:
    def __init__(self, url: Optional[Text] = None, state: Optional[SharedState] = None) -> None:
        self.state = state or SharedState(url)

    @staticmethod
    def key(sender_id: Text, message_id: Text) -> Text:
        """A fixed-length key that no other (sender, message id) pair can produce: the two are
        hashed as a JSON list, so "a:b" + "c" and "a" + "b:c" differ."""
        pair = json.dumps([sender_id, message_id], ensure_ascii=False)
        return "delivery:" + hashlib.sha256(pair.encode("utf-8")).hexdigest()

    async def claim(self, key: Text) -> bool:
        """True for the first delivery of this key, False for a re-delivery."""
        return await self.state.set(key, PENDING, KEEP_SECONDS, only_if_new=True)

    async def finish(self, key: Text, reply: Reply) -> None:
        await self.state.set(key, json.dumps(reply, ensure_ascii=False), KEEP_SECONDS,
                             only_if_present=True)

    async def first_reply(self, key: Text) -> Optional[Reply]:
        """The first delivery's reply if it is known already, else None (still pending)."""
        value = await self.state.get(key)
        return json.loads(value) if value is not None and value != PENDING else None

    async def reply_of(self, key: Text, wait_seconds: float) -> Optional[Reply]:
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
