"""Messages pushed to the help-page widget while an agent has taken its conversation over.

The widget talks REST, which cannot push, so it also listens on a Server-Sent Events stream
(`GET /webhooks/rest/stream?sender=…`, channels/rest.py). An agent's words reach the Rasa server
that the console called, which publishes them here: in this process, or through Redis when
REDIS_URL is set, so that a widget streaming from another server behind the proxy gets them too.

Bounded: at most MAX_STREAMS streams per server and MAX_STREAMS_PER_SENDER per conversation, a
queue of MAX_QUEUED messages each (a stalled reader loses the oldest), and each stream closes
after STREAM_SECONDS (EventSource reconnects by itself).
"""

import asyncio
import json
import logging
from typing import Any

from core import redis_connection, settings

logger = logging.getLogger(__name__)

MAX_STREAMS, MAX_STREAMS_PER_SENDER, MAX_QUEUED = 2000, 4, 50
STREAM_SECONDS, HEARTBEAT_SECONDS = 15 * 60, 20
CHANNEL = redis_connection.key("live")


class TooManyStreams(RuntimeError):
    """As many streams are open on this server, or for this conversation, as it allows."""


class Hub:
    """Who listens for which conversation on this server, and how a message reaches them."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[asyncio.Queue]] = {}
        self._relay: asyncio.Task | None = None

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
        self._start_relay()
        return queue

    def stop(self, sender: str, queue: asyncio.Queue) -> None:
        queues = self.listeners.get(sender, set())
        queues.discard(queue)
        if not queues:
            self.listeners.pop(sender, None)

    async def publish(self, sender: str, message: dict[str, Any]) -> None:
        url = settings.redis_url()
        if url:
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

    def _start_relay(self) -> None:
        url = settings.redis_url()
        if url and (self._relay is None or self._relay.done()):
            self._relay = asyncio.ensure_future(self._relay_from_redis(url))

    async def _relay_from_redis(self, url: str) -> None:
        """Hands what any server published to this server's streams, while any are open."""
        import redis.asyncio

        while self.listeners:
            connection = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1.0)
            try:
                async with connection.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while self.listeners:
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
