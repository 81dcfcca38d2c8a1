"""core/shared_state.py: values expire on time, conditions hold, memory is capped, and a Redis
that stops answering never freezes the event loop."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from core import redis_connection, shared_state
from core.shared_state import SharedState


def test_values_expire_and_conditional_sets_hold(monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)

    async def scenario() -> None:
        state = SharedState()
        assert await state.set("a", "1", 0.2, only_if_new=True)
        assert not await state.set("a", "2", 10, only_if_new=True) and await state.get("a") == "1"
        assert not await state.set("b", "1", 10, only_if_present=True)
        assert await state.get("b") is None
        assert await state.set("a", "3", 0.2, only_if_present=True) and await state.get("a") == "3"
        await asyncio.sleep(0.25)
        assert await state.get("a") is None  # expired, before any sweep
        assert await state.set("a", "4", 10, only_if_new=True) and await state.get("a") == "4"

    asyncio.run(scenario())


def test_the_in_process_table_is_capped(monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(shared_state, "MAX_LOCAL_ENTRIES", 100)

    async def flood() -> SharedState:
        state = SharedState()
        for number in range(1000):
            await state.set(f"delivery:{number}", "x" * 100, 3600, only_if_new=True)
        return state

    state = asyncio.run(flood())
    assert len(state._local) == 100
    assert asyncio.run(state.get("delivery:999")) == "x" * 100  # the newest are kept
    assert asyncio.run(state.get("delivery:0")) is None


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a Redis that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_hanging_redis_neither_blocks_the_loop_nor_loses_the_value(silent_redis: str) -> None:
    async def scenario() -> tuple:
        state = SharedState(silent_redis)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        clock = asyncio.ensure_future(ticker())
        started = time.monotonic()
        first = await state.set("k", "v", 60, only_if_new=True)
        value = await state.get("k")
        elapsed = time.monotonic() - started
        clock.cancel()
        return first, value, elapsed, ticks

    first, value, elapsed, ticks = asyncio.run(scenario())
    # each call gives up after the one-second timeout and falls back to this process's memory
    assert first and value == "v"
    assert elapsed < 2 * redis_connection.TIMEOUT_SECONDS + 1
    assert ticks >= elapsed / 0.05 * 0.5  # the loop went on ticking while Redis hung


@pytest.fixture(params=["process", "sqlite", "postgresql", "redis"])
def any_state(request, monkeypatch, sqlite_url: str) -> Iterator[SharedState]:
    """A SharedState of each kind: this process, the database of two workers (SQLite or
    PostgreSQL), Redis."""
    from core.db.engine import dispose_all
    from tests.helpers import new_postgres_database, require_redis

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SANIC_WORKERS", "1" if request.param == "process" else "2")
    if request.param == "redis":
        redis_connection._CLIENTS.clear()
        yield SharedState(require_redis())
    elif request.param == "postgresql":
        with new_postgres_database() as url:
            monkeypatch.setenv("DATABASE_URL", url)
            yield SharedState()
            dispose_all()
    else:
        monkeypatch.setenv("DATABASE_URL", sqlite_url)
        yield SharedState()


def test_counters_added_to_at_once_count_every_addition(any_state: SharedState, caplog) -> None:
    """The sign-in limit counts this way: each attempt takes its own number."""
    key = f"count:{time.monotonic_ns()}"

    async def burst() -> list[int]:
        return list(await asyncio.gather(*(any_state.add(key, 1, 60) for _ in range(12))))

    counts = asyncio.run(burst())
    assert sorted(counts) == list(range(1, 13))
    assert asyncio.run(any_state.add(key, -1, 60)) == 11
    assert "unavailable" not in caplog.text  # counted where it says, not in the fallback


def test_a_swap_happens_once_when_two_race(any_state: SharedState, caplog) -> None:
    key = f"swap:{time.monotonic_ns()}"

    async def race() -> list[bool]:
        await any_state.set(key, "pending:old", 60)
        return list(
            await asyncio.gather(
                *(any_state.swap(key, "pending:old", f"new{n}", 60) for n in range(6))
            )
        )

    assert sorted(asyncio.run(race())) == [False] * 5 + [True]
    assert asyncio.run(any_state.swap(key, "absent", "x", 60)) is False
    assert "unavailable" not in caplog.text
