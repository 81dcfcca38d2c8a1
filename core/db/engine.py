"""One engine per database URL, made on first use; a short transaction per call."""

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core import settings

CONNECT_TIMEOUT_SECONDS = 5


_ENGINES: dict[str, Engine] = {}


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_engine(url: str, future: bool = True) -> Engine:
    """An engine for an SQLite file shared by the Rasa server and the action server.

    - Write-ahead logging: readers do not block the writer, and a commit does not wait for a full
      sync (durable at the next checkpoint; a power cut can lose the last turns, never corrupt
      the file).
    - A pool of open connections: SQLAlchemy 1.4's default for SQLite files opens a connection per
      session, a measurable share of each turn under load (py-spy, make bench).
    """
    engine = sa.create_engine(
        url,
        future=future,
        poolclass=sa.pool.QueuePool,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _new_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return sqlite_engine(url)
    return sa.create_engine(
        url,
        future=True,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def engine(url: str | None = None) -> Engine:
    url = url or settings.database_url()
    if url not in _ENGINES:
        _ENGINES[url] = _new_engine(url)
    return _ENGINES[url]


def dispose_all() -> None:
    """Close every pooled connection (before a test drops its database)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    with Session(engine(url), future=True) as session, session.begin():
        yield session
