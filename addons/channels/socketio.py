"""Rasa's socket.io channel (/socket.io, events user_uttered / bot_uttered), with two fixes.

- Replies arrive. With `session_persistence: true` Rasa 3.6 puts the connection into the room of
  its session with `sio.enter_room(...)` without awaiting it; python-socketio 5 made that a
  coroutine, so the connection never joins the room and no bot_uttered ever reaches the page
  (Python only warns "coroutine 'AsyncServer.enter_room' was never awaited").
- Only the pages allowed may connect. Rasa turns python-engineio's origin check off (so that its
  CORS headers do not clash with Sanic's), and browsers apply no CORS rule to WebSockets: any web
  page could open a chat with the assistant from a student's browser. A connection whose Origin
  is neither the assistant's own nor listed in CORS_ORIGINS (comma-separated, as `make run`
  passes to Rasa's --cors; `*` allows any page) is refused. Clients that send no Origin (not a
  browser) are not affected.
"""
import logging
import os
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Sequence, Text
from urllib.parse import urlsplit

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint

logger = logging.getLogger(__name__)


def allowed_origins() -> Sequence[Text]:
    return [o.strip().rstrip("/") for o in os.environ.get("CORS_ORIGINS", "").split(",")
            if o.strip()]


def origin_allowed(origin: Text, environ: Dict[Text, Any], allowed: Sequence[Text]) -> bool:
    """Whether a page at `origin` may connect: the assistant's own pages (same host, also behind
    a proxy that sets X-Forwarded-Host), the listed ones, or any with `*`."""
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    host = urlsplit(origin).netloc
    return bool(host) and host in (environ.get("HTTP_HOST"), environ.get("HTTP_X_FORWARDED_HOST"))


class WidgetSocketIOInput(SocketIOInput):
    """SocketIOInput under the same name and URL, whose replies reach the page."""

    @classmethod
    def name(cls) -> Text:
        return "socketio"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)
        sio, namespace = self.sio, self.namespace or "/"
        rasa_connect = sio.handlers[namespace]["connect"]

        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            origin = environ.get("HTTP_ORIGIN")
            if origin and not origin_allowed(origin, environ, allowed_origins()):
                logger.warning("socket.io: a page at %s may not connect (not in CORS_ORIGINS).",
                               origin[:100])
                return False
            return await rasa_connect(sid, environ, auth)

        async def session_request(sid: Text, data: Any) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not session_id.strip():
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)

        sio.on("connect", connect, namespace=namespace)
        sio.on("session_request", session_request, namespace=namespace)
        return webhook
