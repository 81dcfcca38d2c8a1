"""WeChat Official Account (公众号) channel: /webhooks/wechat/webhook.

Configured in credentials.yml from WECHAT_TOKEN, WECHAT_APPID, WECHAT_APPSECRET and (safe mode)
WECHAT_AES_KEY; with no token the channel answers 503 and does nothing. Protocol details in
channels/tencent/wechat_protocol.py, what both Tencent channels share in wechat_base.py.
- GET: URL verification; `echostr` only when the signature matches, 403 otherwise. Every POST is
  checked the same way (and, in safe mode, by msg_signature) before its body is parsed.
- Text: answered with a passive reply when the assistant answers within WECHAT_REPLY_SECONDS
  (default 4, under WeChat's 5 s); otherwise `success` at once and the answer through the
  customer-service message API (WECHAT_REPLY_SECONDS=0: always so; WECHAT_API_BASE: the API's
  address, https://api.weixin.qq.com by default). Long replies: the first piece passively, the
  rest by API.
- Choices: buttons become a numbered list; "1", "2"… map back to the choice's payload.
- The same MsgId (events: sender and CreateTime) is processed once, across servers with REDIS_URL.
- Subscribe: the welcome. Pictures, voice and other types: a polite text answer.
- Sender ids are `wx:<openid>`.
- WECHAT_TRANSFER_CUSTOMER_SERVICE=1: a handoff answers with WeChat's transfer_customer_service
  message when one of the account's own customer-service agents is online, so that they take the
  conversation in WeChat's tools; with nobody online the student gets the contacts as usual.
"""

import logging
from typing import Any

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels import conversations
from channels.tencent import wechat_protocol as protocol
from channels.tencent.wechat_api import MessageApi
from channels.tencent.wechat_base import TRANSFER, OnNewMessage, TencentChannel
from core import settings

logger = logging.getLogger(__name__)
DEFAULT_API_BASE = "https://api.weixin.qq.com"
REPLY_SECONDS = 4.0  # WeChat gives up after 5 s and retries
# A handoff: its answer gives the FAQ's email (domain.yml, utter_handoff*), and the action that
# opens the ticket ran in the turn.
HANDOFF_MARK, HANDOFF_ACTION = "kefu@chsi.com.cn", "action_create_handoff_ticket"
AGENTS_ONLINE_TIMEOUT = 1.5


class WeChatInput(TencentChannel):
    """The Official Account's callback: passive replies within the deadline, else by API."""

    sender_prefix = "wx"
    label = "WeChat"
    failure_reply = "success"  # anything else makes WeChat show "no service" to the follower
    credential_names = {
        "token": "token",
        "appid": "app_id",
        "appsecret": "secret",
        "aes_key": "aes_key",
    }
    api_base_setting, default_api_base = "WECHAT_API_BASE", DEFAULT_API_BASE

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def settings(cls) -> dict[str, Any]:
        reply_seconds = float(settings.read("WECHAT_REPLY_SECONDS") or REPLY_SECONDS)
        transfer = settings.read("WECHAT_TRANSFER_CUSTOMER_SERVICE").lower()
        return {
            **super().settings(),
            "reply_seconds": reply_seconds,
            "transfer_to_agents": transfer in ("1", "true", "yes"),
        }

    def __init__(
        self,
        token: str,
        app_id: str,
        secret: str,
        aes_key: str = "",
        api_base: str = DEFAULT_API_BASE,
        reply_seconds: float = REPLY_SECONDS,
        transfer_to_agents: bool = False,
    ) -> None:
        super().__init__(reply_seconds)
        self.transfer_to_agents = transfer_to_agents
        self.token, self.app_id, self.secret = token, app_id, secret
        self.api_base = api_base.rstrip("/")
        self.envelope = None
        self.problem = "" if token else "not configured"
        if token and aes_key:
            self.envelope = self.open_envelope(token, aes_key, app_id, "WECHAT_AES_KEY")
        elif token:
            logger.warning(
                "WeChat channel in plain mode (明文模式, WECHAT_AES_KEY empty): messages "
                "and followers' openids cross the network unencrypted, and anyone "
                "holding a freshly signed URL can post as any follower for %d s. Use "
                "safe mode (安全模式) in production.",
                protocol.FRESH_SECONDS,
            )

    async def transfers(self, sender: str, messages: list[dict[str, Any]]) -> bool:
        """With WECHAT_TRANSFER_CUSTOMER_SERVICE=1, a handoff goes to the account's own human
        agents (WeChat's transfer_customer_service) when one of them is online; otherwise the
        student keeps the handoff's answer, with the contacts and the ticket number."""
        if not self.transfer_to_agents or not any(
            HANDOFF_MARK in (message.get("text") or "") for message in messages
        ):
            return False
        tracker = await conversations.stored(sender)
        if tracker is None or HANDOFF_ACTION not in conversations.last_turn_actions(tracker):
            return False
        return await self.agents_online()

    async def agents_online(self) -> bool:
        """Whether any of the account's customer-service agents is online (getonlinekflist,
        asked at each handoff, within AGENTS_ONLINE_TIMEOUT so that the passive reply still
        meets WeChat's deadline); False when the API cannot say in time."""
        url = f"{self.api_base}/cgi-bin/customservice/getonlinekflist"
        try:
            online = await self.api.get_json(url, AGENTS_ONLINE_TIMEOUT)
        except Exception as error:
            logger.warning("Could not ask WeChat who is online: %s", type(error).__name__)
            return False
        return bool(online.get("kf_online_list"))

    def make_api(self) -> MessageApi:
        return MessageApi(
            self.state,
            f"wechat-token:{self.app_id}",
            f"{self.api_base}/cgi-bin/token",
            {"grant_type": "client_credential", "appid": self.app_id, "secret": self.secret},
            f"{self.api_base}/cgi-bin/message/custom/send",
            lambda to, text: {"touser": to, "msgtype": "text", "text": {"content": text}},
            media_url=f"{self.api_base}/cgi-bin/media/get",
        )

    async def handle(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        args = request.args
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        if not protocol.signature_matches(args.get("signature"), self.token, timestamp, nonce):
            return response.text("forbidden", status=403)
        if not self.fresh(timestamp):
            return response.text("forbidden: stale timestamp", status=403)
        if request.method == "GET":
            return response.text(args.get("echostr", ""))
        body = request.body or b""
        if len(body) > protocol.MAX_BODY_BYTES:
            return response.text("too large", status=413)
        if not await self.first_use(timestamp, nonce, body):
            return response.text("forbidden: nonce already used", status=403)
        message = self.read(body, args)
        reply = await self.answer(on_new_message, message)
        if reply is None:
            return response.text("success")
        follower, account = message.get("FromUserName", ""), message.get("ToUserName", "")
        if reply == TRANSFER:
            xml = protocol.transfer_reply(follower, account)
        else:
            xml = protocol.text_reply(follower, account, reply)
        if self.envelope is not None:
            xml = self.envelope.seal(xml, nonce or None)
        return response.text(xml, content_type="application/xml")

    def read(self, body: bytes, args: Any) -> dict[str, str]:
        fields = protocol.parse_xml(body)
        if self.envelope is not None:  # safe mode: everything arrives encrypted
            inner = self.envelope.open(
                fields, args.get("msg_signature"), args.get("timestamp", ""), args.get("nonce", "")
            )
            fields = protocol.parse_xml(inner)
        return fields
