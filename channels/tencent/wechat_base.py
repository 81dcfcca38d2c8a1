"""What the WeChat Official Account and WeCom channels share: their two routes (health and
webhook, never a 500), reading credentials.yml, answering one user message with a deadline,
numbered choices, duplicate deliveries and replay checks. The channels themselves
(channels/tencent/wechat.py, wecom.py) add their protocol; channels/tencent/wechat_api.py sends
by API.
"""

import asyncio
import hashlib
import json
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels import conversations, limits, ocr_reader, takeover_endpoint
from channels.replies import replies, with_personal_data_note
from channels.tencent import wechat_protocol as protocol
from channels.tencent.wechat_api import MediaTooLarge, MessageApi
from core import settings
from core.deliveries import Deliveries
from core.shared_state import SharedState

logger = logging.getLogger(__name__)

CHOICES_SECONDS = 24 * 3600
WELCOME = "/greet"
# Openids are 28 characters of base64url; WeCom user ids letters, digits and _ - @ .
USER_ID = re.compile(r"[A-Za-z0-9_.@\-]{1,64}")
MEDIA_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
# The passive reply that hands the follower to WeChat's customer-service system (a private-use
# character first: no student's text or answer can be equal to it).
TRANSFER = "\ue000transfer_customer_service"


class TencentChannel(InputChannel):
    """Base of the two channels: `answer` turns one parsed message into a reply or an API send."""

    sender_prefix = "tencent"
    label = "Tencent"  # the channel's name in refusals and logs
    failure_reply = ""  # the 200 body that acknowledges a request that failed here
    # credentials.yml key -> constructor argument, and the settings of the API's address
    credential_names: dict[str, str] = {}
    api_base_setting, default_api_base = "", ""

    @classmethod
    def settings(cls) -> dict[str, Any]:
        """Constructor arguments from the environment rather than credentials.yml."""
        return {
            "api_base": (cls.api_base_setting and settings.read(cls.api_base_setting))
            or cls.default_api_base
        }

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> "TencentChannel":
        credentials = credentials or {}
        arguments: dict[str, Any] = {
            argument: str(credentials.get(key) or "")
            for key, argument in cls.credential_names.items()
        }
        return cls(**arguments, **cls.settings())

    def handle(self, request: Request, on_new_message: OnNewMessage) -> Awaitable[HTTPResponse]:
        raise NotImplementedError

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        hook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)
        conversations.remember_app(hook)
        if not self.problem:
            takeover_endpoint.register_pusher(f"{self.sender_prefix}:", self.push_text)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": self.problem or "ok"})

        @hook.route("/webhook", methods=["GET", "POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if self.problem:
                return response.text(f"{self.label} channel {self.problem}", status=503)
            try:
                return await self.handle(request, on_new_message)
            except protocol.ProtocolError as error:
                return response.text(f"bad request: {error}", status=400)
            except Exception as error:  # no 500 (WeChat shows "no service"), no URL in the log
                logger.error("A %s request failed: %s", self.label, type(error).__name__)
                return response.text(self.failure_reply)

        return hook

    def __init__(self, reply_seconds: float) -> None:
        self.reply_seconds = reply_seconds
        self.problem = ""  # why the channel is off ("not configured", "misconfigured"), or ""
        self._state: SharedState | None = None
        self._api: MessageApi | None = None
        self._background: set[asyncio.Future] = set()

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

    def open_envelope(
        self, token: str, aes_key: str, owner_id: str, setting: str
    ) -> protocol.Envelope | None:
        """The AES envelope, or None with `problem` saying why: an unusable key turns this channel
        off (503, the reason in the log) instead of stopping the whole server at start."""
        try:
            return protocol.Envelope(token, aes_key, owner_id)
        except Exception as error:
            self.problem = "misconfigured"
            logger.error(
                "%s channel disabled: %s is unusable (%s). It must be the "
                "43-character EncodingAESKey.",
                self.name(),
                setting,
                error,
            )
            return None

    async def push_text(self, user: str, text: str) -> None:
        """An agent's words (channels/takeover_endpoint.py), through the message API; raises when
        the API refuses (WeChat: errcode 45015 once 48 hours have passed since the user wrote)."""
        await self.api.send_text(user, protocol.split_text(text))

    def in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def answer(self, on_new_message: OnNewMessage, message: dict[str, str]) -> str | None:
        """The passive reply's text, or None (nothing to say now; an answer may follow by API)."""
        user = message.get("FromUserName", "")
        if not USER_ID.fullmatch(user):
            raise protocol.ProtocolError("FromUserName is not a user id")
        kind, media_id = message.get("MsgType", "").lower(), ""
        if kind == "event":
            if message.get("Event", "").lower() not in ("subscribe", "enter_agent"):
                return None
            text = WELCOME
        elif kind == "text":
            text = await self.chosen(user, message.get("Content", ""))
        elif kind == "voice":  # with 语音识别 on, WeChat sends what it heard; no audio fetched
            text = message.get("Recognition", "").strip()
            if not text:
                return replies()["voice_unsupported"]
        elif kind == "image" and MEDIA_ID.fullmatch(message.get("MediaId", "")):
            text, media_id = "", message["MediaId"]
        else:
            return replies()["wechat_unsupported"]
        sender = f"{self.sender_prefix}:{user}"
        deliveries = Deliveries(state=self.state)
        delivery = message.get("MsgId") or f"{message.get('CreateTime')}:{message.get('Event')}"
        key = Deliveries.key(sender, delivery[:64])
        if not await deliveries.claim(key):  # a re-delivery: the first one answers, here or by API
            done = await deliveries.first_reply(key)
            return (done[0]["text"] or None) if done else None
        text, cut = limits.clip(text)
        collector = CollectingOutputChannel()
        if cut:
            await collector.send_text_message(sender, limits.too_long_note())
        message_in = UserMessage(
            text, collector, sender, input_channel=self.name(), message_id=delivery[:64]
        )
        turn = asyncio.ensure_future(self._turn(on_new_message, message_in, media_id))
        answered_in_time: set = set()  # reply_seconds 0: always answer through the API
        if self.reply_seconds > 0:
            answered_in_time, _ = await asyncio.wait({turn}, timeout=self.reply_seconds)
        if not answered_in_time:
            self.in_background(
                self._send_when_done(turn, collector, user, key, deliveries, message_in.text)
            )
            return None
        pieces = await self._pieces(turn, collector, user, message_in.text)
        if pieces and await self.transfers(sender, collector.messages):
            pieces = [TRANSFER]
        await deliveries.keep_reply(key, [{"text": pieces[0] if pieces else ""}])
        if len(pieces) > 1:
            self.in_background(self._send(user, pieces[1:]))
        return pieces[0] if pieces else None

    async def transfers(self, sender: str, messages: list[dict[str, Any]]) -> bool:
        """Whether this answer is to be replaced by a handoff to the account's own human agents
        (channels/tencent/wechat.py); never here."""
        return False

    async def _turn(
        self, on_new_message: OnNewMessage, message: UserMessage, media_id: str
    ) -> None:
        """One turn; a picture's text is read first and said back (channels/ocr_reader.py)."""
        if media_id:
            reading = await self._read_screenshot(media_id, message.sender_id)
            if not reading.text:
                await message.output_channel.send_text_message(
                    message.sender_id, replies()[reading.problem]
                )
                return
            said = replies()["screenshot_read"].format(text=reading.text)
            await message.output_channel.send_text_message(message.sender_id, said)
            message.text = reading.text
        await on_new_message(message)

    async def _read_screenshot(self, media_id: str, user: str) -> ocr_reader.Reading:
        try:
            data = await self.api.download(media_id, ocr_reader.MAX_IMAGE_BYTES)
        except MediaTooLarge:
            return ocr_reader.Reading(problem="screenshot_too_large")
        except Exception as error:
            logger.error("Could not fetch a %s picture: %s", self.name(), type(error).__name__)
            return ocr_reader.Reading(problem="screenshot_busy")
        return await ocr_reader.reader().read(data, user)  # one picture at a time per user

    async def chosen(self, user: str, text: str) -> str:
        """The payload of choice 2 when `text` is "2" ("２", "②") after a numbered list; else
        `text` itself."""
        number = unicodedata.normalize("NFKC", text.strip()[:4])
        if re.fullmatch(r"[0-9]{1,2}", number):
            offered = json.loads(
                await self.state.get(f"choices:{self.sender_prefix}:{user}") or "[]"
            )
            if 1 <= int(number) <= len(offered):
                return offered[int(number) - 1]
        return text

    async def first_use(self, timestamp: str, nonce: str, body: bytes) -> bool:
        """False when this request's nonce was used within the freshness window for another body:
        a signed URL taken from a log and reused. WeChat's own retry of the same request, or an
        exact replay, has the same body; the message id then makes it one turn."""
        key = "nonce:" + hashlib.sha256(f"{self.name()}|{timestamp}|{nonce}".encode()).hexdigest()
        digest = hashlib.sha256(body).hexdigest()
        if await self.state.set(key, digest, 2 * protocol.FRESH_SECONDS, only_if_new=True):
            return True
        return await self.state.get(key) == digest

    @staticmethod
    def fresh(timestamp: str) -> bool:
        return protocol.fresh(timestamp, time.time())

    async def _pieces(
        self, turn: "asyncio.Future", collector: CollectingOutputChannel, user: str, said: str
    ) -> list[str]:
        if turn.exception() is not None:
            logger.error(
                "Could not handle a %s message: %s", self.name(), type(turn.exception()).__name__
            )
            return [replies()["unavailable"]]
        messages = with_personal_data_note(said, collector.messages, None)
        text, payloads = protocol.as_plain_text(messages)
        if payloads:
            await self.state.set(
                f"choices:{self.sender_prefix}:{user}", json.dumps(payloads), CHOICES_SECONDS
            )
        if text:
            return protocol.split_text(text)
        if await takeover_endpoint.is_paused(f"{self.sender_prefix}:{user}"):
            return []  # an agent holds the conversation and answers through the API
        return [replies()["unavailable"]]

    async def _send_when_done(
        self,
        turn: "asyncio.Future",
        collector: CollectingOutputChannel,
        user: str,
        key: str,
        deliveries: Deliveries,
        said: str,
    ) -> None:
        await asyncio.wait({turn})
        pieces = await self._pieces(turn, collector, user, said)
        await deliveries.keep_reply(key, [{"text": pieces[0] if pieces else ""}])
        if pieces:
            await self._send(user, pieces)

    async def _send(self, user: str, pieces: list[str]) -> None:
        try:
            await self.api.send_text(user, pieces)
        except Exception as error:
            logger.error(
                "Could not send a %s message through the API: %s: %s",
                self.name(),
                type(error).__name__,
                error,
            )
