"""Messages pushed to the help-page widget while an agent has taken its conversation over.

The widget talks REST, which cannot push, so it also listens on a Server-Sent Events stream
(`GET /webhooks/rest/stream?sender=…`, channels/rest.py). An agent's words reach the Rasa server
that the console called, which publishes them here: through Redis when REDIS_URL is set, so that a
widget streaming from another server behind the proxy gets them too; through the database (table
`live_pushes`, read every POLL_SECONDS) when the server runs several workers without Redis; or in
this process. Channels that hold their own connections (socket.io) take the messages for their
users with `deliver_locally_to`, so that an agent's words reach the worker or server holding the
student's socket.

Bounded: at most MAX_STREAMS streams per server and MAX_STREAMS_PER_SENDER per conversation, a
queue of MAX_QUEUED messages each (a stalled reader loses the oldest), and each stream closes
after STREAM_SECONDS (EventSource reconnects by itself).
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from core import redis_connection, settings
from core.db.engine import session_scope
from core.db.models import LivePush

logger = logging.getLogger(__name__)

MAX_STREAMS, MAX_STREAMS_PER_SENDER, MAX_QUEUED = 2000, 4, 50
STREAM_SECONDS, HEARTBEAT_SECONDS = 15 * 60, 20
CHANNEL = redis_connection.key("live")
# Through the database: how often each worker looks for new messages, how long they are kept, and
# how many one look reads at most.
POLL_SECONDS, KEEP_SECONDS, MAX_READ = 0.5, 60, 200

Deliver = Callable[[str, dict[str, Any]], Awaitable[None]]


class TooManyStreams(RuntimeError):
    """As many streams are open on this server, or for this conversation, as it allows."""


class Hub:
    """Who listens for which conversation on this server, and how a message reaches them."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[asyncio.Queue]] = {}
        # Sender prefix -> how a channel hands a message to its users connected to this process.
        self.local_channels: dict[str, Deliver] = {}
        self._relay: asyncio.Task | None = None
        self._next_sweep = 0.0

    def deliver_locally_to(self, prefix: str, deliver: Deliver) -> None:
        """`deliver(user, message)` for messages to conversations `prefix` + user; call
        `start_relay` once this process has such users."""
        self.local_channels[prefix] = deliver

    def _wanted(self) -> bool:
        return bool(self.listeners or self.local_channels)

    def count(self) -> int:
        return sum(len(queues) for queues in self.listeners.values())

    def listen(self, sender: str) -> asyncio.Queue:
        queues = self.listeners.setdefault(sender, set())
        if len(queues) >= MAX_STREAMS_PER_SENDER or self.count() >= MAX_STREAMS:
            if not queues:
                self.listeners.pop(sender, None)
            raise TooManyStreams(sender)
        queue: asyncio.Queue = asyncio.Queue(MAX_QUEUED)
        queues.add(queue)
        self.start_relay()
        return queue

    def stop(self, sender: str, queue: asyncio.Queue) -> None:
        queues = self.listeners.get(sender, set())
        queues.discard(queue)
        if not queues:
            self.listeners.pop(sender, None)

    async def publish(self, sender: str, message: dict[str, Any]) -> None:
        url, where = settings.redis_url(), settings.shared_between_processes()
        if where == "database":
            try:
                await asyncio.to_thread(self._insert, sender, message)
                return
            except Exception as error:
                logger.warning(
                    "Database unavailable (%s); pushing to this process's streams only.",
                    type(error).__name__,
                )
        elif url:
            try:
                payload = json.dumps({"sender": sender, "message": message}, ensure_ascii=False)
                await redis_connection.client(url).publish(CHANNEL, payload)
                return
            except Exception as error:
                logger.warning(
                    "Redis unavailable (%s); pushing to this server's streams only.",
                    type(error).__name__,
                )
        self.dispatch(sender, message)

    def dispatch(self, sender: str, message: dict[str, Any]) -> None:
        for queue in list(self.listeners.get(sender, ())):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)
        for prefix, deliver in self.local_channels.items():
            if sender.startswith(prefix):
                asyncio.ensure_future(self._deliver(deliver, sender[len(prefix) :], message))

    @staticmethod
    async def _deliver(deliver: Deliver, user: str, message: dict[str, Any]) -> None:
        try:
            await deliver(user, message)
        except Exception as error:
            logger.warning("Live updates: a channel failed to deliver (%s).", type(error).__name__)

    def start_relay(self) -> None:
        """Listens for what other processes publish, while this one has anyone to hand it to."""
        if self._relay is not None and not self._relay.done():
            return
        url, where = settings.redis_url(), settings.shared_between_processes()
        if where == "database":
            self._relay = asyncio.ensure_future(self._relay_from_database())
        elif url:
            self._relay = asyncio.ensure_future(self._relay_from_redis(url))

    def _insert(self, sender: str, message: dict[str, Any]) -> None:
        now = time.time()
        with session_scope() as session:
            payload = json.dumps(message, ensure_ascii=False)
            session.add(LivePush(conversation_id=sender, payload=payload, created=now))
            if now >= self._next_sweep:
                self._next_sweep = now + KEEP_SECONDS
                session.execute(sa.delete(LivePush).where(LivePush.created < now - KEEP_SECONDS))

    @staticmethod
    def _read_since(last: int, since: float) -> list[tuple[int, str, str]]:
        """Messages after id `last` (the first read: those published since `since`)."""
        with session_scope() as session:
            newer = LivePush.id > last if last else LivePush.created >= since
            rows = session.execute(
                sa.select(LivePush.id, LivePush.conversation_id, LivePush.payload)
                .where(newer)
                .order_by(LivePush.id)
                .limit(MAX_READ)
            ).all()
            return [(row.id, row.conversation_id, row.payload) for row in rows]

    async def _relay_from_database(self) -> None:
        last, since = 0, time.time() - POLL_SECONDS
        while self._wanted():
            try:
                for number, sender, payload in await asyncio.to_thread(
                    self._read_since, last, since
                ):
                    last = number
                    self.dispatch(sender, dict(json.loads(payload)))
            except Exception as error:
                logger.warning(
                    "Live updates: database failed (%s); retrying.", type(error).__name__
                )
            await asyncio.sleep(POLL_SECONDS)

    async def _relay_from_redis(self, url: str) -> None:
        """Hands what any server published to this server's streams, while any are open."""
        import redis.asyncio

        while self._wanted():
            connection = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1.0)
            try:
                async with connection.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while self._wanted():
                        got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if got and isinstance(got.get("data"), bytes):
                            published = json.loads(got["data"])
                            self.dispatch(str(published["sender"]), dict(published["message"]))
            except Exception as error:
                logger.warning("Live updates: Redis failed (%s); retrying.", type(error).__name__)
                await asyncio.sleep(1.0)
            finally:
                await connection.close()


HUB = Hub()
