"""The Rasa server's stored conversations, for channels that must know a conversation's state
(paused by an agent: channels/takeover_endpoint.py; just handed off: channels/tencent/wechat.py).

A channel's blueprint calls `remember_app` so that the Rasa server's app (and through it Rasa's
agent and tracker store) is known once the server has started.
"""

import logging
from typing import Any

from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, Sanic

from core.privacy import stored_message_id

logger = logging.getLogger(__name__)

_APP: dict[str, Sanic] = {}


def remember_app(hook: Blueprint) -> None:
    @hook.listener("after_server_start")
    async def remember(app: Sanic, _: Any) -> None:
        _APP["app"] = app


async def stored(conversation_id: str) -> DialogueStateTracker | None:
    """The conversation as stored, or None (unknown, not started, or the store failed)."""
    app = _APP.get("app")
    agent = getattr(app.ctx, "agent", None) if app is not None else None
    if agent is None or agent.tracker_store is None:
        return None
    try:
        tracker: DialogueStateTracker | None = await agent.tracker_store.retrieve(conversation_id)
        return tracker
    except Exception as error:
        logger.warning("Could not read a conversation's state: %s", type(error).__name__)
        return None


async def answered_before(conversation_id: str, message_id: str) -> list[dict[str, Any]] | None:
    """The bot's messages that followed the stored user message `message_id`, when a worker that
    is gone answered it and stored the turn before it could hand the reply over (so a re-delivery
    that took its claim over must not run the turn again); None when it is not stored."""
    tracker = await stored(conversation_id)
    if tracker is None:
        return None
    events, stored_id = list(tracker.events), stored_message_id(message_id)
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, UserUttered) and event.message_id in (message_id, stored_id):
            return [
                as_message(conversation_id, e) for e in following_bot_events(events[index + 1 :])
            ]
    return None


def following_bot_events(events: list[Any]) -> list[BotUttered]:
    said = []
    for event in events:
        if isinstance(event, UserUttered):
            break
        if isinstance(event, BotUttered):
            said.append(event)
    return said


def as_message(conversation_id: str, event: BotUttered) -> dict[str, Any]:
    """A stored bot message as the REST channel answers it (CollectingOutputChannel's shape)."""
    message: dict[str, Any] = {"recipient_id": conversation_id}
    if event.text:
        message["text"] = event.text
    message.update({key: value for key, value in (event.data or {}).items() if value})
    return message


def last_turn_actions(tracker: DialogueStateTracker) -> list[str]:
    """The actions run since the student's last message."""
    names: list[str] = []
    for event in reversed(tracker.events):
        if event.type_name == "user":
            break
        if event.type_name == "action" and getattr(event, "action_name", None):
            names.append(event.action_name)
    return names
