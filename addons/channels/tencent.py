"""What the WeChat Official Account and WeCom channels share: answering one user message with a
deadline, numbered choices, duplicate deliveries, and the message-sending API with one cached
access token. The channels themselves (addons/channels/wechat.py, wecom.py) add their protocol.
"""
import asyncio
import hashlib
import json
import logging
import re
import time
import unicodedata
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Text

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage

from addons.channels import limits
from addons.channels import wechat_protocol as protocol
from addons.channels.replies import replies
from addons.deliveries import Deliveries
from addons.shared_state import SharedState

logger = logging.getLogger(__name__)

API_TIMEOUT_SECONDS = 5
CHOICES_SECONDS = 24 * 3600
WELCOME = "/greet"
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid or expired access token
BUSY_ERRORS = {-1, 45009}  # "system busy" and "too many calls": worth another try
RETRY_DELAYS = (0.5, 1.0)
# Openids are 28 characters of base64url; WeCom user ids letters, digits and _ - @ .
USER_ID = re.compile(r"[A-Za-z0-9_.@\-]{1,64}")

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class MessageApi:
    """Sends text through Tencent's message API, with one access token shared by every server
    (addons.shared_state) and fetched by one request at a time in this process."""

    def __init__(self, state: SharedState, cache_key: Text, token_url: Text,
                 token_params: Dict[Text, Text], send_url: Text,
                 message_for: Callable[[Text, Text], Dict[Text, Any]]) -> None:
        self.state, self.cache_key = state, cache_key
        self.token_url, self.token_params = token_url, token_params
        self.send_url, self.message_for = send_url, message_for
        self._refreshing = asyncio.Lock()

    async def token(self, session: aiohttp.ClientSession, stale: Optional[Text] = None) -> Text:
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

    async def send_text(self, to: Text, pieces: List[Text]) -> None:
        timeout = aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            token = await self.token(session)
            for piece in pieces:
                data = json.dumps(self.message_for(to, piece), ensure_ascii=False).encode("utf-8")
                token = await self._send_one(session, token, data)

    async def _send_one(self, session: aiohttp.ClientSession, token: Text, data: bytes) -> Text:
        """Posts one message, once more with a new token when the token was refused and up to
        twice more when Tencent was busy or did not answer in time; returns the token used."""
        token_refreshed, attempt = False, 0
        while True:
            try:
                async with session.post(self.send_url, params={"access_token": token},
                                        data=data) as reply:
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


class TencentChannel(InputChannel):
    """Base of the two channels: `answer` turns one parsed message into a reply or an API send."""

    sender_prefix = "tencent"

    def __init__(self, reply_seconds: float) -> None:
        self.reply_seconds = reply_seconds
        self.problem = ""  # why the channel is off ("not configured", "misconfigured"), or ""
        self._state: Optional[SharedState] = None
        self._api: Optional[MessageApi] = None
        self._background: Set[asyncio.Future] = set()

    @property
    def state(self) -> SharedState:  # made on first use: nothing connects at start-up
        if self._state is None:
            self._state = SharedState()
        return self._state

    @property
    def api(self) -> MessageApi:
        if self._api is None:
            self._api = self.make_api()
        return self._api

    def make_api(self) -> MessageApi:
        raise NotImplementedError

    def open_envelope(self, token: Text, aes_key: Text, owner_id: Text,
                      setting: Text) -> Optional[protocol.Envelope]:
        """The AES envelope, or None with `problem` saying why: an unusable key turns this channel
        off (503, the reason in the log) instead of stopping the whole server at start."""
        try:
            return protocol.Envelope(token, aes_key, owner_id)
        except Exception as error:
            self.problem = "misconfigured"
            logger.error("%s channel disabled: %s is unusable (%s). It must be the "
                         "43-character EncodingAESKey.", self.name(), setting, error)
            return None

    def in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def answer(self, on_new_message: OnNewMessage,
                     message: Dict[Text, Text]) -> Optional[Text]:
        """The passive reply's text, or None (nothing to say now; an answer may follow by API)."""
        user = message.get("FromUserName", "")
        if not USER_ID.fullmatch(user):
            raise protocol.ProtocolError("FromUserName is not a user id")
        kind = message.get("MsgType", "").lower()
        if kind == "event":
            if message.get("Event", "").lower() not in ("subscribe", "enter_agent"):
                return None
            text = WELCOME
        elif kind == "text":
            text = await self.chosen(user, message.get("Content", ""))
        else:
            return replies()["wechat_unsupported"]
        sender = f"{self.sender_prefix}:{user}"
        deliveries = Deliveries(state=self.state)
        delivery = message.get("MsgId") or f"{message.get('CreateTime')}:{message.get('Event')}"
        key = Deliveries.key(sender, delivery[:64])
        if not await deliveries.claim(key):  # a re-delivery: the first one answers, here or by API
            done = await deliveries.first_reply(key)
            return done[0]["text"] if done else None
        text, cut = limits.clip(text)
        collector = CollectingOutputChannel()
        if cut:
            await collector.send_text_message(sender, limits.too_long_note())
        turn = asyncio.ensure_future(on_new_message(UserMessage(
            text, collector, sender, input_channel=self.name(), message_id=delivery[:64])))
        finished: set = set()  # reply_seconds 0: always answer through the API
        if self.reply_seconds > 0:
            finished, _ = await asyncio.wait({turn}, timeout=self.reply_seconds)
        if not finished:
            self.in_background(self._send_when_done(turn, collector, user, key, deliveries))
            return None
        pieces = await self._pieces(turn, collector, user)
        await deliveries.finish(key, [{"text": pieces[0]}])
        if len(pieces) > 1:
            self.in_background(self._send(user, pieces[1:]))
        return pieces[0]

    async def chosen(self, user: Text, text: Text) -> Text:
        """"2" after a numbered list is that choice's payload ("２" and "②" too); anything else
        is itself."""
        number = unicodedata.normalize("NFKC", text.strip()[:4])
        if re.fullmatch(r"[0-9]{1,2}", number):
            offered = json.loads(await self.state.get(f"choices:{self.sender_prefix}:{user}")
                                 or "[]")
            if 1 <= int(number) <= len(offered):
                return offered[int(number) - 1]
        return text

    async def first_use(self, timestamp: Text, nonce: Text, body: bytes) -> bool:
        """False when this request's nonce was used within the freshness window for another body:
        a signed URL taken from a log and reused. WeChat's own retry of the same request, or an
        exact replay, has the same body; the message id then makes it one turn."""
        key = "nonce:" + hashlib.sha256(f"{self.name()}|{timestamp}|{nonce}".encode()).hexdigest()
        digest = hashlib.sha256(body).hexdigest()
        if await self.state.set(key, digest, 2 * protocol.FRESH_SECONDS, only_if_new=True):
            return True
        return await self.state.get(key) == digest

    @staticmethod
    def fresh(timestamp: Text) -> bool:
        return protocol.fresh(timestamp, time.time())

    async def _pieces(self, turn: "asyncio.Future", collector: CollectingOutputChannel,
                      user: Text) -> List[Text]:
        if turn.exception() is not None:
            logger.error("Could not handle a %s message: %s", self.name(),
                         type(turn.exception()).__name__)
            return [replies()["unavailable"]]
        text, payloads = protocol.as_plain_text(collector.messages)
        if payloads:
            await self.state.set(f"choices:{self.sender_prefix}:{user}", json.dumps(payloads),
                                 CHOICES_SECONDS)
        return protocol.split_text(text) if text else [replies()["unavailable"]]

    async def _send_when_done(self, turn: "asyncio.Future", collector: CollectingOutputChannel,
                              user: Text, key: Text, deliveries: Deliveries) -> None:
        await asyncio.wait({turn})
        pieces = await self._pieces(turn, collector, user)
        await deliveries.finish(key, [{"text": pieces[0]}])
        await self._send(user, pieces)

    async def _send(self, user: Text, pieces: List[Text]) -> None:
        try:
            await self.api.send_text(user, pieces)
        except Exception as error:
            logger.error("Could not send a %s message through the API: %s: %s", self.name(),
                         type(error).__name__, error)
