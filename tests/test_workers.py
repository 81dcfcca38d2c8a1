"""Several worker processes of one Rasa server (SANIC_WORKERS), without Redis: what they must see
alike goes through the database. `make run` starts one worker per core."""

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.client import connect as websockets_connect
from websockets.client import unix_connect as websockets_unix_connect

from channels.live_updates import Hub
from core import settings
from core.shared_state import SharedState
from harness.databases import migrate
from harness.servers import Servers
from stores.lock_store import ConversationLockStore, DatabaseTurns, FileTurns
from tests import test_lock_store, webchat
from tests.helpers import PASSWORD_PAGE, PASSWORD_PHONE, new_postgres_database
from tests.servers import Chat, Stream, running, takeover_call
from tests.tencent_sim import ApiStub
from tests.test_wechat import AES_KEY, Follower, inbound, user_turns, wechat_env
from tests.webchat import ask_in_webchat, embedding_page, socketio_conversations

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


@pytest.mark.processes  # forks processes
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
    page_port = webchat.page_port()  # a page elsewhere that embeds rasa-webchat
    env = wechat_env(
        stub,
        database,
        WECHAT_AES_KEY=AES_KEY,
        SANIC_WORKERS="2",
        TAKEOVER_SECRET=TAKEOVER_KEY,
        CORS_ORIGINS=f"http://127.0.0.1:{page_port}",
    )
    with running(model_path, tmp, env) as servers:
        yield {
            "servers": servers,
            "db": database,
            "url": servers.rasa[0],
            "page_port": page_port,
        }


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


class SocketClient:
    """A socket.io client over WebSocket only, engine.io 4 packets by hand (python-socketio's
    WebSocket client needs a newer aiohttp than Rasa's): what a widget configured with
    `transports: ["websocket"]` does."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(cls, url: str) -> AsyncIterator["SocketClient"]:
        address = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets_connect(address, open_timeout=10) as socket:
            assert str(await socket.recv()).startswith("0")  # engine.io open
            await socket.send("40")
            assert str(await socket.recv()).startswith("40")  # namespace joined
            yield cls(socket)

    async def emit(self, name: str, data: dict) -> None:
        await self.socket.send("42" + json.dumps([name, data], ensure_ascii=False))

    async def events(self, first_wait: float, then_wait: float = 3) -> list[tuple[str, Any]]:
        """The events that arrive, until `then_wait` seconds pass without one (or `first_wait`
        before the first)."""
        got: list[tuple[str, Any]] = []
        while True:
            try:
                wait = then_wait if got else first_wait
                packet = await asyncio.wait_for(self.socket.recv(), wait)
            except asyncio.TimeoutError:
                return got
            if packet == "2":
                await self.socket.send("3")  # pong
            elif packet.startswith("42"):
                name, data = json.loads(packet[2:])[:2]
                got.append((name, data))

    async def session(self, offered: str | None) -> str:
        await self.emit("session_request", {"session_id": offered})
        got = await self.events(10, 0.5)
        confirmed = [data for name, data in got if name == "session_confirm"]
        assert len(confirmed) == 1, confirmed
        return str(confirmed[0])

    async def say(self, text: str, session_id: str) -> str:
        await self.emit("user_uttered", {"message": text, "session_id": session_id})
        got = await self.events(30)
        return "\n".join(data.get("text", "") for name, data in got if name == "bot_uttered")


def test_socket_io_with_default_options_on_two_workers(two_workers) -> None:
    """#30: socket.io-client's defaults (long-polling, then the upgrade) against two workers:
    every conversation gets its own answers, whichever worker holds its session, and requests
    that reach the other worker are passed on."""
    asked = {
        "学信网密码忘了": "找回密码",
        "用户名忘了怎么办": "找回用户名",
        "身份证号已被注册": "注册过账号",
    }
    questions = list(asked) * 4
    results = socketio_conversations(two_workers["url"], questions)
    assert len(results) == len(questions)
    for result in results:
        assert result["error"] is None and result["transport"] == "websocket", result
        assert result["texts"] and asked[result["question"]] in result["texts"][0], result
    assert len({result["session"] for result in results}) == len(questions)
    # which worker holds which session is the kernel's choice: the test below passes requests
    # between them on purpose


def sibling_sockets(two_workers: dict) -> list[str]:
    log = two_workers["servers"].logs["rasa0"].read_text(encoding="utf-8")
    found = re.search(r"Workers pass requests to each other through (\S+)\.$", log, re.M)
    assert found, "the supervisor did not say where its workers listen"
    return [f"{found.group(1)}/worker-{slot}.sock" for slot in (0, 1)]


def test_an_engine_io_session_is_served_through_either_worker(two_workers) -> None:
    """#30, deterministically: a session opened by worker 1 is polled, joined, upgraded and
    spoken in through worker 2 (each worker's own socket, so the kernel does not choose)."""
    first, second = sibling_sockets(two_workers)
    base = "http://assistant/socket.io/?EIO=4"

    async def scenario() -> None:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(first)) as one,
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(second)) as two,
        ):
            async with one.get(f"{base}&transport=polling") as opened:
                handshake = json.loads((await opened.text())[1:])
            sid = handshake["sid"]
            assert sid.startswith("0-") and handshake["upgrades"] == ["websocket"]
            poll = f"{base}&transport=polling&sid={sid}"

            async def post(packet: str) -> None:
                async with two.post(poll, data=packet) as posted:
                    assert posted.status == 200 and await posted.text() == "OK"

            async def get() -> str:
                # from the page elsewhere that CORS_ORIGINS allows: one set of CORS headers
                # (two, the sibling's and this worker's, and browsers refuse the answer)
                origin = f"http://127.0.0.1:{two_workers['page_port']}"
                async with two.get(poll, headers={"Origin": origin}) as got:
                    assert got.status == 200
                    assert got.headers.getall("Access-Control-Allow-Origin") == [origin]
                    return await got.text()

            await post("40")
            assert (await get()).startswith("40")
            await post("42" + json.dumps(["session_request", {"session_id": None}]))
            confirmed = json.loads((await get())[2:])
            assert confirmed[0] == "session_confirm"
            # a session that no worker holds is refused as engine.io refuses it, through either
            async with two.get(f"{base}&transport=polling&sid=0-unknown") as unknown:
                assert unknown.status == 400
            upgrade = f"ws://assistant/socket.io/?EIO=4&transport=websocket&sid={sid}"
            async with websockets_unix_connect(second, upgrade) as socket:
                await socket.send("2probe")
                assert await socket.recv() == "3probe"
                await socket.send("5")
                message = {"message": "学信网密码忘了", "session_id": confirmed[1]}
                await socket.send("42" + json.dumps(["user_uttered", message]))
                while True:
                    packet = str(await asyncio.wait_for(socket.recv(), 30))
                    if packet == "2":
                        await socket.send("3")
                    elif packet.startswith("42"):
                        name, said = json.loads(packet[2:])[:2]
                        assert name == "bot_uttered" and PASSWORD_PAGE in said["text"]
                        return

    asyncio.run(scenario())
    log = two_workers["servers"].logs["rasa0"].read_text(encoding="utf-8")
    assert "a session of worker 1 upgraded to a WebSocket through worker 2" in log


def test_rasa_webchat_with_default_options_answers_on_two_workers(two_workers, tmp_path) -> None:
    """#30: the community widget, embedded with its documented snippet on a page of another
    origin that CORS_ORIGINS allows, connects and shows the password answer with its link."""
    with embedding_page(two_workers["page_port"], two_workers["url"], tmp_path) as page:
        texts, links = ask_in_webchat(page, "学信网密码忘了")
    assert any("找回密码" in text for text in texts), texts
    assert PASSWORD_PAGE in links, links


def test_a_socket_io_session_is_its_client_s_own(two_workers) -> None:
    """#24 item 13: another client that names a student's session, or its conversation, gets a
    session of its own; it neither receives the student's answers nor speaks in the student's
    conversation. WebSocket-only clients work on any worker."""
    url = two_workers["url"]

    async def scenario() -> None:
        async with SocketClient.connected(url) as student, SocketClient.connected(url) as other:
            session = await student.session(None)
            assert PASSWORD_PAGE in await student.say("学信网密码忘了", session)
            conversation = session.rpartition("_")[0]
            for offered in (conversation, f"{conversation}_{'0' * 32}", uuid.uuid4().hex):
                assert await other.session(offered) != session
            own = await other.session(None)
            # the other client names the student's session in its message: it speaks in its own
            assert "找回用户名" in await other.say("用户名忘了怎么办", session)
            assert await student.events(3) == []  # the student received none of it
            again = await student.session(session)  # the student's widget after a reload
            assert again == session and again != own
            # and the student's conversation went on where it was (the password flow's next step)
            assert PASSWORD_PHONE in await student.say("没有，还是登不上", session)

    asyncio.run(scenario())


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
