"""WeCom (企业微信) app callback channel: /webhooks/wecom/webhook.

Configured from WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID, WECOM_SECRET and WECOM_AGENT_ID
(credentials.yml); with no token the channel answers 503. Unlike the Official Account, WeCom
callbacks are always encrypted: msg_signature is checked (constant time) over the token, timestamp,
nonce and the encrypted text before anything is decrypted or parsed; the URL verification's
`echostr` is decrypted and returned. Every message is acknowledged at once with an empty 200 and
answered through the message-send API (WECOM_API_BASE, https://qyapi.weixin.qq.com by default).
Numbered choices, duplicate MsgIds and unsupported types as in tencent.py. Sender ids are
`wecom:<userid>`.
"""
import logging
import os
from typing import Any, Dict, Optional, Text

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from addons.channels import wechat_protocol as protocol
from addons.channels.tencent import MessageApi, OnNewMessage, TencentChannel

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"


class WeComInput(TencentChannel):
    sender_prefix = "wecom"

    @classmethod
    def name(cls) -> Text:
        return "wecom"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WeComInput":
        credentials = credentials or {}
        return cls(token=credentials.get("token") or "", aes_key=credentials.get("aes_key") or "",
                   corp_id=credentials.get("corp_id") or "",
                   secret=credentials.get("secret") or "",
                   agent_id=str(credentials.get("agent_id") or ""),
                   api_base=os.environ.get("WECOM_API_BASE") or DEFAULT_API_BASE)

    def __init__(self, token: Text, aes_key: Text, corp_id: Text, secret: Text, agent_id: Text,
                 api_base: Text = DEFAULT_API_BASE) -> None:
        super().__init__(reply_seconds=0)  # always acknowledge first, answer by API
        self.token, self.corp_id, self.secret, self.agent_id = token, corp_id, secret, agent_id
        self.api_base = api_base.rstrip("/")
        self.problem = "" if token else "not configured"
        self.envelope = (self.open_envelope(token, aes_key, corp_id, "WECOM_AES_KEY") if token
                         else None)

    def make_api(self) -> MessageApi:
        agent = int(self.agent_id) if self.agent_id.isdigit() else self.agent_id
        return MessageApi(
            self.state, f"wecom-token:{self.corp_id}:{self.agent_id}",
            f"{self.api_base}/cgi-bin/gettoken", {"corpid": self.corp_id, "corpsecret": self.secret},
            f"{self.api_base}/cgi-bin/message/send",
            lambda to, text: {"touser": to, "msgtype": "text", "agentid": agent,
                              "text": {"content": text}})

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        hook = Blueprint("custom_webhook_WeComInput", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": self.problem or "ok"})

        @hook.route("/webhook", methods=["GET", "POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if self.envelope is None:
                return response.text(f"WeCom channel {self.problem}", status=503)
            try:
                return await self.handle(request, on_new_message, self.envelope)
            except protocol.ProtocolError as error:
                return response.text(f"bad request: {error}", status=400)
            except Exception as error:  # no 500, and no URL (signature, user id) in the log
                logger.error("A WeCom request failed: %s", type(error).__name__)
                return response.text("")

        return hook

    async def handle(self, request: Request, on_new_message: OnNewMessage,
                     envelope: protocol.Envelope) -> HTTPResponse:
        args = request.args
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        if not self.fresh(timestamp):
            return response.text("forbidden: stale timestamp", status=403)
        if request.method == "GET":
            try:
                echo = envelope.open({"Encrypt": args.get("echostr", "")},
                                     args.get("msg_signature"), timestamp, nonce)
            except protocol.ProtocolError:
                return response.text("forbidden", status=403)
            return response.text(echo.decode("utf-8") if isinstance(echo, bytes) else echo)
        body = request.body or b""
        if len(body) > protocol.MAX_BODY_BYTES:
            return response.text("too large", status=413)
        outer = protocol.parse_xml(body)
        try:
            inner = envelope.open(outer, args.get("msg_signature"), timestamp, nonce)
        except protocol.ProtocolError:
            return response.text("forbidden", status=403)
        if not await self.first_use(timestamp, nonce, body):
            return response.text("forbidden: nonce already used", status=403)
        message = protocol.parse_xml(inner)
        reply = await self.answer(on_new_message, message)
        if reply is not None:  # a canned reply (unsupported type): send it the same way
            self.in_background(self._send(message.get("FromUserName", ""), [reply]))
        return response.text("")
