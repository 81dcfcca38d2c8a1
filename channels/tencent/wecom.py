"""WeCom (企业微信) app callback channel: /webhooks/wecom/webhook.

Configured from WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID, WECOM_SECRET and WECOM_AGENT_ID
(credentials.yml); with no token the channel answers 503. Unlike the Official Account, WeCom
callbacks are always encrypted: msg_signature is checked (constant time) over the token, timestamp,
nonce and the encrypted text before anything is decrypted or parsed; the URL verification's
`echostr` is decrypted and returned. Every message is acknowledged at once with an empty 200 and
answered through the message-send API (WECOM_API_BASE, https://qyapi.weixin.qq.com by default).
Numbered choices, duplicate MsgIds and unsupported types as in wechat_base.py. Sender ids are
`wecom:<userid>`.
"""

import logging

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.tencent import wechat_protocol as protocol
from channels.tencent.wechat_api import MessageApi
from channels.tencent.wechat_base import OnNewMessage, TencentChannel

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"
CREDENTIALS = ("token", "aes_key", "corp_id", "secret", "agent_id")


class WeComInput(TencentChannel):
    """The WeCom app's callback: acknowledged at once, always answered by API."""

    sender_prefix = "wecom"
    label = "WeCom"
    failure_reply = ""
    credential_names = {name: name for name in CREDENTIALS}  # the constructor's own names
    api_base_setting, default_api_base = "WECOM_API_BASE", DEFAULT_API_BASE

    @classmethod
    def name(cls) -> str:
        return "wecom"

    def __init__(
        self,
        token: str,
        aes_key: str,
        corp_id: str,
        secret: str,
        agent_id: str,
        api_base: str = DEFAULT_API_BASE,
    ) -> None:
        super().__init__(reply_seconds=0)  # always acknowledge first, answer by API
        self.token, self.corp_id, self.secret, self.agent_id = token, corp_id, secret, agent_id
        self.api_base = api_base.rstrip("/")
        self.problem = "" if token else "not configured"
        self.envelope = (
            self.open_envelope(token, aes_key, corp_id, "WECOM_AES_KEY") if token else None
        )

    def make_api(self) -> MessageApi:
        agent = int(self.agent_id) if self.agent_id.isdigit() else self.agent_id
        return MessageApi(
            self.state,
            f"wecom-token:{self.corp_id}:{self.agent_id}",
            f"{self.api_base}/cgi-bin/gettoken",
            {"corpid": self.corp_id, "corpsecret": self.secret},
            f"{self.api_base}/cgi-bin/message/send",
            lambda to, text: {
                "touser": to,
                "msgtype": "text",
                "agentid": agent,
                "text": {"content": text},
            },
            media_url=f"{self.api_base}/cgi-bin/media/get",
        )

    async def handle(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        envelope = self.envelope
        assert envelope is not None  # the channel is off (self.problem) without one
        args = request.args
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        if not self.fresh(timestamp):
            return response.text("forbidden: stale timestamp", status=403)
        if request.method == "GET":
            try:
                echo = envelope.open(
                    {"Encrypt": args.get("echostr", "")},
                    args.get("msg_signature"),
                    timestamp,
                    nonce,
                )
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
