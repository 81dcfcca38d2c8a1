"""Small values with an expiry, shared by every Rasa server through Redis when REDIS_URL is set,
by the worker processes of one server through the database when there is no Redis, or kept in
this process for one worker: delivered message ids, the choices last offered to a WeChat
user, the WeChat access token, the nonces of recent WeChat requests.

Redis is called through core/redis_connection.py (redis.asyncio, one-second timeouts), so a Redis
that stops answering delays only the messages in flight by at most that long, instead of freezing
the event loop (a synchronous client with 5 s timeouts would). When Redis fails, the value is read
or written in this process instead (a warning is logged): across servers the check is then weaker
for a while, but every student still gets an answer. The in-process table holds at most
MAX_LOCAL_ENTRIES values; past that the oldest go first, so a flood of message ids cannot grow the
server's memory.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core import redis_connection, settings
from core.db.engine import session_scope
from core.db.models import SharedValue

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 60
# About 100 bytes of key and a few hundred of reply each: tens of MB at most.
MAX_LOCAL_ENTRIES = 50_000


class DatabaseValues:
    """The values in the database (table `shared_values`), for the worker processes of one server
    when there is no Redis. Each call is one short transaction, run in a thread by SharedState;
    expired rows are swept out at most once a minute."""

    def __init__(self) -> None:
        self._next_sweep = 0.0

    @staticmethod
    def _key(key: str) -> str:
        return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with session_scope() as session:
            value: str | None = session.execute(
                sa.select(SharedValue.value).where(
                    SharedValue.key == self._key(key), SharedValue.expires > time.time()
                )
            ).scalar()
            return value

    def set(
        self, key: str, value: str, seconds: float, only_if_new: bool, only_if_present: bool
    ) -> bool:
        key, now = self._key(key), time.time()
        row = {"value": value, "expires": now + seconds}
        this = SharedValue.key == key
        with session_scope() as session:
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_SECONDS
                session.execute(sa.delete(SharedValue).where(SharedValue.expires <= now))
            if only_if_present:
                changed = session.execute(
                    sa.update(SharedValue).where(this, SharedValue.expires > now).values(**row)
                )
                return bool(changed.rowcount)
            if only_if_new:
                session.execute(sa.delete(SharedValue).where(this, SharedValue.expires <= now))
            elif session.execute(sa.update(SharedValue).where(this).values(**row)).rowcount:
                return True
        try:  # a new row: its primary key decides between two workers setting it at once
            with session_scope() as session:
                session.add(SharedValue(key=key, **row))
            return True
        except IntegrityError:
            if only_if_new:
                return False
            with session_scope() as session:
                session.execute(sa.update(SharedValue).where(this).values(**row))
            return True

    def swap(self, key: str, old: str, new: str, seconds: float) -> bool:
        """Sets `new` where the live value is exactly `old`; False otherwise."""
        key, now = self._key(key), time.time()
        with session_scope() as session:
            changed = session.execute(
                sa.update(SharedValue)
                .where(SharedValue.key == key, SharedValue.value == old, SharedValue.expires > now)
                .values(value=new, expires=now + seconds)
            )
            return bool(changed.rowcount)

    def add(self, key: str, delta: int, seconds: float) -> int:
        """Compare-and-set until this increment is the one that lands (see SharedState.add)."""
        for _ in range(ADD_TRIES):
            old = self.get(key)
            if old is None:
                if self.set(key, str(delta), seconds, only_if_new=True, only_if_present=False):
                    return delta
                continue
            count = int(old) + delta
            if self.swap(key, old, str(count), seconds):
                return count
        raise RuntimeError("the counter kept changing")


SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return value
"""
# Tries of a compare-and-set increment in the database before it gives up (others won each time).
ADD_TRIES = 50
# What SharedState._shared answers when neither Redis nor the database did.
LOCAL = object()


class SharedState:
    """Keyed values with an expiry: in Redis, in the database for several workers without Redis
    (core/settings.py: shared_between_processes), or in this process."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.redis_url()
        where = "redis" if self.url else settings.shared_between_processes()
        self.database = DatabaseValues() if where == "database" else None
        self._local: dict[str, tuple[float, str]] = {}
        self._next_sweep = 0.0

    def _live(self, key: str) -> tuple[float, str] | None:
        """The key's entry if it has not expired. Expired entries are swept out at most once a
        minute, so that a lookup (several per message) never walks the whole table."""
        now = time.time()
        if now >= self._next_sweep:
            self._local = {k: v for k, v in self._local.items() if v[0] > now}
            self._next_sweep = now + SWEEP_SECONDS
        entry = self._local.get(key)
        return entry if entry is not None and entry[0] > now else None

    async def _shared(
        self,
        on_redis: Callable[[Any], Awaitable[Any]],
        on_database: Callable[[DatabaseValues], Any],
    ) -> Any:
        """Redis's answer, else the database's (`on_database` runs in a thread), else LOCAL: the
        caller then answers from this process's memory. A failure is logged and falls through."""
        if self.url:
            try:
                return await on_redis(redis_connection.client(self.url))
            except Exception as error:
                logger.warning(
                    "Redis unavailable (%s); using this server's memory.", type(error).__name__
                )
        if self.database:
            try:
                return await asyncio.to_thread(on_database, self.database)
            except Exception as error:
                logger.warning(
                    "Database unavailable (%s); using this process's memory.", type(error).__name__
                )
        return LOCAL

    async def get(self, key: str) -> str | None:
        async def on_redis(client: Any) -> str | None:
            raw = await client.get(redis_connection.key(key))
            return raw.decode() if raw is not None else None

        answer = await self._shared(on_redis, lambda values: values.get(key))
        if answer is not LOCAL:
            return answer
        entry = self._live(key)
        return entry[1] if entry else None

    async def set(
        self,
        key: str,
        value: str,
        seconds: float,
        only_if_new: bool = False,
        only_if_present: bool = False,
    ) -> bool:
        """Stores `value` for `seconds`; False when the condition stopped it."""

        async def on_redis(client: Any) -> bool:
            ex = max(1, int(seconds))
            named = redis_connection.key(key)
            return bool(await client.set(named, value, ex=ex, nx=only_if_new, xx=only_if_present))

        answer = await self._shared(
            on_redis, lambda values: values.set(key, value, seconds, only_if_new, only_if_present)
        )
        if answer is not LOCAL:
            return bool(answer)
        return self._set_local(key, value, seconds, only_if_new, only_if_present)

    async def swap(self, key: str, old: str, new: str, seconds: float) -> bool:
        """Replaces the value `old` by `new` atomically (compare and set); False when the value
        is no longer `old`, so that of two processes swapping at once only one succeeds."""

        async def on_redis(client: Any) -> bool:
            args = [old, new, max(1, int(seconds))]
            return bool(await client.eval(SWAP, 1, redis_connection.key(key), *args))

        answer = await self._shared(on_redis, lambda values: values.swap(key, old, new, seconds))
        if answer is not LOCAL:
            return bool(answer)
        entry = self._live(key)
        if entry is None or entry[1] != old:
            return False
        self._local[key] = (time.time() + seconds, new)
        return True

    async def add(self, key: str, delta: int, seconds: float) -> int:
        """Adds `delta` to the counter at `key` atomically and returns the new count; a new
        counter starts at 0 and expires `seconds` after its first count (a window)."""

        async def on_redis(client: Any) -> int:
            args = [delta, max(1, int(seconds))]
            return int(await client.eval(ADD, 1, redis_connection.key(key), *args))

        answer = await self._shared(on_redis, lambda values: values.add(key, delta, seconds))
        if answer is not LOCAL:
            return int(answer)
        entry = self._live(key)  # no await from here on: atomic within this process
        expires, count = (
            (entry[0], int(entry[1]) + delta) if entry else (time.time() + seconds, delta)
        )
        self._local[key] = (expires, str(count))
        self._cap_local()
        return count

    def _set_local(
        self, key: str, value: str, seconds: float, only_if_new: bool, only_if_present: bool
    ) -> bool:
        present = self._live(key) is not None
        if (only_if_new and present) or (only_if_present and not present):
            return False
        self._local.pop(key, None)
        self._local[key] = (time.time() + seconds, value)
        self._cap_local()
        return True

    def _cap_local(self) -> None:
        """The oldest values go first past MAX_LOCAL_ENTRIES (a flood of keys cannot grow it)."""
        while len(self._local) > MAX_LOCAL_ENTRIES:
            self._local.pop(next(iter(self._local)))
