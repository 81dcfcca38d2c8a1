"""The socket.io channel (/socket.io, events user_uttered / bot_uttered) for a chat widget.

Rasa's SocketIOInput under the same name, URL and events, with what it lacks on the internet:
- Replies arrive. With `session_persistence: true` Rasa 3.6 puts the connection into the room of
  its session with `sio.enter_room(...)` without awaiting it; python-socketio 5 made that a
  coroutine, so the connection never joined the room and no bot_uttered reached the page.
- Only the pages allowed may connect. Rasa turns python-engineio's origin check off (Sanic-CORS
  already answers CORS for every route, and two sets of headers would make browsers refuse
  both); here every engine.io request, polling and websocket alike, is checked before engine.io
  sees it: an Origin must be the assistant's own pages (same host, also behind a proxy that sets
  X-Forwarded-Host) or in CORS_ORIGINS (comma-separated, as `make run` passes to Rasa's --cors;
  `*` allows any page). Browsers send no Origin with a <script> load, so engine.io's JSONP polling
  (`j=`) is refused outright, and so is any request a browser marks as coming from another site
  (Sec-Fetch-Site) without an Origin. Clients that are not browsers send neither and are let in.
- Bounded input: a packet is at most MAX_PACKET_BYTES, a message is cut at the channels' limit
  (with a note before the answer), metadata is a small JSON object, and a session id is 8-64
  letters, digits, "_" or "-" (otherwise the server makes one).
- Its users have a namespace of their own: the conversation of session S is `sio:S`, so a widget
  cannot join a REST, WeChat or WeCom conversation by naming it.
- Several workers (SANIC_WORKERS > 1): WebSocket only (`transports`), and an agent's words go
  through channels/live_updates.py to the worker that holds the student's socket.
"""

import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from channels import limits, takeover
from channels.live_updates import HUB
from channels.replies import replies, with_personal_data_note
from core import settings

logger = logging.getLogger(__name__)

SENDER_PREFIX = "sio:"
SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{8,64}")
# A 2,000-character message with its JSON and socket.io framing is about 12 KB.
MAX_PACKET_BYTES = 64 * 1024


def allowed_origins() -> Sequence[str]:
    return [
        o.strip().rstrip("/") for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()
    ]


def origin_allowed(origin: str, environ: dict[str, Any], allowed: Sequence[str]) -> bool:
    """Whether a page at `origin` may connect: the assistant's own pages (same host, also behind
    a proxy that sets X-Forwarded-Host), the listed ones, or any with `*`."""
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    host = urlsplit(origin).netloc
    return bool(host) and host in (environ.get("HTTP_HOST"), environ.get("HTTP_X_FORWARDED_HOST"))


def refusal(query: str, headers: dict[str, str]) -> str | None:
    """Why an engine.io request must be refused, or None. `headers` with lower-case names."""
    if "j" in parse_qs(query):
        return "JSONP polling is not supported"
    origin = headers.get("origin")
    if origin:
        environ = {
            "HTTP_HOST": headers.get("host"),
            "HTTP_X_FORWARDED_HOST": headers.get("x-forwarded-host"),
        }
        if not origin_allowed(origin, environ, allowed_origins()):
            return "this page may not connect (not in CORS_ORIGINS)"
    elif headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return "a page on another site may not connect"
    return None


def transports() -> list[str]:
    """engine.io's transports. Its long-polling keeps a session in the process that opened it,
    and the workers of one server share its port, so with several workers (SANIC_WORKERS) a poll
    could reach a worker that does not know its session: WebSocket only, one connection that stays
    with its worker. Clients then connect with `transports: ["websocket"]` (README)."""
    return ["websocket"] if settings.workers() > 1 else ["polling", "websocket"]


class WidgetSocketIOInput(SocketIOInput):
    """SocketIOInput with an origin check that holds, bounded input and its own namespace."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = AsyncServer(
            async_mode="sanic",
            cors_allowed_origins=[],
            max_http_buffer_size=MAX_PACKET_BYTES,
            transports=transports(),
        )
        self.sio, namespace = sio, self.namespace or "/"
        webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        limits.cap_request_size(webhook)  # bounds what the guard below reads
        engine_request = sio.eio.handle_request

        async def guarded(request: Request, *args: Any, **kwargs: Any) -> Any:
            headers = {name.lower(): value for name, value in request.headers.items()}
            reason = refusal(request.query_string or "", headers)
            if reason:
                logger.warning("socket.io: refused: %s.", reason)
                return response.text(reason, status=403)
            if len(request.body or b"") > MAX_PACKET_BYTES:
                # engine.io would refuse it too, but only after closing the session and waiting
                # for the client's next poll (tens of seconds); this answers at once
                return response.text("packet too large", status=413)
            return await engine_request(request, *args, **kwargs)

        sio.eio.handle_request = guarded  # what SocketBlueprint attaches to the app's route

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        throttle = limits.Throttle()

        async def connect(sid: str, environ: dict, auth: dict | None = None) -> bool:
            HUB.start_relay()  # an agent's words may come through another worker or server
            request = environ.get("sanic.request")
            address = limits.client_address(request) if request is not None else ""
            await sio.save_session(sid, {"address": address}, namespace=namespace)
            if not self.session_persistence:
                await sio.enter_room(sid, SENDER_PREFIX + sid, namespace=namespace)
            return True

        async def session_request(sid: str, data: Any) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, SENDER_PREFIX + session_id, namespace=namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)

        async def handle_message(sid: str, data: Any) -> None:
            output = SocketIOOutput(sio, self.bot_message_evt)
            data = data if isinstance(data, dict) else {}
            session = await sio.get_session(sid, namespace=namespace)
            if not await throttle.allows(str(session.get("address", ""))):
                await sio.emit(
                    self.bot_message_evt,
                    {"text": replies()["rate_limited"]},
                    room=sid,
                    namespace=namespace,
                )
                return
            if self.session_persistence:
                session_id = data.get("session_id")
                if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
                    logger.warning("socket.io: a message without a valid session_id is ignored.")
                    return
                sender = SENDER_PREFIX + session_id
            else:
                sender = SENDER_PREFIX + sid
            text = data.get("message")
            text, cut = limits.clip(text if isinstance(text, str) else "")
            if cut:
                await output.send_text_message(sender, limits.too_long_note())
            metadata = limits.bounded_metadata(data.get(self.metadata_key))
            # collected, then emitted: a note may go before the answer (channels/replies.py)
            collector = CollectingOutputChannel()
            await on_new_message(
                UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
            )
            for message in with_personal_data_note(text, collector.messages, sender):
                fields = {k: v for k, v in message.items() if k != "recipient_id"}
                await output.send_response(sender, fields)

        async def push(user: str, text: str) -> None:  # an agent's words (channels/takeover.py)
            # to whichever worker or server holds the student's socket (channels/live_updates.py)
            await HUB.publish(SENDER_PREFIX + user, {"text": text})

        async def deliver(user: str, message: dict[str, Any]) -> None:
            room = SENDER_PREFIX + user
            said = {"text": message["text"]}
            await sio.emit(self.bot_message_evt, said, room=room, namespace=namespace)

        takeover.register_pusher(SENDER_PREFIX, push)
        HUB.deliver_locally_to(SENDER_PREFIX, deliver)
        sio.on("connect", connect, namespace=namespace)
        sio.on("session_request", session_request, namespace=namespace)
        sio.on(self.user_message_evt, handle_message, namespace=namespace)
        return webhook
