"""Duplicate deliveries are harmless: a message id is processed once, and a re-delivery gets the
first delivery's reply.

Clients retry when an answer is slow (WeChat resends after 5 s; a phone on a weak network resends
the same POST). The first delivery of (conversation, message id) claims it; the others wait for
its reply and return that. Claims live in Redis when REDIS_URL is set, so this holds across
servers; otherwise in this process. Only the bot's replies are kept, for a short while.
"""
import asyncio
import json
import time
from typing import Any, Dict, List, Optional, Text, Tuple

from actions import settings

KEY_PREFIX = "chsi-assistant:delivery:"
KEEP_SECONDS = 3600
PENDING = "pending"
SOCKET_TIMEOUT_SECONDS = 5

Reply = List[Dict[Text, Any]]


class Deliveries:
    def __init__(self, url: Optional[Text] = None) -> None:
        url = url or settings.redis_url()
        self.redis = None
        self._local: Dict[Text, Tuple[float, Text]] = {}
        if url:
            import redis

            self.redis = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            )

    @staticmethod
    def key(sender_id: Text, message_id: Text) -> Text:
        return f"{KEY_PREFIX}{sender_id}:{message_id}"

    def claim(self, key: Text) -> bool:
        """True for the first delivery of this key, False for a re-delivery."""
        if self.redis is not None:
            return bool(self.redis.set(key, PENDING, nx=True, ex=KEEP_SECONDS))
        now = time.time()
        self._local = {k: v for k, v in self._local.items() if v[0] > now}
        if key in self._local:
            return False
        self._local[key] = (now + KEEP_SECONDS, PENDING)
        return True

    def finish(self, key: Text, reply: Reply) -> None:
        value = json.dumps(reply, ensure_ascii=False)
        if self.redis is not None:
            self.redis.set(key, value, xx=True, ex=KEEP_SECONDS)
        elif key in self._local:
            self._local[key] = (time.time() + KEEP_SECONDS, value)

    def _value(self, key: Text) -> Optional[Text]:
        if self.redis is not None:
            raw = self.redis.get(key)
            return raw.decode() if raw is not None else None
        entry = self._local.get(key)
        return entry[1] if entry else None

    async def reply_of(self, key: Text, wait_seconds: float) -> Optional[Reply]:
        """The first delivery's reply, waiting for it while it is being worked out."""
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            value = self._value(key)
            if value is None:
                return None
            if value != PENDING:
                return json.loads(value)
            await asyncio.sleep(0.05)
        return None
