"""The console's view of the Rasa servers: how many workers each has serving (runtime/workers.py
answers `GET /ready` on loopback), read when an admin opens the page, two seconds at most each."""

import asyncio
from dataclasses import dataclass

import aiohttp

from core import settings

TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ServerStatus:
    """One server's answer: serving is None when it did not answer."""

    url: str
    workers: int | None = None
    serving: int | None = None
    replaced: int | None = None

    @property
    def state(self) -> str:
        if self.serving is None:
            return "unreachable"
        if self.serving == 0:
            return "down"
        return "ok" if self.serving == self.workers else "degraded"


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def status(session: aiohttp.ClientSession, url: str) -> ServerStatus:
    try:
        async with session.get(url) as reply:
            body = await reply.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return ServerStatus(url)
    if not isinstance(body, dict):
        return ServerStatus(url)
    return ServerStatus(
        url, _count(body.get("workers")), _count(body.get("serving")), _count(body.get("replaced"))
    )


async def statuses() -> list[ServerStatus]:
    urls = settings.workers_status_urls()
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return list(await asyncio.gather(*(status(session, url) for url in urls)))
