"""Tencent's message-sending and media APIs (WeChat Official Account and WeCom), with one access
token shared by every server (core/shared_state.py) and fetched by one request at a time per
process."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from core.shared_state import SharedState

API_TIMEOUT_SECONDS = 5
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid or expired access token
BUSY_ERRORS = {-1, 45009}  # "system busy" and "too many calls": worth another try
RETRY_DELAYS = (0.5, 1.0)
MEDIA_TIMEOUT_SECONDS = 10


class MediaTooLarge(ValueError):
    """The media file is larger than the caller reads."""


async def bounded_body(reply: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body, read in chunks, or MediaTooLarge as soon as it passes `max_bytes`."""
    data = bytearray()
    async for chunk in reply.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > max_bytes:
            raise MediaTooLarge(f"over {max_bytes} bytes")
    return bytes(data)


class MessageApi:
    """Sends text messages to one user, a piece at a time, and fetches the media users send."""

    def __init__(
        self,
        state: SharedState,
        cache_key: str,
        token_url: str,
        token_params: dict[str, str],
        send_url: str,
        message_for: Callable[[str, str], dict[str, Any]],
        media_url: str = "",
    ) -> None:
        self.state, self.cache_key = state, cache_key
        self.token_url, self.token_params = token_url, token_params
        self.send_url, self.message_for = send_url, message_for
        self.media_url = media_url
        self._refreshing = asyncio.Lock()

    async def token(self, session: aiohttp.ClientSession, stale: str | None = None) -> str:
        """The cached token; fetched when missing, or when `stale` was refused."""
        cached = await self.state.get(self.cache_key)
        if cached and cached != stale:
            return cached
        async with self._refreshing:
            cached = await self.state.get(self.cache_key)
            if cached and cached != stale:
                return cached
            async with session.get(self.token_url, params=self.token_params) as reply:
                body = await reply.json(content_type=None)
            if "access_token" not in body:
                raise RuntimeError(f"access token refused: errcode {body.get('errcode')}")
            lifetime = int(body.get("expires_in", 7200))
            await self.state.set(self.cache_key, body["access_token"], max(60, lifetime - 300))
            return body["access_token"]

    async def send_text(self, to: str, pieces: list[str]) -> None:
        timeout = aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            token = await self.token(session)
            for piece in pieces:
                data = json.dumps(self.message_for(to, piece), ensure_ascii=False).encode("utf-8")
                token = await self._send_one(session, token, data)

    async def _send_one(self, session: aiohttp.ClientSession, token: str, data: bytes) -> str:
        """Posts one message, once more with a new token when the token was refused and up to
        twice more when Tencent was busy or did not answer in time; returns the token used."""
        token_refreshed, attempt = False, 0
        while True:
            try:
                async with session.post(
                    self.send_url, params={"access_token": token}, data=data
                ) as reply:
                    errcode = (await reply.json(content_type=None)).get("errcode", 0)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                errcode, failure = None, type(error).__name__
            else:
                failure = f"errcode {errcode}"
            if errcode == 0:
                return token
            if errcode in TOKEN_ERRORS and not token_refreshed:
                token, token_refreshed = await self.token(session, stale=token), True
                continue
            if (errcode is None or errcode in BUSY_ERRORS) and attempt < len(RETRY_DELAYS):
                await asyncio.sleep(RETRY_DELAYS[attempt])
                attempt += 1
                continue
            raise RuntimeError(f"message not sent: {failure}")

    async def get_json(self, url: str, seconds: float = API_TIMEOUT_SECONDS) -> dict[str, Any]:
        """A GET of one of the API's JSON endpoints with the cached token (once more with a new
        token when it was refused)."""
        timeout = aiohttp.ClientTimeout(total=seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            token = await self.token(session)
            for attempt in range(2):
                async with session.get(url, params={"access_token": token}) as reply:
                    body: dict[str, Any] = await reply.json(content_type=None)
                if body.get("errcode") in TOKEN_ERRORS and attempt == 0:
                    token = await self.token(session, stale=token)
                    continue
                break
        if body.get("errcode"):
            raise RuntimeError(f"refused: errcode {body.get('errcode')}")
        return body

    async def download(self, media_id: str, max_bytes: int) -> bytes:
        """A file a user sent (media/get), at most `max_bytes` of it, or MediaTooLarge."""
        timeout = aiohttp.ClientTimeout(total=MEDIA_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            token = await self.token(session)
            for attempt in range(2):
                params = {"access_token": token, "media_id": media_id}
                async with session.get(self.media_url, params=params) as reply:
                    if reply.content_type not in ("application/json", "text/plain"):
                        return await bounded_body(reply, max_bytes)
                    errcode = (await reply.json(content_type=None)).get("errcode")
                if errcode in TOKEN_ERRORS and attempt == 0:
                    token = await self.token(session, stale=token)
                    continue
                break
            raise RuntimeError(f"media not fetched: errcode {errcode}")
