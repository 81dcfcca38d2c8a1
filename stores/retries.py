"""Waiting out a conversation database that is unreachable for a moment (a restart, a failover)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger(__name__)

# Seconds to wait before each new attempt; about 4 s in all before a turn gives up on the database.
RETRY_DELAYS = (0.25, 0.75, 1.0, 2.0)
Result = TypeVar("Result")


def unreachable(error: DBAPIError) -> bool:
    """Refused, dropped or timed-out connections; any other database error is a bug."""
    return bool(error.connection_invalidated) or isinstance(error, OperationalError)


async def with_retries(operation: Callable[[], Awaitable[Result]]) -> Result:
    """`operation()`, tried again after each of RETRY_DELAYS while the database is unreachable."""
    for delay in RETRY_DELAYS:
        try:
            return await operation()
        except DBAPIError as error:
            if not unreachable(error):
                raise
            logger.warning(
                "Conversation database unreachable (%s); retrying in %.2f s.",
                type(error.orig).__name__,
                delay,
            )
            await asyncio.sleep(delay)
    return await operation()
