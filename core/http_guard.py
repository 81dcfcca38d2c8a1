"""Request framing, deadlines and a connection cap for every Sanic server of the project.

Sanic 21.12 (the line Rasa 3.6 pins) trusts the framing a client sends. `Content-Length: -1`
left a worker spinning at 100 % CPU for ever inside its body reader, deaf to SIGTERM; `abc`, an
unknown `Transfer-Encoding` or `Chunked` answered 500; `4_4` was read as 44 (Python's int()).
It restarts a request's timer on every byte, so a head trickled a line every 20 s kept a
connection for minutes, and it takes any number of connections. A proxy in front (deploy/nginx)
refuses most of this, but the servers must not depend on one. `apply()` makes every server
started in this process (the Rasa server, the action server, the staff console):

- read a request head whole first and refuse bad framing with 400 before Sanic parses it or any
  handler runs: a Content-Length of ASCII digits only, one of them; a Transfer-Encoding of exactly
  `chunked` and never beside a Content-Length; header names that are tokens (no space before the
  colon, no folded lines), and body framing only on HTTP/1.1 or 1.0; chunk sizes of hex digits;
- give a request HEAD_SECONDS from its first byte to send its head, and the server's
  REQUEST_TIMEOUT from its first byte to send its body, whatever the pace;
- hold at most MAX_CONNECTIONS connections per worker (a connection over the cap is closed).

Each replaced or wrapped Sanic function is pinned by the sha256 of its source, as
runtime/rasa_patches.py pins Rasa's; a Sanic upgrade that changes one fails tests/test_http_guard.py
instead of being wrapped unseen.
"""

import hashlib
import inspect
import logging
import re
from time import monotonic
from typing import Any

from core import settings

logger = logging.getLogger(__name__)

HEAD_SECONDS = 10.0
DEFAULT_MAX_CONNECTIONS = 512
# A chunk-size line (hex digits, optional extensions) is short; Sanic allows 64 bytes too.
MAX_CHUNK_LINE = 64

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
DIGITS = re.compile(rb"[0-9]{1,15}")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}(;[^\r\n]*)?")

# sha256 of the Sanic 21.12.2 sources this module wraps or depends on.
PINNED = {
    "Http.http1_request_header": "e52905046f155b2956747e86de2aa1011a021f597b9216fb122fa6d490e8f31a",
    "Http.read": "a0ebea7e3059daa5399be7e5e991d6a784a0e9f7c9f7cdaa297d2f32b599c190",
    "HttpProtocol.data_received": (
        "80a61c1fbb81312a091612e9410aa55b0a0883abaa21e458d6f33c0759fb02af"
    ),
    "HttpProtocol.check_timeouts": (
        "d4aff8b3b56d1de99aee683c33ce61a58938f0c7b23340a99cf8a9bcfc6c865a"
    ),
    "HttpProtocol.connection_made": (
        "980c201d9ed0979544973cd10a07e3b14cd3484210dc88d890d3ea049a1d03a0"
    ),
}


def framing_problem(head: bytes) -> str | None:
    """What is wrong with a request head's framing (request line and headers, without the blank
    line), or None when Sanic may read it."""
    request_line, *lines = head.split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return "request line"
    lengths, encodings = [], []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or TOKEN.fullmatch(name) is None:
            return "header name"
        lowered = name.lower()
        if lowered == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif lowered == b"transfer-encoding":
            encodings.append(value.lstrip(b" \t"))  # as Sanic reads it: "chunked " is not chunked
    if encodings and (lengths or encodings != [b"chunked"] or parts[2] != b"HTTP/1.1"):
        return "transfer-encoding"
    if len(lengths) > 1 or any(DIGITS.fullmatch(length) is None for length in lengths):
        return "content-length"
    return None


def chunk_line_problem(line: bytes) -> str | None:
    """What is wrong with a chunk-size line (without its CRLF), or None."""
    return None if CHUNK_SIZE.fullmatch(line) else "chunk size"


def max_connections() -> int:
    raw = settings.checked("MAX_CONNECTIONS")  # a whole number, at least 1
    return int(raw) if raw else DEFAULT_MAX_CONNECTIONS


def source_sha256(function: Any) -> str:
    """The sha256 of a function's source; "" once Sanic's TouchUp has recompiled it (an app of
    this process has started: the pin is checked before that)."""
    try:
        return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()
    except (OSError, TypeError):
        return ""


def _guarded_http_class() -> type:
    from sanic.exceptions import InvalidUsage, PayloadTooLarge
    from sanic.http import HTTP_CONTINUE, Http

    class GuardedHttp(Http):
        """Sanic's HTTP/1.1 cycle, with the head and each chunk-size line checked before Sanic
        parses them."""

        __slots__ = ()
        __touchup__ = ()  # type: ignore[assignment]  # nothing of ours for TouchUp to rewrite

        def refuse(self, problem: str) -> None:
            self.keep_alive = False
            self.request_body = None
            logger.info("Refused a request: bad %s", problem)
            raise InvalidUsage("Bad Request")

        async def http1_request_header(self) -> None:
            buf = self.recv_buffer
            pos = buf.find(b"\r\n\r\n")
            while pos == -1:
                if len(buf) > self.HEADER_MAX_SIZE:
                    raise PayloadTooLarge("Request header exceeds the size limit")
                searched = max(0, len(buf) - 3)
                await self._receive_more()
                pos = buf.find(b"\r\n\r\n", searched)
            if pos >= self.HEADER_MAX_SIZE:
                raise PayloadTooLarge("Request header exceeds the size limit")
            problem = framing_problem(bytes(buf[:pos]))
            if problem:
                self.refuse(problem)
            await super().http1_request_header()

        async def read(self) -> bytes | None:
            if self.request_body == "chunked" and self.request_bytes_left == 0:
                if self.expecting_continue:  # the client waits for this before the chunks
                    self.expecting_continue = False
                    await self._send(HTTP_CONTINUE)
                buf = self.recv_buffer
                pos = buf.find(b"\r\n", 3)
                while pos == -1 and len(buf) <= MAX_CHUNK_LINE:
                    await self._receive_more()
                    pos = buf.find(b"\r\n", 3)
                # the CRLF that ends the previous chunk (or the head), then the size line: a
                # chunk longer than its size would otherwise have its rest read as the next size
                if len(buf) >= 2 and buf[:2] != b"\r\n":
                    self.refuse("chunk framing")
                if pos != -1 and chunk_line_problem(bytes(buf[2:pos])):
                    self.refuse("chunk size")
            return await super().read()

    return GuardedHttp


def _reading(http: Any) -> bool:
    """Whether the connection is still receiving a request (its head, or a body not yet read)."""
    from sanic.http import Stage

    if http is None:
        return False
    return http.stage is Stage.REQUEST or (http.stage is Stage.HANDLER and bool(http.request_body))


def _protocol_methods(originals: dict[str, Any]) -> dict[str, Any]:
    from sanic.exceptions import RequestTimeout, ServiceUnavailable
    from sanic.http import Stage

    def data_received(self: Any, data: bytes) -> None:
        """Sanic's, except that a request's clock runs from its first byte, not its last."""
        started, reading = self._time, _reading(getattr(self, "_http", None))
        originals["data_received"](self, data)
        if reading:
            self._time = started

    def check_timeouts(self: Any) -> None:
        """Sanic's timer, with a deadline for the head and one for the whole request, each from
        the request's first byte, and checked often enough to hold the head's."""
        try:
            if not self._task:
                return
            http, waited = self._http, monotonic() - self._time
            stage = http.stage
            limit = HEAD_SECONDS if stage is Stage.REQUEST else self.request_timeout
            if _reading(http) and waited > limit:
                http.exception = RequestTimeout("Request Timeout")
                # answer 408 and close: Sanic would otherwise drain the rest of the body after
                # the answer, with no timer left to stop a client that never sends it
                http.keep_alive = False
                http.request_body = None
            elif stage is Stage.IDLE and waited > self.keep_alive_timeout:
                pass  # closed below, as Sanic does
            elif stage is Stage.HANDLER and http.upgrade_websocket:
                return
            elif stage in (Stage.HANDLER, Stage.RESPONSE, Stage.FAILED) and (
                waited > self.response_timeout
            ):
                http.exception = ServiceUnavailable("Response Timeout")
            else:
                timeouts = (self.keep_alive_timeout, self.request_timeout, self.response_timeout)
                interval = min(*timeouts, HEAD_SECONDS) / 2
                self.loop.call_later(max(0.1, interval), self.check_timeouts)
                return
            self._task.cancel()
        except Exception:
            logger.exception("protocol.check_timeouts")

    def connection_made(self: Any, transport: Any) -> None:
        """Sanic's, unless this worker holds its cap of connections already."""
        if len(self.connections) >= max_connections():
            logger.warning("Connection refused: %d connections open", len(self.connections))
            transport.abort()
            return
        originals["connection_made"](self, transport)

    return {
        "data_received": data_received,
        "check_timeouts": check_timeouts,
        "connection_made": connection_made,
    }


def pinned_sources() -> dict[str, str]:
    """The sha256 of each Sanic source this module relies on, as installed."""
    from sanic.http import Http
    from sanic.server.protocols.http_protocol import HttpProtocol

    return {
        "Http.http1_request_header": source_sha256(Http.http1_request_header),
        "Http.read": source_sha256(Http.read),
        "HttpProtocol.data_received": source_sha256(HttpProtocol.data_received),
        "HttpProtocol.check_timeouts": source_sha256(HttpProtocol.check_timeouts),
        "HttpProtocol.connection_made": source_sha256(HttpProtocol.connection_made),
    }


def apply() -> bool:
    """Guards every Sanic server this process starts; True once applied (idempotent)."""
    from sanic.server.protocols import http_protocol

    protocol = http_protocol.HttpProtocol
    if getattr(protocol, "guarded", False):
        return True
    changed = [name for name, sha in pinned_sources().items() if sha != PINNED[name]]
    if changed:
        logger.warning("Sanic's %s changed; core/http_guard.py must be checked again", changed)
    originals = {"data_received": protocol.data_received}
    originals["connection_made"] = protocol.connection_made
    for name, method in _protocol_methods(originals).items():
        setattr(protocol, name, method)
    http_protocol.Http = _guarded_http_class()  # type: ignore[misc,assignment]
    protocol.guarded = True  # type: ignore[attr-defined]
    return not changed
