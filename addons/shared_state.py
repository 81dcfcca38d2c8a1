"""Small values with an expiry, shared by every Rasa server through Redis when REDIS_URL is set,
or kept in this process otherwise: delivered message ids, the choices last offered to a WeChat
user, the WeChat access token, the nonces of recent WeChat requests.

Redis is called through redis.asyncio with one-second timeouts, so a Redis that stops answering
delays only the messages in flight by at most that long, instead of freezing the event loop (the
synchronous client with 5 s timeouts did). When Redis fails, the value is read or written in this
process instead (a warning is logged): across servers the check is then weaker for a while, but
every student still gets an answer. The in-process table holds at most MAX_LOCAL_ENTRIES values;
past that the oldest go first, so a flood of message ids cannot grow the server's memory.
"""
import asyncio
import logging
import time
from typing import Any, Dict, Optional, Tuple

from actions import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "chsi-assistant:"
TIMEOUT_SECONDS = 1.0
SWEEP_SECONDS = 60
# About 100 bytes of key and a few hundred of reply each: tens of MB at most.
MAX_LOCAL_ENTRIES = 50_000


# url -> (id of the event loop, its client): an asyncio client is bound to the loop it was made in.
_CLIENTS: Dict[str, Tuple[int, Any]] = {}


def redis_client(url: str) -> Any:
    """The running loop's asyncio Redis client for `url`, with short timeouts (shared by this
    module and the lock store)."""
    import redis.asyncio

    loop = id(asyncio.get_running_loop())
    known = _CLIENTS.get(url)
    if known is None or known[0] != loop:
        known = _CLIENTS[url] = (loop, redis.asyncio.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS))
    return known[1]


class SharedState:
    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url or settings.redis_url()
        self._local: Dict[str, Tuple[float, str]] = {}
        self._next_sweep = 0.0

    def _live(self, key: str) -> Optional[Tuple[float, str]]:
        """The key's entry if it has not expired. Expired entries are swept out at most once a
        minute, so that a lookup (several per message) never walks the whole table."""
        now = time.time()
        if now >= self._next_sweep:
            self._local = {k: v for k, v in self._local.items() if v[0] > now}
            self._next_sweep = now + SWEEP_SECONDS
        entry = self._local.get(key)
        return entry if entry is not None and entry[0] > now else None

    async def get(self, key: str) -> Optional[str]:
        if self.url:
            try:
                raw = await redis_client(self.url).get(KEY_PREFIX + key)
                return raw.decode() if raw is not None else None
            except Exception as error:
                logger.warning("Redis unavailable (%s); using this server's memory.",
                               type(error).__name__)
        entry = self._live(key)
        return entry[1] if entry else None

    async def set(self, key: str, value: str, seconds: float, only_if_new: bool = False,
                  only_if_present: bool = False) -> bool:
        """Stores `value` for `seconds`; False when the condition stopped it."""
        if self.url:
            try:
                return bool(await redis_client(self.url).set(
                    KEY_PREFIX + key, value, ex=max(1, int(seconds)), nx=only_if_new,
                    xx=only_if_present))
            except Exception as error:
                logger.warning("Redis unavailable (%s); using this server's memory.",
                               type(error).__name__)
        return self._set_local(key, value, seconds, only_if_new, only_if_present)

    def _set_local(self, key: str, value: str, seconds: float, only_if_new: bool,
                   only_if_present: bool) -> bool:
        present = self._live(key) is not None
        if (only_if_new and present) or (only_if_present and not present):
            return False
        self._local.pop(key, None)
        self._local[key] = (time.time() + seconds, value)
        while len(self._local) > MAX_LOCAL_ENTRIES:
            self._local.pop(next(iter(self._local)))
        return True
