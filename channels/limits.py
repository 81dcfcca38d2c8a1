"""What every channel accepts from the internet, checked before any work is done.

- A client address (the connection's, or behind a proxy the one Sanic reads from X-Forwarded-For
  when SANIC_PROXIES_COUNT says how many proxies to trust) sends at most MESSAGES_PER_ADDRESS
  messages a minute over REST, screenshots and socket.io, counted across workers and servers
  (core/shared_state.py): one client opened 32 tickets a second, one per new sender id, before.
  Each message also carries a tag of its address (`with_client`), and at most 30 new tickets an
  hour open per address (actions/handoff.py).
  The limit is generous because a campus network can put many students behind one address.
  Loopback is not limited: behind a proxy on this machine, set SANIC_PROXIES_COUNT=1.

- A message is cut at MAX_MESSAGE_CHARS: the FAQ's questions are a sentence or two, and a student
  who pastes a whole page gets an answer to its beginning with a note asking to keep it short
  (`too_long_note`). The cut text is what the conversation keeps (masked). The NLU pipeline reads
  a shorter prefix still (understanding/message_prefix.py, NLU_MAX_CHARS).
- Request bodies are capped at MAX_REQUEST_BYTES for the whole Rasa server (Sanic's default is
  100 MB), metadata at MAX_METADATA_BYTES of JSON.
- Sender ids have a charset and a length, so that they cannot carry newlines or terminal escapes
  into logs, and cannot contain ":", which the WeChat, WeCom and socket.io channels use to keep
  their users in namespaces of their own (wx:, wecom:, sio:): a REST client cannot call itself a
  WeChat follower.
"""

import hashlib
import ipaddress
import json
import re
from typing import Any, TypeGuard

from sanic import Blueprint

from channels.replies import replies
from core import session_tokens
from core.privacy import is_mostly_personal_data
from core.shared_state import SharedState

# About ten times the longest question in the training data; 10,000 characters of ordinary
# words took 6.1 s and +1.8 GB of memory to read with no limit (2-core machine).
MAX_MESSAGE_CHARS = 2000
# A whole pasted page (100,000 characters, 300 KB in UTF-8) is still read, cut and answered with
# the note; a body Sanic would otherwise buffer up to 100 MB of is refused with 413.
MAX_REQUEST_BYTES = 1024 * 1024
MAX_METADATA_BYTES = 4096
# A screenshot of MAX_IMAGE_BYTES (channels/ocr_reader.py: 4 MB) as base64 in a JSON body, the
# only body allowed over MAX_REQUEST_BYTES (channels/rest.py reads it itself).
MAX_SCREENSHOT_BODY_BYTES = (4 * 1024 * 1024) * 4 // 3 + 64 * 1024
# Such bodies one worker reads at once (each about 20 MB while it is parsed); others get 429.
LARGE_BODIES_AT_ONCE = 4
MAX_METADATA_DEPTH = 8
SENDER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


MESSAGES_PER_ADDRESS = 120
RATE_WINDOW_SECONDS = 60


class Throttle:
    """Counts each client address's messages in a shared window (created on first use)."""

    def __init__(self) -> None:
        self._state: SharedState | None = None

    async def allows(self, address: str) -> bool:
        if not address:
            return True
        if self._state is None:
            self._state = SharedState()
        key = "rate:" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return await self._state.add(key, 1, RATE_WINDOW_SECONDS) <= MESSAGES_PER_ADDRESS


def client_address(request: Any) -> str:
    """The client's address as Sanic trusts it (a proxy's X-Forwarded-For only when
    SANIC_PROXIES_COUNT is set); "" for this machine itself (the bench, the tests, or a proxy
    that does not say whose request it passes on), which is not limited."""
    forwarded = str(getattr(request, "remote_addr", "") or "")
    if forwarded:
        return forwarded
    address = str(getattr(request, "ip", "") or "")
    try:
        return "" if ipaddress.ip_address(address).is_loopback else address
    except ValueError:
        return address


def slow_down(sender: str) -> list[dict[str, Any]]:
    """What a client over its rate is answered (429), in the student's words."""
    return [{"recipient_id": sender, "text": replies()["rate_limited"]}]


def clip(text: str) -> tuple[str, bool]:
    """The part of `text` the assistant reads, and whether anything was cut off."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text, False
    return text[:MAX_MESSAGE_CHARS], True


def too_long_note() -> str:
    return replies()["too_long"]


def valid_sender(sender: Any) -> TypeGuard[str]:
    """A sender id of the allowed characters that is not a phone or ID number in disguise (it
    would be stored as the conversation's id, in plain text)."""
    return (
        isinstance(sender, str)
        and SENDER_ID.fullmatch(sender) is not None
        and not is_mostly_personal_data(sender)
    )


def depth(value: Any, limit: int) -> int:
    """How deeply `value` nests lists and objects, counted without recursion and no further than
    limit + 1 (a body of 1,000 nested lists made json.dumps raise RecursionError)."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, at = level.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, at)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            level.extend((child, at + 1) for child in children)
    return deepest


def bounded_metadata(metadata: Any) -> dict[str, Any] | None:
    """`metadata` when it is a JSON object of at most MAX_METADATA_BYTES and MAX_METADATA_DEPTH
    levels, with text that UTF-8 can carry (no lone surrogates), else None."""
    if not isinstance(metadata, dict) or depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
        return None
    try:
        size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return None
    return metadata if size <= MAX_METADATA_BYTES else None


CLIENT_KEY = "client"


def with_client(metadata: dict[str, Any] | None, address: str) -> dict[str, Any]:
    """The message's metadata with the server's tag of the client address (`CLIENT_KEY`: an HMAC,
    16 hex digits, so that the address itself is not stored), for the limit on new tickets per
    address (actions/handoff.py). A tag the client sent itself is dropped; no address (loopback,
    WeChat's servers): no tag."""
    tagged = {k: v for k, v in (metadata or {}).items() if k != CLIENT_KEY}
    if address:
        tagged[CLIENT_KEY] = session_tokens.token("client-address", address)[:16]
    return tagged


def cap_request_size(blueprint: Blueprint) -> None:
    """Caps every request body of the server this blueprint is part of (Sanic reads the limit
    for each new connection, so setting it before the server starts covers all of them)."""

    @blueprint.listener("before_server_start")
    async def cap(app: Any, _: Any) -> None:
        app.config.REQUEST_MAX_SIZE = min(app.config.REQUEST_MAX_SIZE, MAX_REQUEST_BYTES)
