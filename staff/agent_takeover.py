"""Live takeover from the console: take a student's conversation over, answer in it, hand it back.

The console holds the agent's claim (core/db/takeover_claims.py: one agent per conversation) and
asks the Rasa server to pause, speak and resume (channels/takeover_endpoint.py) with calls signed by
TAKEOVER_SECRET (core/signed_calls.py). A conversation whose agent has said nothing for
TAKEOVER_IDLE_MINUTES, or whose agent's session ended, is handed back by `hand_back_stale`, which
the console runs every TAKEOVER_CHECK_SECONDS (30): the student is told, and the assistant answers
again.
"""

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta

import aiohttp

from core import settings, signed_calls
from core.db import staff, takeover_claims
from core.db.models import utcnow

logger = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 15  # WeChat's API, with its retries, answers within about 8 s
# What the Rasa server's refusals mean for the agent.
REASONS = {
    "45015": "微信只允许在学生最近 48 小时内发过消息时回复，这条消息没有发出去。",
    "45047": "微信限制了连续发送的条数，请等学生回复后再发。",
}


@dataclass(frozen=True)
class Outcome:
    """What the Rasa server said to one call."""

    ok: bool
    message: str = ""  # why not, for the agent
    status: int = 0  # the Rasa server's HTTP status; 0 when it did not answer


async def call(step: str, conversation_id: str, agent: str, **fields: str) -> Outcome:
    """One signed call to the Rasa server: "pause", "say" (text=…) or "resume" (reason=…)."""
    secret = settings.takeover_secret()
    if not secret:
        return Outcome(
            False, "在线接管没有开启：需要为助手服务器和工作台设置同一个 TAKEOVER_SECRET。"
        )
    body = json.dumps(
        {"conversation_id": conversation_id, "agent": agent, **fields}, ensure_ascii=False
    ).encode("utf-8")
    url = f"{settings.assistant_url()}/webhooks/takeover/{step}"
    try:
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                url, data=body, headers=signed_calls.signed_headers(secret, body)
            ) as reply,
        ):
            answer = await reply.json(content_type=None)
            status = reply.status
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        logger.warning("The assistant's server did not answer a takeover call: %s", error)
        return Outcome(False, "暂时连不上助手的服务器，请稍后再试。")
    if status == 200:
        return Outcome(True, status=status)
    if status == 404:
        return Outcome(False, "助手那边找不到这段对话（可能已按保留期限删除）。", status)
    if status == 409:
        return Outcome(False, "这段对话现在没有被接管（可能已经交回助手）。", status)
    reason = str(answer.get("reason", "")) if isinstance(answer, dict) else ""
    for code, meaning in REASONS.items():
        if code in reason:
            return Outcome(False, meaning, status)
    logger.warning("A takeover call was refused: %s %s", status, reason or answer)
    return Outcome(False, "消息没有送达学生，请稍后再试。", status)


# One lock per conversation: a take-over and a hand-back of the same conversation (a double submit,
# two tabs, an admin handing back while the agent takes over again) run one after the other, so
# the pause in the tracker and the claim in `takeovers` cannot be left disagreeing.
_STEPS: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()
# How far back the repair looks for a pause that nobody holds (an agent is idle after 10 minutes;
# a day covers a console that was down).
REPAIR_WINDOW_SECONDS = 24 * 3600
# Conversations the repair found nothing to resume in (bounded: forgotten all at once when full).
_SETTLED: set[str] = set()
MAX_SETTLED = 10_000


def one_step_at_a_time(conversation_id: str) -> asyncio.Lock:
    """The lock a conversation's take-over and hand-back steps hold, in this console process."""
    lock = _STEPS.get(conversation_id)
    if lock is None:
        lock = _STEPS[conversation_id] = asyncio.Lock()
    return lock


async def hand_back(held: takeover_claims.Held, reason: str, by: str) -> Outcome:
    """Resumes the assistant in `held`'s conversation and ends the takeover (and says so)."""
    async with one_step_at_a_time(held.conversation_id):
        now = takeover_claims.holder(held.conversation_id)
        if now is None or (now.agent, now.started_at) != (held.agent, held.started_at):
            return Outcome(True)  # handed back meanwhile (and perhaps taken over again)
        return await _hand_back(held, reason, by)


async def _hand_back(held: takeover_claims.Held, reason: str, by: str) -> Outcome:
    outcome = await call("resume", held.conversation_id, by, reason=reason)
    # 404/409: nothing left to resume there; the takeover ends all the same
    if outcome.ok or outcome.status in (404, 409):
        takeover_claims.release(held.conversation_id)
        note = "接管结束，已交回助手。"
        if reason == "timeout":
            minutes = settings.takeover_idle_minutes()
            note = f"{held.agent} 超过 {minutes} 分钟没有回复（或已退出），已自动交回助手。"
        staff.add_note(held.ticket_id, by, note)
        return Outcome(True)
    return outcome


async def hand_back_stale() -> int:
    """Hands back every takeover whose agent went quiet or signed out, and resumes every paused
    conversation that no agent holds; how many were."""
    idle_since = utcnow() - timedelta(minutes=settings.takeover_idle_minutes())
    done = 0
    for held in takeover_claims.stale(idle_since):
        if (await hand_back(held, "timeout", "系统")).ok:
            done += 1
    return done + await resume_unheld()


async def resume_unheld() -> int:
    """Resumes the conversations left paused with nobody holding them; how many were. One the
    Rasa server says is not paused (409: a new session began) or does not know (404) is not
    tried again by this console."""
    since = time.time() - REPAIR_WINDOW_SECONDS
    found = await asyncio.to_thread(takeover_claims.paused_without_holder, since)
    done = 0
    for conversation_id in found:
        if conversation_id in _SETTLED:
            continue
        async with one_step_at_a_time(conversation_id):
            if takeover_claims.holder(conversation_id) is not None:
                continue  # taken over meanwhile: paused as it should be
            outcome = await call("resume", conversation_id, "系统", reason="timeout")
            if outcome.status in (404, 409):
                if len(_SETTLED) >= MAX_SETTLED:
                    _SETTLED.clear()
                _SETTLED.add(conversation_id)
            elif outcome.ok:
                logger.warning("Resumed a paused conversation that no agent held.")
                done += 1
    return done


async def keep_handing_back() -> None:
    """The console's background task: `hand_back_stale` every TAKEOVER_CHECK_SECONDS, whatever
    fails."""
    while True:
        try:
            await hand_back_stale()
        except Exception as error:  # a database blip must not end the loop
            logger.warning("Could not check the takeovers: %s", type(error).__name__)
        await asyncio.sleep(settings.takeover_check_seconds())
