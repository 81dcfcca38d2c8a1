"""Conversations that belong to the browser they were issued to.

A widget's conversation id (its REST sender, its socket.io session) used to be the only thing a
client had to show: anyone who learnt it (from a screenshot, a shared link, a log, the README's
example) could read the agent's words on its stream, fill its streams so that the student's own
widget was refused, or, on socket.io, receive its answers and speak in it. Now the server issues
the id with a token, an HMAC of the id under a server key, and asks for the token wherever the id
alone would give access. Nothing is stored: any worker or server with the same key checks a token
by recomputing it.

The key is SESSION_SECRET (hex or any text of at least 32 characters): set it, the same, on
every server behind a proxy, and keep it across restarts (`make run` keeps one in
var/session_secret). Several servers (REDIS_URL set) without it refuse to start: each would draw
a key of its own and refuse the others' widgets. One server without it draws one at random when
it starts, before its workers are forked, so that they share it; a restart then starts the
widgets' conversations anew.

A token does not expire: it is as good as the conversation it opens, which the student can end
("新对话") and which is purged after RETENTION_DAYS.
"""

import functools
import hashlib
import hmac
import secrets
import string

from core import settings

MIN_SECRET_CHARS = 32
TOKEN_CHARS = 32  # 128 bits in hex
# The id's random part: 32 lower-case letters (150 bits). No digits, so that no id ever looks
# like a phone or ID-card number to the personal-data checks that every sender id passes.
PUBLIC_CHARS, ALPHABET = 32, string.ascii_lowercase


@functools.cache
def key() -> bytes:
    """The server's key; call it once before workers fork (the channels do, when they load)."""
    configured = settings.read("SESSION_SECRET")
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise ValueError(f"SESSION_SECRET must be at least {MIN_SECRET_CHARS} characters.")
        return hashlib.sha256(b"chsi-session-secret:" + configured.encode()).digest()
    if settings.redis_url():
        raise ValueError(
            "SESSION_SECRET is not set, and REDIS_URL says several servers share the work: each "
            "would refuse the widget sessions the others issue. Set the same SESSION_SECRET "
            "(python3 -c 'import secrets; print(secrets.token_hex(32))') on every server."
        )
    return secrets.token_bytes(32)


def token(purpose: str, conversation: str) -> str:
    """The token for `conversation` (a sender id) and `purpose` (which channel issued it)."""
    message = f"{purpose}\n{conversation}".encode()
    return hmac.new(key(), message, hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def valid(purpose: str, conversation: str, presented: object) -> bool:
    """Whether `presented` is the token of `conversation`, compared in constant time."""
    if not isinstance(presented, str) or len(presented) != TOKEN_CHARS:
        return False
    return hmac.compare_digest(token(purpose, conversation), presented)


def new_conversation(prefix: str) -> str:
    """A fresh conversation id: `prefix` and PUBLIC_CHARS random letters."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(PUBLIC_CHARS))
