"""Small values with an expiry, shared by every Rasa server through Redis when REDIS_URL is set,
or kept in this process otherwise: delivered message ids, the choices last offered to a WeChat
user, the WeChat access token."""
import time
from typing import Dict, Optional, Text, Tuple

from actions import settings

KEY_PREFIX = "chsi-assistant:"
SOCKET_TIMEOUT_SECONDS = 5
SWEEP_SECONDS = 60


class SharedState:
    def __init__(self, url: Optional[Text] = None) -> None:
        url = url or settings.redis_url()
        self.redis = None
        self._local: Dict[Text, Tuple[float, Text]] = {}
        self._next_sweep = 0.0
        if url:
            import redis

            self.redis = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            )

    def _live(self, key: Text) -> Optional[Tuple[float, Text]]:
        """The key's entry if it has not expired. Expired entries are swept out at most once a
        minute, so that a lookup (several per message) never walks the whole table."""
        now = time.time()
        if now >= self._next_sweep:
            self._local = {k: v for k, v in self._local.items() if v[0] > now}
            self._next_sweep = now + SWEEP_SECONDS
        entry = self._local.get(key)
        return entry if entry is not None and entry[0] > now else None

    def get(self, key: Text) -> Optional[Text]:
        if self.redis is not None:
            raw = self.redis.get(KEY_PREFIX + key)
            return raw.decode() if raw is not None else None
        entry = self._live(key)
        return entry[1] if entry else None

    def set(self, key: Text, value: Text, seconds: float, only_if_new: bool = False,
            only_if_present: bool = False) -> bool:
        """Stores `value` for `seconds`; False when the condition stopped it."""
        if self.redis is not None:
            return bool(self.redis.set(KEY_PREFIX + key, value, ex=max(1, int(seconds)),
                                       nx=only_if_new, xx=only_if_present))
        present = self._live(key) is not None
        if (only_if_new and present) or (only_if_present and not present):
            return False
        self._local[key] = (time.time() + seconds, value)
        return True
