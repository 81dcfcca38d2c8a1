"""Live takeover on the Rasa server: the staff console's calls that pause a conversation, say an
agent's words in it, and hand it back (POST /webhooks/takeover/pause|say|resume).

- Only the console can call: each call is signed with TAKEOVER_SECRET, fresh and used once
  (core/signed_calls.py); without the secret the routes answer 503.
- The conversation is paused with Rasa's own ConversationPaused event, under the conversation's
  lock, so it holds across restarts and across several servers: while it is paused Rasa still
  reads (and masks) and stores what the student says, and answers nothing.
- What the agent says is stored as a bot message with `{"takeover": "agent"}` in its metadata,
  masked like everything the student says, and pushed to the student's channel: the help-page
  widget (channels/live_updates.py), socket.io (the conversation's room), WeChat (the
  customer-service message API) or WeCom (the message API). A message that could not be
  delivered is not stored, and the console is told why.
"""

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, ConversationPaused, ConversationResumed, Event
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels import conversations, limits
from channels.live_updates import HUB
from channels.replies import replies
from core import settings, signed_calls
from core.answers import RATED
from core.privacy import mask
from core.shared_state import SharedState

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_TEXT_CHARS = 2000
AGENT, NOTE = "agent", "note"
# Sender prefix -> how a text reaches that channel's user (registered by the channels).
Pusher = Callable[[str, str], Awaitable[None]]
PUSHERS: dict[str, Pusher] = {}


class NotDelivered(RuntimeError):
    """The student's channel refused the message (e.g. WeChat's 48-hour window had passed)."""


def register_pusher(prefix: str, push: Pusher) -> None:
    """`push(user, text)` delivers to users whose conversation id is `prefix` + user."""
    PUSHERS[prefix] = push


# The hand-back's question as one tap in the help page's widget: the same "1" / "2" typed
# elsewhere (WeChat and WeCom read the numbered choice in the text).
RATING_BUTTONS = [{"title": "有帮助", "payload": "1"}, {"title": "没帮助", "payload": "2"}]


async def push(
    conversation_id: str, text: str, kind: str, buttons: list[dict[str, str]] | None = None
) -> None:
    for prefix, pusher in PUSHERS.items():
        if conversation_id.startswith(prefix):
            try:
                await pusher(conversation_id[len(prefix) :], text)
            except Exception as error:
                raise NotDelivered(f"{type(error).__name__}: {error}") from error
            return
    await HUB.publish(
        conversation_id, {"text": text, "from": kind, **({"buttons": buttons} if buttons else {})}
    )


async def is_paused(conversation_id: str) -> bool:
    """Whether an agent holds this conversation (the channels then say nothing themselves)."""
    tracker = await conversations.stored(conversation_id)
    return tracker is not None and tracker.is_paused()


def stored(
    text: str, kind: str, agent_name: str = "", ended: str = "", rated: str | None = None
) -> BotUttered:
    """A takeover's message as stored (masked); `ended` says how a hand-back came ("agent",
    "timeout", "resolved": the ticket with it), for the staff's outcome figures
    (staff/outcomes.py); `rated`, the agent the hand-back asks the student to rate
    (core/answers.py: rating)."""
    metadata = {
        "takeover": kind,
        **({"agent": agent_name} if agent_name else {}),
        **({"ended": ended} if ended else {}),
        **({RATED: rated} if rated else {}),
    }
    return BotUttered(text=mask(text), metadata=metadata)


def last_agent(tracker: DialogueStateTracker) -> str | None:
    """The agent who last spoke to the student in this takeover, if one did."""
    for event in reversed(tracker.events):
        if isinstance(event, ConversationPaused):
            return None
        if isinstance(event, BotUttered) and (event.metadata or {}).get("takeover") == AGENT:
            return str((event.metadata or {}).get("agent") or "") or None
    return None


class TakeoverInput(InputChannel):
    """The console's door into the Rasa server; not a channel students use."""

    @classmethod
    def name(cls) -> str:
        return "takeover"

    def __init__(self) -> None:
        self.used_nonces = SharedState()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("custom_webhook_TakeoverInput", __name__)

        conversations.remember_app(hook)

        @hook.route("/<step:pause|say|resume>", methods=["POST"])
        async def step(request: Request, step: str) -> HTTPResponse:
            secret = settings.takeover_secret()
            if not secret:
                return response.json({"error": "live takeover is off (TAKEOVER_SECRET)"}, 503)
            body = request.body or b""
            if len(body) > MAX_BODY_BYTES:
                return response.json({"error": "too large"}, 413)
            headers = {name.lower(): value for name, value in request.headers.items()}
            nonce = signed_calls.verified(secret, headers, body, time.time())
            if nonce is None or not await self.used_nonces.set(
                f"takeover-nonce:{nonce}", "1", 2 * signed_calls.FRESH_SECONDS, only_if_new=True
            ):
                return response.json({"error": "forbidden"}, 403)
            try:
                call = json.loads(body)
            except ValueError:
                return response.json({"error": "the body is not JSON"}, 400)
            conversation_id = call.get("conversation_id") if isinstance(call, dict) else None
            text = call.get("text", "") if isinstance(call, dict) else ""
            agent_name = str(call.get("agent", ""))[:64] if isinstance(call, dict) else ""
            if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 255:
                return response.json({"error": '"conversation_id" is required'}, 400)
            if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
                return response.json({"error": f'"text": at most {MAX_TEXT_CHARS}'}, 400)
            text, _ = limits.clip(text.strip())
            if step == "say" and not text:
                return response.json({"error": '"text" is required'}, 400)
            timed_out = isinstance(call, dict) and call.get("reason") == "timeout"
            if step != "say":  # what the student is told is the assistant's to say
                text = replies()[
                    "takeover_joined"
                    if step == "pause"
                    else ("takeover_timeout" if timed_out else "takeover_ended")
                ]
            resolved = isinstance(call, dict) and call.get("reason") == "resolved"
            ended = "timeout" if timed_out else "resolved" if resolved else "agent"
            return await self.apply(request.app, step, conversation_id, text, agent_name, ended)

        return hook

    async def apply(
        self,
        app: Sanic,
        step: str,
        conversation_id: str,
        text: str,
        agent_name: str,
        ended: str = "agent",
    ) -> HTTPResponse:
        agent = app.ctx.agent
        async with agent.lock_store.lock(conversation_id):
            tracker = await agent.tracker_store.retrieve(conversation_id)
            if tracker is None:
                return response.json({"error": "no such conversation"}, 404)
            events: list[Event]
            rated: str | None = None  # the agent the student is asked about at a hand-back
            if step == "pause":
                events = [ConversationPaused(), stored(text, NOTE)]
            elif not tracker.is_paused():
                return response.json({"error": "the conversation is not taken over"}, 409)
            elif step == "say":
                events = [stored(text, AGENT, agent_name)]
            else:
                rated = last_agent(tracker) if ended != "timeout" else None
                if rated:  # a person helped: ask the student, in one tap or one digit
                    text = f"{text}\n{replies()['takeover_rating']}"
                events = [stored(text, NOTE, ended=ended, rated=rated), ConversationResumed()]
            try:
                buttons = RATING_BUTTONS if rated else None
                await push(conversation_id, text, NOTE if step != "say" else AGENT, buttons)
            except NotDelivered as error:
                logger.warning("A takeover message was not delivered: %s", error)
                if step == "say":  # the agent must know; a note is stored all the same
                    return response.json({"error": "not delivered", "reason": str(error)}, 502)
            for event in events:
                tracker.update(event)
            await agent.tracker_store.save(tracker)
        return response.json({"ok": True, "paused": tracker.is_paused()})
