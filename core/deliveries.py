"""Duplicate deliveries are harmless: a message id is processed once, and a re-delivery gets the
first delivery's reply.

Clients retry when an answer is slow (WeChat resends after 5 s; a phone on a weak network resends
the same POST). The first delivery of (conversation, message id) claims it; the others wait for
its reply and return that. Claims live in Redis when REDIS_URL is set, so this holds across
servers; otherwise in this process (core.shared_state). Only the bot's replies are kept, for a
short while.

A claim names the worker that holds it (core/processes.py). When that worker is gone before it
kept a reply (killed, or replaced after a hang: runtime/workers.py), a re-delivery on the same
machine takes the claim over, atomically, and answers the message itself: the student's retry is
answered instead of waiting for an hour's expiry.
"""

import asyncio
import enum
import hashlib
import json
import logging
import time
from typing import Any, NamedTuple

from core import processes
from core.shared_state import SharedState

logger = logging.getLogger(__name__)

KEEP_SECONDS = 3600
PENDING = "pending"

Reply = list[dict[str, Any]]


class Claim(enum.IntEnum):
    """What claiming a delivery gave: nothing (a re-delivery), the first claim, or the claim of
    a worker that is gone (the message may have been answered and stored before it went)."""

    NONE = 0
    FIRST = 1
    TAKEN_OVER = 2


class Waited(NamedTuple):
    """What waiting for a first delivery gave: its reply, or (claimed) the claim itself, because
    the worker that held it is gone and this delivery must answer."""

    reply: "Reply | None"
    claimed: bool = False


def pending() -> str:
    return f"{PENDING}:{processes.this_process()}"


def held_by_the_gone(value: str | None) -> bool:
    """Whether `value` is a pending claim whose worker no longer runs."""
    if value is None or not value.startswith(PENDING + ":"):
        return False
    return processes.is_gone(value[len(PENDING) + 1 :])


class Deliveries:
    """Claims each delivered message id once and keeps its reply for a re-delivery."""

    def __init__(self, url: str | None = None, state: SharedState | None = None) -> None:
        self.state = state or SharedState(url)

    @staticmethod
    def key(sender_id: str, message_id: str) -> str:
        """A fixed-length key that no other (sender, message id) pair can produce: the two are
        hashed as a JSON list, so "a:b" + "c" and "a" + "b:c" differ."""
        pair = json.dumps([sender_id, message_id], ensure_ascii=False)
        return "delivery:" + hashlib.sha256(pair.encode("utf-8", "surrogatepass")).hexdigest()

    async def claim(self, key: str) -> Claim:
        """FIRST for the first delivery of this key, TAKEN_OVER for a re-delivery that took the
        claim from a worker that is gone, NONE (false) for a re-delivery."""
        if await self.state.set(key, pending(), KEEP_SECONDS, only_if_new=True):
            return Claim.FIRST
        return (
            Claim.TAKEN_OVER if await self.take_over(key, await self.state.get(key)) else Claim.NONE
        )

    async def take_over(self, key: str, value: str | None) -> bool:
        """Takes a pending claim from a worker that is gone; False when it is not such a claim or
        another delivery took it first."""
        if not held_by_the_gone(value) or value is None:
            return False
        if await self.state.swap(key, value, pending(), KEEP_SECONDS):
            logger.warning("A message's worker is gone before answering; a re-delivery answers.")
            return True
        return False

    async def keep_reply(self, key: str, reply: Reply) -> None:
        """Keeps the first delivery's reply for the re-deliveries that wait for it."""
        await self.state.set(
            key, json.dumps(reply, ensure_ascii=False), KEEP_SECONDS, only_if_present=True
        )

    async def first_reply(self, key: str) -> Reply | None:
        """The first delivery's reply if it is known already, else None (still pending)."""
        value = await self.state.get(key)
        return json.loads(value) if value is not None and not value.startswith(PENDING) else None

    async def wait_for_reply(self, key: str, wait_seconds: float) -> Waited:
        """The first delivery's reply, waiting for it while it is being worked out; or the claim,
        when the worker that held it is gone."""
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            value = await self.state.get(key)
            if value is None:
                return Waited(None)
            if not value.startswith(PENDING):
                return Waited(json.loads(value))
            if await self.take_over(key, value):
                return Waited(None, claimed=True)
            await asyncio.sleep(0.05)
        return Waited(None)
