"""The Rasa server's stored conversations, for channels that must know a conversation's state
(paused by an agent: channels/takeover.py; just handed off: channels/wechat.py).

A channel's blueprint calls `remember_app` so that the Rasa server's app (and through it Rasa's
agent and tracker store) is known once the server has started.
"""

import logging
from typing import Any

from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, Sanic

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


def last_turn_actions(tracker: DialogueStateTracker) -> list[str]:
    """The actions run since the student's last message."""
    names: list[str] = []
    for event in reversed(tracker.events):
        if event.type_name == "user":
            break
        if event.type_name == "action" and getattr(event, "action_name", None):
            names.append(event.action_name)
    return names
