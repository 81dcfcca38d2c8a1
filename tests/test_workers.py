"""Several worker processes of one Rasa server (SANIC_WORKERS), without Redis: what they must see
alike goes through the database. `make run` starts one worker per core."""

import asyncio
import concurrent.futures
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websockets

from channels.live_updates import Hub
from core import settings
from core.shared_state import SharedState
from harness.databases import migrate
from harness.servers import Servers
from stores.lock_store import ConversationLockStore, DatabaseTurns, FileTurns
from tests import test_lock_store
from tests.helpers import new_postgres_database
from tests.servers import Chat, Stream, running, takeover_call
from tests.tencent_sim import ApiStub
from tests.test_wechat import AES_KEY, Follower, inbound, user_turns, wechat_env

TAKEOVER_KEY = "workers-takeover-key"


@pytest.fixture
def workers_without_redis(monkeypatch, sqlite_url: str) -> str:
    """Sets this process up as one of two workers of a server with no Redis."""
    monkeypatch.setenv("SANIC_WORKERS", "2")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert settings.shared_between_processes() == "database"
    return sqlite_url


def test_the_default_is_a_worker_per_core_within_memory(monkeypatch) -> None:
    cores = len(os.sched_getaffinity(0))
    assert 1 <= settings.default_workers() <= cores
    monkeypatch.setattr(settings, "WORKER_MEMORY_BYTES", 10**15)  # memory for none: still one
    assert settings.default_workers() == 1
    monkeypatch.delenv("SANIC_WORKERS", raising=False)
    assert settings.workers() == 1 and settings.shared_between_processes() == "process"
    monkeypatch.setenv("SANIC_WORKERS", "3")
    assert settings.workers() == 3 and settings.shared_between_processes() == "database"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert settings.shared_between_processes() == "redis"


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_without_redis(request, monkeypatch, tmp_path: Path) -> Iterator[type]:
    """Two workers without Redis, on SQLite (their turns queue in files beside it) or on
    PostgreSQL (in its table); the class of the queue."""
    monkeypatch.setenv("SANIC_WORKERS", "2")
    monkeypatch.delenv("REDIS_URL", raising=False)
    if request.param == "sqlite":
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'assistant.db'}")
        yield FileTurns
        assert list((tmp_path / "assistant.db-turns").iterdir()) == []  # the last release tidies
        return
    with new_postgres_database() as url:  # migrated
        monkeypatch.setenv("DATABASE_URL", url)
        yield DatabaseTurns


def test_turns_of_two_workers_run_one_at_a_time_in_arrival_order(
    queue_without_redis: type,
) -> None:
    """20 turns of one conversation 2 ms apart: in one worker, in arrival order; shared by two
    workers' stores, one at a time (their order across workers: the race below)."""
    one = ConversationLockStore()
    assert isinstance(one.queue, queue_without_redis)
    assert asyncio.run(test_lock_store.burst([one], 20)) == test_lock_store.serial_in_order(20)
    log = asyncio.run(test_lock_store.burst([one, ConversationLockStore()], 20))
    starts = [number for step, number in log[0::2]]
    assert sorted(starts) == list(range(20))
    assert log == [step for n in starts for step in (("start", n), ("end", n))]


def test_an_expired_place_of_two_workers_cannot_release_the_next_turn(
    queue_without_redis: type,
) -> None:
    test_lock_store.check_an_expired_holder_cannot_release_the_next(ConversationLockStore())


def test_turns_of_two_worker_processes_without_redis_never_overlap(
    queue_without_redis: type, redis_url: str
) -> None:
    """Two processes, 40 turns of one conversation (the race of evaluation/lock_race.py; Redis
    only records the order)."""
    from evaluation.lock_race import TURNS, burst

    test_lock_store.check_race(burst("database", redis_url), TURNS)


def test_values_shared_through_the_database_hold_their_conditions(
    workers_without_redis: str,
) -> None:
    async def scenario() -> None:
        one, other = SharedState(), SharedState()  # two workers
        assert one.database is not None
        assert await one.set("delivery:1", "pending", 0.3, only_if_new=True)
        assert not await other.set("delivery:1", "mine", 10, only_if_new=True)
        assert await other.get("delivery:1") == "pending"
        assert await other.set("delivery:1", "reply", 0.3, only_if_present=True)
        assert await one.get("delivery:1") == "reply"
        assert not await one.set("delivery:2", "x", 10, only_if_present=True)
        await asyncio.sleep(0.35)
        assert await one.get("delivery:1") is None  # expired
        assert await other.set("delivery:1", "again", 10, only_if_new=True)
        assert await one.set("token", "a", 10) and await other.set("token", "b", 10)
        assert await one.get("token") == "b"
        long_key = "choices:" + "x" * 500
        assert await one.set(long_key, "1", 10) and await other.get(long_key) == "1"

    asyncio.run(scenario())


def test_a_message_published_by_one_worker_reaches_streams_and_sockets_of_another(
    workers_without_redis: str,
) -> None:
    async def scenario() -> tuple[dict, list]:
        holder, caller = Hub(), Hub()  # the worker holding the streams, the one called
        delivered: list = []

        async def to_socket(user: str, message: dict) -> None:
            delivered.append((user, message["text"]))

        holder.deliver_locally_to("sio:", to_socket)
        queue = holder.listen("student-1")
        await caller.publish("student-1", {"text": "在的", "from": "agent"})
        await caller.publish("sio:abc", {"text": "您好"})
        streamed = await asyncio.wait_for(queue.get(), 5)
        for _ in range(50):
            if delivered:
                break
            await asyncio.sleep(0.1)
        return streamed, delivered

    streamed, delivered = asyncio.run(scenario())
    assert streamed == {"text": "在的", "from": "agent"}
    assert delivered == [("abc", "您好")]


# ---- a real server with two workers -------------------------------------------------------


@pytest.fixture(scope="module")
def two_workers(model_path: Path, tmp_path_factory, stub: ApiStub) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("workers")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    env = wechat_env(
        stub, database, WECHAT_AES_KEY=AES_KEY, SANIC_WORKERS="2", TAKEOVER_SECRET=TAKEOVER_KEY
    )
    with running(model_path, tmp, env) as servers:
        yield {"servers": servers, "db": database, "url": servers.rasa[0]}


def worker_pids(servers: Servers) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(servers.pid("rasa0"))], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in found]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_both_workers_answer_and_conversations_keep_their_state(two_workers) -> None:
    workers = worker_pids(two_workers["servers"])
    assert len(workers) == 2
    before = [cpu_seconds(pid) for pid in workers]

    def conversation(number: int) -> tuple[str, str]:
        chat = Chat(two_workers["url"], sender=f"w-{number}-{uuid.uuid4().hex[:6]}")
        return chat.say("注册时提示身份证号已被注册"), chat.say("我以前没注册过")

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(conversation, range(24)))
    assert len(set(answers)) == 1, set(answers)  # every conversation went on alike
    first, second = answers[0]
    assert "你以前用这个身份证号在学信网注册过账号吗" in first
    assert "你以前用这个身份证号在学信网注册过账号吗" not in second  # the answer was kept
    grown = [cpu_seconds(pid) - was for pid, was in zip(workers, before, strict=True)]
    assert all(seconds > 0.3 for seconds in grown), grown  # both workers did the work


def test_one_wechat_message_delivered_to_both_workers_is_one_turn(two_workers) -> None:
    user = Follower(f"{two_workers['url']}/webhooks/wechat/webhook")
    xml = inbound(user.open_id, "text", "7070", Content="用户名忘了怎么办")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:  # a new connection each
        responses = list(pool.map(lambda _: user.deliver(xml), range(6)))
    # one answers; a re-delivery while it works gets "success" (WeChat waits for the first), one
    # after it has answered gets the same answer again (how many of the six come after depends
    # on how fast the turn is)
    answered = [user.reply_text(r) for r in responses if r.text != "success"]
    assert answered and "用户名" in answered[0], [r.text[:40] for r in responses]
    assert answered == [answered[0]] * len(answered)
    assert user.reply_text(user.deliver(xml)) == answered[0]  # later: the first one's answer
    assert user_turns(two_workers["db"], user.open_id) == 1


def test_an_agent_s_words_reach_the_widget_whichever_worker_is_called(two_workers) -> None:
    url, chat = two_workers["url"], Chat.widget(two_workers["url"])
    chat.say("密码忘了")
    stream = Stream(url, chat)  # held by one worker
    try:
        assert takeover_call(url, "pause", chat.sender, TAKEOVER_KEY).status_code == 200
        for number in range(6):  # each call on a new connection: either worker
            said = takeover_call(url, "say", chat.sender, TAKEOVER_KEY, text=f"第{number}句")
            assert said.status_code == 200, said.text
        pushed = [message["text"] for message in stream.wait_for(7) if message.get("text")]
        assert [f"第{number}句" for number in range(6)] == [t for t in pushed if "句" in t]
        assert takeover_call(url, "resume", chat.sender, TAKEOVER_KEY).status_code == 200
    finally:
        stream.close()


async def socket_turn(url: str, session_id: str, text: str) -> list[str]:
    """A socket.io client over WebSocket only (engine.io 4 packets by hand: python-socketio's
    WebSocket client needs a newer aiohttp than Rasa's): joins the session, says `text`, and
    returns the bot_uttered texts of the turn."""
    address = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(address, open_timeout=10) as socket:
        assert (await socket.recv()).startswith("0")  # engine.io open
        await socket.send("40")
        assert (await socket.recv()).startswith("40")  # namespace joined
        await socket.send("42" + json.dumps(["session_request", {"session_id": session_id}]))
        texts: list[str] = []
        confirmed = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                packet = await asyncio.wait_for(socket.recv(), 3 if texts else 30)
            except asyncio.TimeoutError:
                break
            if packet == "2":
                await socket.send("3")  # pong
                continue
            if not packet.startswith("42"):
                continue
            name, data = json.loads(packet[2:])[:2]
            if name == "session_confirm" and not confirmed:
                confirmed = data == session_id
                message = {"message": text, "session_id": session_id}
                await socket.send("42" + json.dumps(["user_uttered", message]))
            elif name == "bot_uttered":
                texts.append(data.get("text", ""))
        assert confirmed
        return texts


def test_socket_io_uses_websocket_only_and_answers(two_workers) -> None:
    url = two_workers["url"]
    polling = requests.get(f"{url}/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert polling.status_code == 400  # a poll could reach a worker that has no session
    texts = asyncio.run(socket_turn(url, uuid.uuid4().hex, "学信网密码忘了"))
    assert any("找回密码" in text for text in texts)


def test_places_taken_at_once_on_postgresql_have_one_head(monkeypatch) -> None:
    """Eight workers take a place in one conversation at the same moment: each transaction
    learns the head of the queue as it commits, and exactly one of them is told it is the head
    (sequence ids do not follow commit order; the advisory lock makes them)."""
    import threading

    monkeypatch.setenv("SANIC_WORKERS", "2")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with new_postgres_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        turns = DatabaseTurns()
        for round_ in range(5):
            heads: list[bool] = []

            def take(token: str, conversation: str, start: threading.Barrier, heads: list) -> None:
                start.wait()
                heads.append(turns.take_place(conversation, token, time.time() + 60) == token)

            start = threading.Barrier(8)
            threads = [
                threading.Thread(target=take, args=(f"t{n}", f"at-once-{round_}", start, heads))
                for n in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert len(heads) == 8 and heads.count(True) == 1, heads
