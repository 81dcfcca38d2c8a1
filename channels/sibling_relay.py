"""engine.io sessions served by any worker: a request for a session another worker holds is
passed on to it.

socket.io clients start with engine.io long-polling by default (rasa-webchat cannot be told
otherwise), and a polling session lives in the memory of the worker that opened it. The workers
of one server share its port, so the next poll, or the upgrade to a WebSocket, reaches any of
them: before, every such poll got 400 and the widget never connected. Now a session id names its
worker (`tagged_id`: "<slot>-<random>"), and a worker that receives a request for a sibling's
session passes it on over the sibling's Unix socket (core/siblings.py): a poll or a post as one
HTTP request, an upgrade as a WebSocket whose frames it relays both ways until either end closes.
The worker that opened the session runs every turn of it, so replies and rooms stay where
python-socketio keeps them.

Bounded: what is passed on was checked first (origin, JSONP, size: channels/socketio.py), an
answer read back is at most MAX_ANSWER_BYTES, a request waits at most ANSWER_SECONDS (longer than
engine.io's ping interval and timeout, so that a long poll ends on its own first) and
CONNECT_SECONDS for the sibling to accept, a frame from the sibling is at most MAX_FRAME_BYTES
(from the client, Sanic's WEBSOCKET_MAX_SIZE, and the sibling's engine.io refuses a packet over
its own limit). Each relayed request holds one of the worker's connections (at most
MAX_CONNECTIONS, core/http_guard.py), so the connections to siblings are bounded by that cap.
Only the headers that describe the answer come back (ANSWER_HEADERS): the worker that answers
the client adds its own CORS headers, and a second copy would make browsers refuse the answer.
A sibling that is gone (being replaced) is answered as engine.io answers a session it does not
know, with 400, and the client opens a new session (its conversation is kept: the session id it
holds names the conversation, channels/socketio.py).
"""

import asyncio
import logging
import secrets
from typing import Any

import aiohttp
from multidict import CIMultiDict
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import siblings

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024 * 1024
ANSWER_SECONDS, CONNECT_SECONDS = 60.0, 2.0
MAX_FRAME_BYTES = 128 * 1024
# What comes back from the sibling besides status, body and Content-Type.
ANSWER_HEADERS = frozenset(("content-encoding", "cache-control"))
# Not passed on: they describe one hop, not the request (RFC 9110, 7.6.1), or are recomputed.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "expect",
        "content-length",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
    )
)
UNKNOWN_SESSION = '{"code":1,"message":"Session ID unknown"}'


def tagged_id() -> str:
    """An engine.io session id that names this worker: "<slot>-<128 random bits>"."""
    return f"{siblings.slot() or 0}-{secrets.token_urlsafe(16)}"


def owner(session_id: str | None) -> int | None:
    """The sibling that holds session `session_id`, or None when this worker should answer it
    (no id, an id this worker holds, or one that names no worker: engine.io then refuses it)."""
    if not session_id or siblings.count() < 2:
        return None
    slot = siblings.parse_slot(session_id.partition("-")[0])
    return None if slot is None or slot == siblings.slot() else slot


def passed_on_headers(request: Request) -> CIMultiDict[str]:
    """The request's headers for the sibling: all but the hop-by-hop ones (also those that the
    Connection header names), repeated ones kept."""
    named = {
        token.strip().lower()
        for value in request.headers.getall("connection", [])
        for token in value.split(",")
    }
    return CIMultiDict(
        (name, value)
        for name, value in request.headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    )


class SiblingRelay:
    """Connections from this worker to its siblings, one pool per sibling."""

    def __init__(self) -> None:
        self._pools: dict[int, aiohttp.ClientSession] = {}

    def _pool(self, slot: int) -> aiohttp.ClientSession:
        pool = self._pools.get(slot)
        if pool is None or pool.closed:
            pool = aiohttp.ClientSession(
                # no limit of its own: each connection serves one of this worker's, which are
                # capped (a relayed WebSocket holds its connection for its whole life)
                connector=aiohttp.UnixConnector(path=siblings.path(slot), limit=0),
                timeout=aiohttp.ClientTimeout(total=ANSWER_SECONDS, connect=CONNECT_SECONDS),
                auto_decompress=False,  # the answer goes back as it came, compressed or not
            )
            self._pools[slot] = pool
        return pool

    @staticmethod
    def _url(request: Request) -> str:
        query = f"?{request.query_string}" if request.query_string else ""
        return f"http://sibling{request.path}{query}"

    async def pass_on(self, request: Request, slot: int) -> HTTPResponse | None:
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._relay_websocket(request, slot)
        try:
            async with self._pool(slot).request(
                request.method,
                self._url(request),
                headers=passed_on_headers(request),
                data=request.body or None,
            ) as answer:
                body = bytearray()
                async for chunk in answer.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        logger.warning("socket.io: a sibling's answer was too large; refused.")
                        return response.text("answer too large", status=502)
                headers = {
                    name: value
                    for name, value in answer.headers.items()
                    if name.lower() in ANSWER_HEADERS
                }
                return response.raw(
                    bytes(body),
                    status=answer.status,
                    headers=headers,
                    content_type=answer.headers.get("content-type", "text/plain"),
                )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            logger.info("socket.io: worker %d did not answer (%s).", slot + 1, type(error).__name__)
            return response.text(UNKNOWN_SESSION, status=400, content_type="application/json")

    async def _relay_websocket(self, request: Request, slot: int) -> HTTPResponse | None:
        """Opens the WebSocket to the sibling first (so that a refusal is answered as the sibling
        answered it), then accepts the client's and relays frames both ways."""
        headers = passed_on_headers(request)
        try:
            upstream = await self._pool(slot).ws_connect(
                self._url(request),
                headers=headers,
                max_msg_size=MAX_FRAME_BYTES,
                timeout=10.0,
                receive_timeout=None,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as error:
            return response.text(UNKNOWN_SESSION, status=error.status or 400)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            logger.info("socket.io: worker %d did not answer (%s).", slot + 1, type(error).__name__)
            return response.text(UNKNOWN_SESSION, status=400, content_type="application/json")
        logger.info(
            "socket.io: a session of worker %d upgraded to a WebSocket through worker %d.",
            slot + 1,
            (siblings.slot() or 0) + 1,
        )
        client: Any = None
        try:
            client = await request.transport.get_protocol().websocket_handshake(request)
            await _pump(client, upstream)
        finally:
            await upstream.close()
            if client is not None:
                await client.close()
        return None


async def _pump(client: Any, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Frames both ways until one side closes; then the other side is closed too."""

    async def from_client() -> None:
        while True:
            data = await client.recv()
            if data is None:
                return
            if isinstance(data, bytes):
                await upstream.send_bytes(data)
            else:
                await upstream.send_str(data)

    async def from_sibling() -> None:
        async for message in upstream:
            if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                await client.send(message.data)
            else:
                return

    tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_sibling())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


RELAY = SiblingRelay()
