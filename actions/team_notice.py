"""Telling the support team's WeCom group of a new ticket, through a group robot (群机器人).

Set WECOM_ROBOT_WEBHOOK to the robot's webhook URL (https://qyapi.weixin.qq.com/cgi-bin/webhook/
send?key=…), and STAFF_CONSOLE_URL to the console's address as the team reaches it, for a link to
the ticket. The notice holds the ticket number, topic, channel and the steps taken, which never
contain what the student typed (actions/handoff.py), so no personal data leaves. It is sent in the
background with a short timeout: a robot that is slow or down delays and fails nothing else.
"""

import asyncio
import logging
from typing import Any

import aiohttp

from core import settings

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3
_SENDING: set[asyncio.Task[None]] = set()  # kept referenced until done


def notice(ticket: int, topic: str, channel: str, path: str, texts: dict[str, Any]) -> str:
    """The Markdown the robot posts (texts: actions/ticket_texts.yml)."""
    text = str(texts["robot_notice"]).format(
        ticket=ticket, topic=topic, channel=channel or "-", path=path
    )
    console = settings.read("STAFF_CONSOLE_URL").rstrip("/")
    if console:
        text += "\n" + str(texts["robot_link"]).format(url=f"{console}/tickets/{ticket}")
    return text


async def _post(url: str, markdown: str) -> None:
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            body = {"msgtype": "markdown", "markdown": {"content": markdown}}
            async with session.post(url, json=body) as reply:
                answer = await reply.json(content_type=None)
        if answer.get("errcode", 0) != 0:
            logger.warning("The WeCom robot refused a notice: errcode %s", answer.get("errcode"))
    except Exception as error:
        logger.warning("Could not notify the WeCom robot: %s", type(error).__name__)


def tell_team(ticket: int, topic: str, channel: str, path: str, texts: dict[str, Any]) -> None:
    """Sends the notice in the background when WECOM_ROBOT_WEBHOOK is set."""
    url = settings.read("WECOM_ROBOT_WEBHOOK")
    if not url.startswith(("https://", "http://")):
        return
    markdown = notice(ticket, topic, channel, path, texts)
    task = asyncio.get_running_loop().create_task(_post(url, markdown))
    _SENDING.add(task)
    task.add_done_callback(_SENDING.discard)
