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
  (with a note before the answer), metadata is a small JSON object, and a session id offered is
  8-80 letters, digits, "_" or "-" (otherwise the server makes one).
- Its users have a namespace of their own: the conversation C of a session is `sio:C`, so a
  widget cannot join a REST, WeChat or WeCom conversation by naming it.
- A session belongs to the client it was issued to. The server issues every session id, as
  "<conversation>_<token>" (core/session_tokens.py); a client that offers one back (a widget
  after a reload) resumes its conversation only if the token matches, and gets a new one
  otherwise. A message goes to the conversation its socket's session names, whatever session id
  it carries. Only the conversation part is stored, logged or shown in the console, so nothing
  there lets anyone else join.
- Any worker serves any client, with engine.io's default transports (long-polling first, then
  the upgrade to a WebSocket): a request for a session another worker holds is passed on to it
  (channels/sibling_relay.py). An agent's words reach the worker or server that holds the
  student's socket through channels/live_updates.py.
"""

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from channels import limits, sibling_relay, takeover_endpoint
from channels.live_updates import HUB
from channels.replies import replies, with_personal_data_note
from core import session_tokens, settings

logger = logging.getLogger(__name__)

SENDER_PREFIX = "sio:"
SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{8,80}")
TOKEN_PURPOSE = "socketio"
# A 2,000-character message with its JSON and socket.io framing is about 12 KB.
MAX_PACKET_BYTES = 64 * 1024


def allowed_origins() -> Sequence[str]:
    return [origin.rstrip("/") for origin in settings.cors_origins()]


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


def issued_session() -> str:
    """A new session id: a conversation and its token."""
    conversation = session_tokens.new_conversation("")
    return f"{conversation}_{session_tokens.token(TOKEN_PURPOSE, conversation)}"


def conversation_of(session_id: object) -> str | None:
    """The conversation a session id issued by this server names, or None for any other id."""
    if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
        return None
    conversation, _, token = session_id.rpartition("_")
    valid = conversation and session_tokens.valid(TOKEN_PURPOSE, conversation, token)
    return conversation if valid else None


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
        )
        sio.eio.generate_id = sibling_relay.tagged_id  # names the worker that holds the session
        session_tokens.key()  # drawn now, before workers fork, when SESSION_SECRET is not set
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
            holder = sibling_relay.owner(request.args.get("sid"))
            if holder is not None:
                return await sibling_relay.RELAY.pass_on(request, holder)
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

        async def confirm(sid: str, offered: object) -> str:
            """Joins the socket to the conversation `offered` names when its token matches, to a
            new one otherwise; says which (session_confirm) and returns its sender id."""
            session_id = offered if conversation_of(offered) else issued_session()
            sender = SENDER_PREFIX + str(conversation_of(session_id))
            session = await sio.get_session(sid, namespace=namespace)
            previous = session.get("sender")
            if previous and previous != sender:
                await sio.leave_room(sid, previous, namespace=namespace)
            await sio.save_session(sid, {**session, "sender": sender}, namespace=namespace)
            await sio.enter_room(sid, sender, namespace=namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)
            return sender

        async def session_request(sid: str, data: Any) -> None:
            data = data if isinstance(data, dict) else {}
            if self.session_persistence:
                await confirm(sid, data.get("session_id"))
            else:
                await sio.emit("session_confirm", sid, room=sid, namespace=namespace)

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
                # the socket's own session, never one the message names; a client that did not
                # ask for one first gets one now
                sender = session.get("sender") or await confirm(sid, data.get("session_id"))
            else:
                sender = SENDER_PREFIX + sid
            text = data.get("message")
            text, cut = limits.clip(text if isinstance(text, str) else "")
            if cut:
                await output.send_text_message(sender, limits.too_long_note())
            metadata = limits.with_client(
                limits.bounded_metadata(data.get(self.metadata_key)),
                str(session.get("address", "")),
            )
            # collected, then emitted: a note may go before the answer (channels/replies.py)
            collector = CollectingOutputChannel()
            await on_new_message(
                UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
            )
            for message in with_personal_data_note(text, collector.messages, sender):
                fields = {k: v for k, v in message.items() if k != "recipient_id"}
                await output.send_response(sender, fields)

        async def push(user: str, text: str) -> None:
            # an agent's words (channels/takeover_endpoint.py),
            # to whichever worker or server holds the student's socket (channels/live_updates.py)
            await HUB.publish(SENDER_PREFIX + user, {"text": text})

        async def deliver(user: str, message: dict[str, Any]) -> None:
            room = SENDER_PREFIX + user  # the conversation's sender id
            said = {"text": message["text"]}
            await sio.emit(self.bot_message_evt, said, room=room, namespace=namespace)

        takeover_endpoint.register_pusher(SENDER_PREFIX, push)
        HUB.deliver_locally_to(SENDER_PREFIX, deliver)
        sio.on("connect", connect, namespace=namespace)
        sio.on("session_request", session_request, namespace=namespace)
        sio.on(self.user_message_evt, handle_message, namespace=namespace)
        return webhook
