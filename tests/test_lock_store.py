"""The conversation lock: one turn at a time, in arrival order, across servers, released by its
owner only."""

import asyncio
import multiprocessing
import time
import uuid
from pathlib import Path

import pytest
from rasa.core.lock_store import LockError

from stores.lock_store import ConversationLockStore, DatabaseTurns, FileTurns

Log = list[tuple[str, int]]


async def turn(
    store: ConversationLockStore,
    conversation: str,
    number: int,
    log: Log,
    hold: float,
    lifetime: float = 60,
) -> None:
    async with store.lock(conversation, lock_lifetime=lifetime):
        log.append(("start", number))
        await asyncio.sleep(hold)
        log.append(("end", number))


async def burst(stores: list[ConversationLockStore], turns: int) -> Log:
    """`turns` turns of one conversation arriving 2 ms apart, alternately on each store."""
    conversation, log = f"test-{uuid.uuid4().hex}", []
    tasks = []
    for number in range(turns):
        tasks.append(
            asyncio.ensure_future(
                turn(stores[number % len(stores)], conversation, number, log, hold=0.01)
            )
        )
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    return log


def serial_in_order(turns: int) -> Log:
    return [step for number in range(turns) for step in (("start", number), ("end", number))]


def test_turns_run_one_at_a_time_in_arrival_order_in_one_process() -> None:
    assert asyncio.run(burst([ConversationLockStore()], 20)) == serial_in_order(20)


def check_race(log: list[str], turns: int) -> None:
    """The log of evaluation.lock_race.burst: every turn ran, one at a time, in queue order."""
    from evaluation.lock_race import overlaps

    assert len(log) == 2 * turns and overlaps(log) == 0
    starts = [entry.split() for entry in log[0::2]]
    # strictly alternating start n / end n: never two turns at once
    assert all(
        log[2 * i].startswith(f"start {n} ") and log[2 * i + 1] == f"end {n}"
        for i, (_, n, _, _) in enumerate(starts)
    )
    assert sorted(int(n) for _, n, _, _ in starts) == list(range(turns))
    # queue order: a turn whose place was confirmed before another asked for one went first
    # (places asked for at overlapping moments may go either way; load cannot change this)
    for position, (_, first, asked, _) in enumerate(starts):
        for _, later, _, placed in starts[position + 1 :]:
            assert not float(placed) < float(asked), f"turn {later} was queued before {first}"


@pytest.mark.processes  # forks processes
def test_turns_on_two_server_processes_sharing_redis_never_overlap(redis_url: str) -> None:
    """Two processes (two servers), 40 turns of one conversation arriving 10 ms apart."""
    from evaluation.lock_race import TURNS, burst

    check_race(burst("ours", redis_url), TURNS)


def check_an_expired_holder_cannot_release_the_next(store: ConversationLockStore) -> None:
    async def scenario() -> Log:
        conversation, log = f"t-{uuid.uuid4().hex}", []
        slow = asyncio.ensure_future(turn(store, conversation, 0, log, hold=0.6, lifetime=0.2))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(turn(store, conversation, 1, log, hold=0.6))
        await asyncio.sleep(0.05)
        third = asyncio.ensure_future(turn(store, conversation, 2, log, hold=0.01))
        await asyncio.gather(slow, second, third)
        return log

    log = asyncio.run(scenario())
    # turn 0 outlived its lifetime, so turn 1 went ahead; when turn 0 finished and released, turn 2
    # still had to wait for turn 1.
    assert log.index(("start", 1)) < log.index(("end", 0))
    assert log.index(("start", 2)) > log.index(("end", 1))


def test_an_expired_holder_cannot_release_the_next_turns_lock(redis_url: str) -> None:
    check_an_expired_holder_cannot_release_the_next(ConversationLockStore(url=redis_url))


def test_redis_down_raises_lock_error_at_once() -> None:
    store = ConversationLockStore(url="redis://127.0.0.1:1/0")

    async def attempt() -> None:
        async with store.lock("anyone"):
            pass

    with pytest.raises(LockError):
        asyncio.run(attempt())


def test_several_workers_without_redis_share_their_queue(monkeypatch, tmp_path) -> None:
    """tests/test_workers.py runs both shared queues."""
    monkeypatch.setenv("SANIC_WORKERS", "2")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/a.db")
    queue = ConversationLockStore().queue
    assert isinstance(queue, FileTurns) and queue.directory == tmp_path / "a.db-turns"
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    assert isinstance(ConversationLockStore().queue, DatabaseTurns)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert ConversationLockStore().queue is None
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("SANIC_WORKERS", "1")
    assert ConversationLockStore().queue is None


def test_a_queue_file_left_by_a_killed_worker_is_swept(tmp_path) -> None:
    turns = FileTurns(tmp_path / "turns")
    assert turns.take_place("killed", "a", time.time() + 0.05) == "a"
    assert turns.take_place("alive", "b", time.time() + 60) == "b"
    assert turns.whose_turn("killed", time.time()) == "a"
    time.sleep(0.06)
    assert turns.whose_turn("killed", time.time()) is None  # expired: the next turn goes ahead
    turns.sweep()
    assert [path.name for path in (tmp_path / "turns").iterdir()] == [turns._path("alive").name]
    # a line cut short by a kill is skipped, the rest of the queue kept
    path = turns._path("alive")
    path.write_bytes(path.read_bytes() + b"c 17")
    assert turns.take_place("alive", "d", time.time() + 60) == "b"
    assert turns.release("alive", "b") and turns.whose_turn("alive", time.time()) == "d"
    assert not turns.release("alive", "b")
    assert turns.release("alive", "d") and not path.exists()


def _place_and_release(directory: str, worker: int, places: int) -> None:
    turns = FileTurns(Path(directory))
    for n in range(places):
        turns.take_place("busy", f"w{worker}-{n}", time.time() + 120)
    for n in range(places):
        assert turns.release("busy", f"w{worker}-{n}")
    for n in range(places):  # the queue empties often: its file is deleted and made again
        turns.take_place("busy", f"w{worker}-again-{n}", time.time() + 120)
        assert turns.release("busy", f"w{worker}-again-{n}")


@pytest.mark.processes  # forks processes
def test_a_queue_file_changed_by_four_processes_at_once_loses_no_place(tmp_path) -> None:
    """Each change reads the file and writes it back: without the file's lock, two workers
    doing so at once would drop each other's places; and one that waited for the lock of a file
    the last release deleted would write to a file nobody reads."""
    context = multiprocessing.get_context("fork")
    directory, places = tmp_path / "turns", 150
    watcher = FileTurns(directory)
    processes = [
        context.Process(target=_place_and_release, args=(str(directory), worker, places))
        for worker in range(4)
    ]
    seen = set()
    for process in processes:
        process.start()
    while any(process.is_alive() for process in processes):
        with watcher._queue(watcher._path("busy"), create=False) as queue:
            seen.add(len(queue[1]) if queue else 0)
    assert [process.join(60) or process.exitcode for process in processes] == [0, 0, 0, 0]
    assert max(seen) > places  # the processes did overlap
    assert not watcher._path("busy").exists()
