"""Two server processes, one conversation, a burst of turns: how many turns overlap?

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m evaluation.lock_race

Runs the same burst (40 turns arriving 10 ms apart, alternately on two processes, each holding the
lock 20 ms) with Rasa's RedisLockStore and with stores.lock_store.ConversationLockStore, and prints
the number of turns that started while another was still running (should be 0).
"""

import asyncio
import multiprocessing
import os
import time
import uuid

import redis

TURNS = 40


def make_store(kind: str, url: str):
    if kind == "rasa":
        from rasa.core.lock_store import RedisLockStore

        kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
        return RedisLockStore(
            host=kwargs.get("host", "localhost"),
            port=kwargs.get("port", 6379),
            db=kwargs.get("db", 0),
        )
    from stores.lock_store import ConversationLockStore

    if kind == "database":  # several workers without Redis (SANIC_WORKERS, DATABASE_URL)
        return ConversationLockStore()
    return ConversationLockStore(url=url)


def server(kind: str, url: str, conversation: str, numbers: list[int], start_at: float) -> None:
    """Runs its turns; each logs "start n <asked> <placed>" (when it asked for its place in the
    queue and when the place was confirmed; Rasa's store has no queue: 0 0) and "end n"."""
    log, store = redis.Redis.from_url(url), make_store(kind, url)
    places: dict = {}
    if hasattr(store, "take_place"):
        take_place = store.take_place

        async def timed(conversation_id: str, token: str, lifetime: float) -> str | None:
            asked = time.time()
            head = await take_place(conversation_id, token, lifetime)
            places[asyncio.current_task()] = (asked, time.time())
            return head

        store.take_place = timed

    async def scheduled(number: int) -> None:
        await asyncio.sleep(max(0.0, start_at + number * 0.01 - time.time()))
        async with store.lock(conversation, wait_time_in_seconds=0.005):
            asked, placed = places.get(asyncio.current_task(), (0, 0))
            log.rpush(conversation, f"start {number} {asked:.6f} {placed:.6f}")
            await asyncio.sleep(0.02)
            log.rpush(conversation, f"end {number}")

    async def all_turns() -> None:
        await asyncio.gather(*(scheduled(n) for n in numbers))

    asyncio.run(all_turns())


def burst(kind: str, url: str) -> list[str]:
    """The log of the burst: "start n" / "end n" in the order the turns ran."""
    conversation, start_at = f"lock-race-{uuid.uuid4().hex}", time.time() + 4
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=server, args=(kind, url, conversation, list(range(i, TURNS, 2)), start_at)
        )
        for i in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    log = [entry.decode() for entry in redis.Redis.from_url(url).lrange(conversation, 0, -1)]
    redis.Redis.from_url(url).delete(conversation)
    return log


def overlaps(log: list[str]) -> int:
    return sum(
        1
        for a, b in zip(log, log[1:], strict=False)
        if a.startswith("start") and b.startswith("start")
    )


def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    for kind, label in (
        ("rasa", "rasa.core.lock_store.RedisLockStore"),
        ("ours", "stores.lock_store.ConversationLockStore"),
    ):
        print(f"{label:<42} {overlaps(burst(kind, url)):>3} of {TURNS} turns overlapped another")


if __name__ == "__main__":
    main()
