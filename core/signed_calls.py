"""Calls from the staff console to the Rasa server, signed with a shared secret.

The console's live takeover (staff/agent_takeover.py) asks the Rasa server to pause a conversation,
say an agent's words in it and resume it (channels/takeover_endpoint.py). The Rasa server faces the
internet, so each call carries a timestamp, a one-time nonce and an HMAC-SHA256 over both and the
body; the server refuses a wrong signature, a timestamp more than FRESH_SECONDS from its clock, and
a nonce it has seen.
"""

import hashlib
import hmac
import secrets
import time

from core import parsing

FRESH_SECONDS = 120
TIMESTAMP, NONCE, SIGNATURE = "X-Takeover-Timestamp", "X-Takeover-Nonce", "X-Takeover-Signature"


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + nonce.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp, nonce = str(int(now if now is not None else time.time())), secrets.token_hex(16)
    return {
        TIMESTAMP: timestamp,
        NONCE: nonce,
        SIGNATURE: signature(secret, timestamp, nonce, body),
        "Content-Type": "application/json",
    }


def verified(secret: str, headers: dict[str, str], body: bytes, now: float) -> str | None:
    """The nonce of a correctly signed, fresh call (for the caller's replay check), else None.

    `headers` with lower-case names; everything in them is the sender's to choose."""
    timestamp = headers.get(TIMESTAMP.lower(), "")
    nonce = headers.get(NONCE.lower(), "")
    sent = headers.get(SIGNATURE.lower(), "")
    sent_at = parsing.ascii_int(timestamp, 12)
    if not secret or sent_at is None or not sent.isascii():
        return None
    if not (nonce.isascii() and nonce.isalnum() and 16 <= len(nonce) <= 64):
        return None
    if abs(now - sent_at) > FRESH_SECONDS:
        return None
    expected = signature(secret, timestamp, nonce, body)
    return nonce if hmac.compare_digest(sent.encode("ascii"), expected.encode("ascii")) else None
