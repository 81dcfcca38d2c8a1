"""The WeChat callback protocol, as pure functions: signatures, safe XML, AES envelopes, replies.

- Signatures are SHA-1 over the sorted parameters (token, timestamp, nonce[, Encrypt]) and are
  compared in constant time (wechatpy compares with `!=`).
- XML is parsed with defusedxml, with DTDs, entities and external references forbidden, so an
  entity-expansion bomb or an external entity is refused before anything is expanded.
- The AES envelope ("safe mode") uses wechatpy's PrpCrypto (AES-256-CBC, PKCS#7, app id check).
- Text goes into CDATA with "]]>" split across two sections, so a reply cannot break out of it.
"""

import hashlib
import hmac
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from defusedxml import ElementTree

MAX_BODY_BYTES = 64 * 1024
# How far a request's timestamp may be from this server's clock. WeChat retries within about 15 s;
# the rest is room for clock skew. A signed URL older than this (from a proxy's access log, say)
# is refused, and within it a nonce is accepted with one body only (TencentChannel.first_use).
FRESH_SECONDS = 300
# WeChat cuts text messages at 2048 bytes; leave room for the envelope.
TEXT_LIMIT_BYTES = 2000
MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


class ProtocolError(ValueError):
    """A request WeChat would not send: bad signature, malformed or unsafe XML, wrong app id."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8", "replace")).hexdigest()


def signature_matches(given: str | None, *parts: str) -> bool:
    """Constant-time comparison of bytes (compare_digest refuses non-ASCII str with TypeError)."""
    return hmac.compare_digest(
        signature(*parts).encode("ascii"), (given or "").encode("utf-8", "replace")
    )


def fresh(timestamp: str, now: float) -> bool:
    """Whether `timestamp` (seconds since the epoch, as WeChat sends it) is within FRESH_SECONDS."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(now - int(timestamp)) <= FRESH_SECONDS


def parse_xml(body: bytes) -> dict[str, str]:
    """The fields of a flat <xml> document; ProtocolError for anything unsafe or malformed."""
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError("body too large")
    try:
        root = ElementTree.fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except Exception as error:  # defusedxml's refusals and expat's syntax errors alike
        raise ProtocolError(f"unreadable XML ({type(error).__name__})") from error
    if root.tag != "xml":
        raise ProtocolError("not a WeChat message")
    return {child.tag: (child.text or "") for child in root}


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str) -> str:
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{cdata('text')}</MsgType>"
        f"<Content>{cdata(content)}</Content></xml>"
    )


def transfer_reply(to_user: str, from_user: str) -> str:
    """Hands the follower's conversation to the account's customer-service agents (多客服)."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        f"<MsgType>{cdata('transfer_customer_service')}</MsgType></xml>"
    )


class Envelope:
    """Safe mode: decrypts what WeChat sends and encrypts what goes back."""

    def __init__(self, token: str, aes_key: str, app_id: str) -> None:
        import base64

        from wechatpy.crypto import PrpCrypto

        key = base64.b64decode(aes_key + "=")
        if len(key) != 32:
            raise ValueError("the EncodingAESKey must be 43 characters of base64 (32 bytes)")
        self.token, self.app_id, self._crypto = token, app_id, PrpCrypto(key)

    def open(
        self, outer: dict[str, str], msg_signature: str | None, timestamp: str, nonce: str
    ) -> bytes:
        encrypted = outer.get("Encrypt", "")
        if not signature_matches(msg_signature, self.token, timestamp, nonce, encrypted):
            raise ProtocolError("bad msg_signature")
        try:
            return self._crypto.decrypt(encrypted, self.app_id)
        except Exception as error:
            raise ProtocolError(f"cannot decrypt ({type(error).__name__})") from error

    def seal(self, reply_xml: str, nonce: str | None = None) -> str:
        nonce = nonce or secrets.token_hex(8)
        timestamp = str(int(time.time()))
        encrypted = self._crypto.encrypt(reply_xml, self.app_id)
        if isinstance(encrypted, bytes):
            encrypted = encrypted.decode()
        return (
            f"<xml><Encrypt>{cdata(encrypted)}</Encrypt>"
            f"<MsgSignature>{cdata(signature(self.token, timestamp, nonce, encrypted))}"
            f"</MsgSignature><TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce>{cdata(nonce)}</Nonce></xml>"
        )


def plain_link(title: str, url: str) -> str:
    """A markdown link as plain text: "title：url"; a mailto: link, which a phone cannot open from
    a WeChat text (and whose percent-encoded subject and body nobody could read), becomes the
    address and the subject to write: "kefu@…，主题写“…”"."""
    if not url.lower().startswith("mailto:"):
        return f"{title}：{url}"
    parts = urlsplit(url)
    subject = parse_qs(parts.query).get("subject", [""])[0].strip()
    return f"{parts.path}，主题写“{subject}”" if subject else parts.path


def as_plain_text(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The bot's messages as WeChat text: buttons become a numbered list (their payloads are
    returned, so that "1", "2"… can be mapped back), markdown links become plain text
    (`plain_link`)."""
    parts: list[str] = []
    payloads: list[str] = []
    for message in messages:
        text = MARKDOWN_LINK.sub(
            lambda m: plain_link(m.group(1), m.group(2)), message.get("text") or ""
        )
        buttons = message.get("buttons") or []
        if buttons:
            numbered = [
                f"{len(payloads) + i + 1}. {b.get('title', '')}" for i, b in enumerate(buttons)
            ]
            payloads += [b.get("payload", "") for b in buttons]
            # the responses already number their options; add the list only when they do not
            if not all(line in text for line in numbered):
                text = "\n".join([text, *numbered]) if text else "\n".join(numbered)
        if text.strip():
            parts.append(text.strip())
    return "\n\n".join(parts), payloads


def split_text(text: str, limit_bytes: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Pieces of at most `limit_bytes` UTF-8 bytes, cut at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode("utf-8")) <= limit_bytes:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(line.encode("utf-8")) > limit_bytes:  # one line longer than the limit
            cut = limit_bytes // 4
            while len(line[: cut + 1].encode("utf-8")) <= limit_bytes:
                cut += 1
            pieces.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        pieces.append(current)
    return pieces
