"""WeChat Official Account (公众号) channel: /webhooks/wechat/webhook.

Configured in credentials.yml from WECHAT_TOKEN, WECHAT_APPID, WECHAT_APPSECRET and (safe mode)
WECHAT_AES_KEY; with no token the channel answers 503 and does nothing. Protocol details in
addons/channels/wechat_protocol.py. What it does:
- GET: URL verification; `echostr` only when the signature matches, 403 otherwise. Every POST is
  checked the same way (and, in safe mode, by msg_signature) before its body is parsed.
- Text: answered with a passive reply when the assistant answers within WECHAT_REPLY_SECONDS
  (default 4, under WeChat's 5 s); otherwise `success` at once and the answer through the
  customer-service message API (WECHAT_REPLY_SECONDS=0: always so; WECHAT_API_BASE: the API's
  address, https://api.weixin.qq.com by default). Replies longer than WeChat's limit are split: the first piece passively, the rest by API.
- Choices: buttons become a numbered list; "1", "2"… map back to the choice's payload.
- The same MsgId (events: sender and CreateTime) is processed once, across servers with REDIS_URL.
- Subscribe: the welcome. Pictures, voice and other types: a polite text answer.
- Sender ids are `wx:<openid>`.
"""
import asyncio
import json
import logging
import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from addons.channels import wechat_protocol as protocol
from addons.channels.rest import replies
from addons.deliveries import Deliveries
from addons.shared_state import SharedState

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
REPLY_SECONDS = 4.0  # WeChat gives up after 5 s and retries
API_TIMEOUT_SECONDS = 5
CHOICES_SECONDS = 24 * 3600
WELCOME = "/greet"
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid or expired access token


class CustomerServiceApi:
    """Sends text through the customer-service message API with one shared access token."""

    def __init__(self, base: Text, app_id: Text, secret: Text, state: SharedState) -> None:
        self.base, self.app_id, self.secret, self.state = base.rstrip("/"), app_id, secret, state
        self._refreshing = asyncio.Lock()

    @property
    def _key(self) -> Text:
        return f"wechat-token:{self.app_id}"

    async def token(self, session: aiohttp.ClientSession, stale: Optional[Text] = None) -> Text:
        """The cached token; fetched when missing (or when `stale` was refused), once at a time."""
        cached = self.state.get(self._key)
        if cached and cached != stale:
            return cached
        async with self._refreshing:
            cached = self.state.get(self._key)
            if cached and cached != stale:
                return cached
            params = {"grant_type": "client_credential", "appid": self.app_id,
                      "secret": self.secret}
            async with session.get(f"{self.base}/cgi-bin/token", params=params) as reply:
                body = await reply.json(content_type=None)
            if "access_token" not in body:
                raise RuntimeError(f"access token refused: errcode {body.get('errcode')}")
            lifetime = int(body.get("expires_in", 7200))
            self.state.set(self._key, body["access_token"], max(60, lifetime - 300))
            return body["access_token"]

    async def send_text(self, open_id: Text, pieces: List[Text]) -> None:
        timeout = aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            token = await self.token(session)
            for piece in pieces:
                payload = {"touser": open_id, "msgtype": "text", "text": {"content": piece}}
                for attempt in range(2):
                    async with session.post(
                        f"{self.base}/cgi-bin/message/custom/send",
                        params={"access_token": token},
                        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                    ) as reply:
                        body = await reply.json(content_type=None)
                    if body.get("errcode", 0) in TOKEN_ERRORS and attempt == 0:
                        token = await self.token(session, stale=token)
                        continue
                    if body.get("errcode", 0):
                        raise RuntimeError(f"customer-service message refused: {body}")
                    break


class WeChatInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WeChatInput":
        credentials = credentials or {}
        return cls(token=credentials.get("token") or "", app_id=credentials.get("appid") or "",
                   secret=credentials.get("appsecret") or "",
                   aes_key=credentials.get("aes_key") or "",
                   api_base=os.environ.get("WECHAT_API_BASE") or DEFAULT_API_BASE,
                   reply_seconds=float(os.environ.get("WECHAT_REPLY_SECONDS") or REPLY_SECONDS))

    def __init__(self, token: Text, app_id: Text, secret: Text, aes_key: Text = "",
                 api_base: Text = DEFAULT_API_BASE, reply_seconds: float = REPLY_SECONDS) -> None:
        self.token, self.app_id, self.reply_seconds = token, app_id, reply_seconds
        self.envelope = protocol.Envelope(token, aes_key, app_id) if aes_key else None
        self._api_args = (api_base, app_id, secret)
        self._state: Optional[SharedState] = None
        self._api: Optional[CustomerServiceApi] = None
        self._background: set = set()

    # Shared state and the API client are made on first use: nothing connects at start-up.
    @property
    def state(self) -> SharedState:
        if self._state is None:
            self._state = SharedState()
        return self._state

    @property
    def api(self) -> CustomerServiceApi:
        if self._api is None:
            self._api = CustomerServiceApi(*self._api_args, state=self.state)
        return self._api

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("custom_webhook_WeChatInput", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.token else "not configured"})

        @hook.route("/webhook", methods=["GET", "POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.token:
                return response.text("WeChat channel not configured", status=503)
            args = request.args
            timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
            if not protocol.signature_matches(args.get("signature"), self.token, timestamp, nonce):
                return response.text("forbidden", status=403)
            if request.method == "GET":
                return response.text(args.get("echostr", ""))
            if len(request.body or b"") > protocol.MAX_BODY_BYTES:
                return response.text("too large", status=413)
            try:
                message = self.read(request.body, args)
            except protocol.ProtocolError as error:
                logger.warning("WeChat request refused: %s", error)
                return response.text("bad request", status=400)
            reply = await self.answer(on_new_message, message)
            if reply is None:
                return response.text("success")
            xml = protocol.text_reply(message.get("FromUserName", ""),
                                      message.get("ToUserName", ""), reply)
            if self.envelope is not None:
                xml = self.envelope.seal(xml, nonce or None)
            return response.text(xml, content_type="application/xml")

        return hook

    def read(self, body: bytes, args: Any) -> Dict[Text, Text]:
        fields = protocol.parse_xml(body)
        if self.envelope is not None:  # safe mode: everything arrives encrypted
            inner = self.envelope.open(fields, args.get("msg_signature"), args.get("timestamp", ""),
                                       args.get("nonce", ""))
            fields = protocol.parse_xml(inner)
        return fields

    async def answer(self, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                     message: Dict[Text, Text]) -> Optional[Text]:
        """The passive reply's text, or None for `success` (nothing, or an answer sent later)."""
        open_id = message.get("FromUserName", "")
        kind = message.get("MsgType", "").lower()
        if kind == "event":
            if message.get("Event", "").lower() != "subscribe":
                return None
            text = WELCOME
        elif kind == "text":
            text = self.chosen(open_id, message.get("Content", ""))
        else:
            return replies()["wechat_unsupported"]
        deliveries = Deliveries(state=self.state)
        delivery = message.get("MsgId") or f"{message.get('CreateTime')}:{message.get('Event')}"
        key = Deliveries.key(f"wx:{open_id}", delivery)
        if not deliveries.claim(key):  # a retry: the first delivery answers, here or by API
            done = deliveries.finished(key)
            return done[0]["text"] if done else None
        collector = CollectingOutputChannel()
        turn = asyncio.ensure_future(on_new_message(UserMessage(
            text, collector, f"wx:{open_id}", input_channel=self.name(), message_id=delivery)))
        finished: set = set()  # WECHAT_REPLY_SECONDS=0: always answer through the API
        if self.reply_seconds > 0:
            finished, _ = await asyncio.wait({turn}, timeout=self.reply_seconds)
        if not finished:
            later = asyncio.ensure_future(self._send_later(turn, collector, open_id, key, deliveries))
            self._background.add(later)
            later.add_done_callback(self._background.discard)
            return None
        pieces = self._pieces(turn, collector, open_id)
        deliveries.finish(key, [{"text": pieces[0]}])
        if len(pieces) > 1:
            rest = asyncio.ensure_future(self._send(open_id, pieces[1:]))
            self._background.add(rest)
            rest.add_done_callback(self._background.discard)
        return pieces[0]

    def chosen(self, open_id: Text, text: Text) -> Text:
        """"2" after a numbered list is that choice's payload; anything else is itself."""
        number = text.strip()
        if number.isdigit():
            offered = json.loads(self.state.get(f"choices:wx:{open_id}") or "[]")
            if 1 <= int(number) <= len(offered):
                return offered[int(number) - 1]
        return text

    def _pieces(self, turn: "asyncio.Future", collector: CollectingOutputChannel,
                open_id: Text) -> List[Text]:
        if turn.exception() is not None:
            logger.error("Could not handle a WeChat message: %s", type(turn.exception()).__name__)
            return [replies()["unavailable"]]
        text, payloads = protocol.as_plain_text(collector.messages)
        if payloads:
            self.state.set(f"choices:wx:{open_id}", json.dumps(payloads), CHOICES_SECONDS)
        return protocol.split_text(text) if text else [replies()["unavailable"]]

    async def _send_later(self, turn: "asyncio.Future", collector: CollectingOutputChannel,
                          open_id: Text, key: Text, deliveries: Deliveries) -> None:
        await asyncio.wait({turn})
        pieces = self._pieces(turn, collector, open_id)
        deliveries.finish(key, [{"text": pieces[0]}])
        await self._send(open_id, pieces)

    async def _send(self, open_id: Text, pieces: List[Text]) -> None:
        try:
            await self.api.send_text(open_id, pieces)
        except Exception as error:
            logger.error("Could not send a WeChat customer-service message: %s", error)
