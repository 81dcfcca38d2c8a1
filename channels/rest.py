"""The REST channel (/webhooks/rest/webhook), made safe to expose to students.

Rasa's RestInput answers `200 []` when something fails, and logs the user's raw text when it does.
This one, under the same name and URL:
- answers a malformed request with 400 and a JSON error, never a 500;
- answers with an apology and the contacts (replies.yml) when the assistant raised or said
  nothing, so a student is never left without a reply, and logs no user text when it does;
- accepts an optional "message_id": the same id delivered again, to this server or another one,
  is processed once and gets the first delivery's reply (core.deliveries);
- takes JSON only, bounded: body size, message length, metadata and sender id
  (channels/limits.py);
- reads a screenshot posted to /webhooks/rest/screenshot ({"sender", "image": base64}) as the
  message its page shows (channels/ocr_reader.py), and says first what it read;
- while an agent has taken the conversation over (channels/takeover_endpoint.py), answers a message
  with `[{"custom": {"takeover": "waiting"}}]` instead of the assistant's words, and pushes the
  agent's words on a Server-Sent Events stream, GET /webhooks/rest/stream?sender=…&token=… (the help
  page's widget listens to it; channels/live_updates.py);
- issues the help-page widget its conversation: POST /webhooks/rest/session answers a fresh
  sender id ("web-" and 128 random bits) with its token. A "web-" conversation then takes a
  message, a screenshot or a stream only with that token ("token" in the JSON body, or in the
  stream's query): its id alone, seen in a log or over a shoulder, gives nothing. Other sender
  ids (an integration calling the REST API from its own server) need no token, and have no stream.
"""

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from sanic.response import HTTPResponse

from channels import conversations, limits, ocr_reader, takeover_endpoint
from channels.live_updates import HEARTBEAT_SECONDS, HUB, STREAM_SECONDS, TooManyStreams
from channels.replies import replies, unavailable, with_personal_data_note
from core import parsing, session_tokens
from core.deliveries import Claim, Deliveries
from core.privacy import is_mostly_personal_data

logger = logging.getLogger(__name__)

MAX_FIELD_CHARS = 255
# The help-page widget's conversations: issued by POST /webhooks/rest/session with a token that
# every message, screenshot and stream of theirs must show (core/session_tokens.py).
WIDGET_PREFIX, TOKEN_PURPOSE = "web-", "rest"
SESSION_REFUSED = "session: this conversation needs its token; start a new one (POST /session)"
# How long a re-delivery waits for the first delivery's reply before it gets the apology.
DUPLICATE_WAIT_SECONDS = 30


def bad_request(reason: str, status: int = 400) -> HTTPResponse:
    return response.json({"error": reason}, status=status)


def checked_fields(request: Request) -> dict[str, Any] | HTTPResponse:
    """The JSON body's checked sender, message_id and metadata (and the body), or the 4xx."""
    # JSON only: a cross-site HTML form can post text/plain without a CORS preflight.
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return bad_request("the body must be JSON (Content-Type: application/json)", 415)
    try:
        body = request.json
    except Exception:
        return bad_request("the body is not valid JSON")
    if not isinstance(body, dict):
        return bad_request("the body must be a JSON object")
    sender, message_id = body.get("sender"), body.get("message_id")
    if not limits.valid_sender(sender):
        return bad_request('"sender" must be 1-128 characters: letters, digits, "_", "-" or "."')
    if message_id is not None and (
        not parsing.plain_id(message_id, MAX_FIELD_CHARS) or is_mostly_personal_data(message_id)
    ):
        return bad_request(
            '"message_id", when given, must be 1-255 characters: letters, digits, "_", ".", ":"'
            ' or "-"'
        )
    if sender.startswith(WIDGET_PREFIX) and not session_tokens.valid(
        TOKEN_PURPOSE, sender, body.get("token")
    ):
        return bad_request(SESSION_REFUSED, 403)
    metadata = body.get("metadata")
    if metadata is not None and limits.bounded_metadata(metadata) is None:
        return bad_request(
            f'"metadata", when given, must be a JSON object of at most '
            f"{limits.MAX_METADATA_BYTES} bytes"
        )
    return {"body": body, "sender": sender, "message_id": message_id, "metadata": metadata}


def decoded_image(image: Any) -> bytes | None:
    """The bytes of a base64 image (or data: URL), or None when it is not one."""
    if not isinstance(image, str) or not image:
        return None
    if image.startswith("data:"):
        image = image.partition(",")[2]
    try:
        return base64.b64decode(image, validate=True)
    except (ValueError, binascii.Error):
        return None


class ResilientRestInput(RestInput):
    """REST input with validation, duplicate suppression and an answer whatever happens."""

    def __init__(self, deliveries: Deliveries | None = None) -> None:
        self._deliveries = deliveries
        self._throttle: limits.Throttle | None = None
        self._large_bodies: asyncio.Semaphore | None = None

    @classmethod
    def name(cls) -> str:
        return "rest"

    @property
    def large_bodies(self) -> asyncio.Semaphore:
        """Screenshot bodies (up to 5.6 MB each) read at once by this worker."""
        if self._large_bodies is None:
            self._large_bodies = asyncio.Semaphore(limits.LARGE_BODIES_AT_ONCE)
        return self._large_bodies

    @property
    def throttle(self) -> limits.Throttle:
        if self._throttle is None:
            self._throttle = limits.Throttle()
        return self._throttle

    @property
    def deliveries(self) -> Deliveries:
        if self._deliveries is None:  # made on first use: no connection at import or start-up
            self._deliveries = Deliveries()
        return self._deliveries

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("custom_webhook_ResilientRestInput", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        limits.cap_request_size(webhook)
        conversations.remember_app(webhook)
        session_tokens.key()  # drawn now, before workers fork, when SESSION_SECRET is not set

        @webhook.route("/session", methods=["POST"])
        async def session(_: Request) -> HTTPResponse:
            sender = session_tokens.new_conversation(WIDGET_PREFIX)
            token = session_tokens.token(TOKEN_PURPOSE, sender)
            return response.json(
                {"sender": sender, "token": token}, headers={"Cache-Control": "no-store"}
            )

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            fields = checked_fields(request)
            if isinstance(fields, HTTPResponse):
                return fields
            text = fields["body"].get("message")
            if not isinstance(text, str):
                return bad_request('"message" must be a string')
            address = limits.client_address(request)
            if not await self.throttle.allows(address):
                return response.json(limits.slow_down(fields["sender"]), status=429)
            return response.json(
                await self.answer(
                    on_new_message,
                    fields["sender"],
                    text,
                    fields["message_id"],
                    limits.with_client(fields["metadata"], address),
                )
            )

        @webhook.route("/stream", methods=["GET"])
        async def stream(request: Request) -> HTTPResponse | None:
            sender = request.args.get("sender")
            if not limits.valid_sender(sender):
                return bad_request(
                    '"sender" must be 1-128 characters: letters, digits, "_", "-" or "."'
                )
            if not session_tokens.valid(TOKEN_PURPOSE, sender, request.args.get("token")):
                return bad_request(SESSION_REFUSED, 403)
            try:
                queue = HUB.listen(sender)
            except TooManyStreams:
                return bad_request("too many streams are open", 429)
            try:
                reply = await request.respond(
                    content_type="text/event-stream; charset=utf-8",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                )
                await reply.send("retry: 5000\n\n")
                closes_at = time.monotonic() + STREAM_SECONDS
                while time.monotonic() < closes_at:
                    try:
                        message = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                    except asyncio.TimeoutError:
                        await reply.send(": still here\n\n")
                        continue
                    await reply.send(f"data: {json.dumps(message, ensure_ascii=False)}\n\n")
                await reply.eof()
            finally:
                HUB.stop(sender, queue)
            return None

        @webhook.route("/screenshot", methods=["POST"], stream=True)
        async def screenshot(request: Request) -> HTTPResponse:
            # The server's 1 MB body cap would stop a 4 MB picture at 770 KB (base64 is a third
            # longer): this route reads its own body, up to what a MAX_IMAGE_BYTES picture needs.
            # Before the body is read: a client over its rate, or more large bodies than a worker
            # reads at once, costs nothing but the answer.
            if not await self.throttle.allows(limits.client_address(request)):
                return response.json(limits.slow_down(""), status=429)
            if self.large_bodies.locked():
                busy = [{"recipient_id": "", "text": replies()["screenshot_busy"]}]
                return response.json(busy, status=429)
            async with self.large_bodies:
                if request.stream is not None:
                    request.stream.request_max_size = limits.MAX_SCREENSHOT_BODY_BYTES
                try:
                    await request.receive_body()
                except PayloadTooLarge:  # the student's words, for any client that shows them
                    too_large = [{"recipient_id": "", "text": replies()["screenshot_too_large"]}]
                    return response.json(too_large, status=413)
                fields = checked_fields(request)
                if isinstance(fields, HTTPResponse):
                    return fields
                data = decoded_image(fields["body"].get("image"))
                request.body = b""  # the raw body is not needed once parsed
            if data is None:
                return bad_request('"image" must be a base64 string (a data: URL is accepted)')
            sender = fields["sender"]
            # one picture in the queue per conversation, and a share of it per address (many
            # students may share a campus address)
            address = limits.client_address(request)
            reading = await ocr_reader.reader().read(data, f"{address}|{sender}", address)
            if not reading.text:
                return response.json([{"recipient_id": sender, "text": replies()[reading.problem]}])
            read = replies()["screenshot_read"].format(text=reading.text)
            messages = await self.answer(
                on_new_message,
                sender,
                reading.text,
                fields["message_id"],
                limits.with_client(fields["metadata"], address),
            )
            return response.json([{"recipient_id": sender, "text": read}, *messages])

        return webhook

    @staticmethod
    async def silent_turn(sender: str) -> list[dict[str, Any]]:
        """What a turn without a bot message is answered with: "waiting" while an agent holds
        the conversation, else the apology with the contacts (never an empty reply)."""
        if await takeover_endpoint.is_paused(sender):
            return [{"recipient_id": sender, "custom": {"takeover": "waiting"}}]
        return unavailable()

    async def answer(
        self,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        sender: str,
        text: str,
        message_id: str | None,
        metadata: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        key = None
        if message_id is not None:
            key = Deliveries.key(sender, message_id)
            claim = await self.deliveries.claim(key)
            if not claim:
                waited = await self.deliveries.wait_for_reply(key, DUPLICATE_WAIT_SECONDS)
                if not waited.claimed:
                    return waited.reply or unavailable()
                claim = Claim.TAKEN_OVER
            if claim is Claim.TAKEN_OVER:
                done = await conversations.answered_before(sender, message_id)
                if done is not None:  # stored by the worker that is gone: not run twice
                    done = done or await self.silent_turn(sender)
                    await self.deliveries.keep_reply(key, done)
                    return done

        text, cut = limits.clip(text)
        collector = CollectingOutputChannel()
        try:
            await on_new_message(
                UserMessage(
                    text,
                    collector,
                    sender,
                    input_channel=self.name(),
                    message_id=message_id,
                    metadata=metadata,
                )
            )
            messages = collector.messages
            if not messages:
                if not await takeover_endpoint.is_paused(sender):
                    logger.error("No reply to a message in conversation %s", sender)
                messages = await self.silent_turn(sender)
            else:
                messages = with_personal_data_note(text, messages, sender)
        except Exception as error:  # the student still gets an answer; the log gets no user text
            logger.error(
                "Could not handle a message in conversation %s: %s",
                sender,
                type(error).__name__,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            messages = unavailable()
        if cut:
            messages = [{"recipient_id": sender, "text": limits.too_long_note()}, *messages]
        if key is not None:  # never raises: shared state falls back to this server's memory
            await self.deliveries.keep_reply(key, messages)
        return messages
