"""Faults: with the action server down, or the database unreachable for a moment, the student still
gets an answer (an apology and the contacts at worst), and no stored event is lost."""

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from harness.databases import migrate
from harness.servers import QUIET_ENV, ROOT, free_port, wait_for
from tests.helpers import EMAIL, HOTLINE, PASSWORD_PAGE, PASSWORD_PHONE
from tests.servers import Chat, running

if TYPE_CHECKING:
    from rasa.shared.core.trackers import DialogueStateTracker


@pytest.fixture(scope="module")
def without_action_server(model_path: Path, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("no-actions")
    url = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(url)
    with running(model_path, tmp, {"DATABASE_URL": url}, action_server=False) as servers:
        yield servers.rasa[0]


def test_handoff_without_the_action_server_still_gives_the_contacts(
    without_action_server: str,
) -> None:
    reply = Chat(without_action_server).say("帮我转人工客服")
    assert HOTLINE in reply and EMAIL in reply and "没能生成工单号" in reply


def test_answers_that_need_no_action_server_are_unaffected(without_action_server: str) -> None:
    reply = Chat(without_action_server).say("密码忘了")
    assert PASSWORD_PAGE in reply and PASSWORD_PHONE in reply


@pytest.mark.parametrize("text", ["注册提示证件号码已被注册", "qwpoeiruty"])
def test_turns_that_need_the_action_server_get_an_answer(
    without_action_server: str, text: str
) -> None:
    chat = Chat(without_action_server)
    assert chat.say(text).strip()
    assert PASSWORD_PAGE in chat.say("忘记密码了")  # and the conversation goes on


def test_an_action_server_that_restarts_is_reached_again(model_path: Path, tmp_path: Path) -> None:
    """The Rasa server keeps its connection to the action server open between calls
    (runtime/rasa_patches.py). Killed and started again on its port, the action server answers
    the very next turn that needs it: a handoff gets its ticket number, not the apology."""
    url = f"sqlite:///{tmp_path / 'assistant.db'}"
    migrate(url)
    env = {"DATABASE_URL": url, "SANIC_WORKERS": "1"}  # one worker: the one holding the connection
    with running(model_path, tmp_path, env) as servers:
        assert "工单号：" in Chat(servers.rasa[0]).say("帮我转人工客服")
        killed = servers.processes["actions"]
        killed.kill()
        killed.wait(10)
        servers.processes["actions"] = subprocess.Popen(
            killed.args,
            cwd=ROOT,
            env={**QUIET_ENV, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(f"{servers.actions}/health", servers, 60)
        reply = Chat(servers.rasa[0]).say("帮我转人工客服")
        assert "工单号：" in reply and "没能生成工单号" not in reply


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut and restore, as a network blip would."""

    def __init__(self, target: int) -> None:
        self.port, self.target = free_port(), target
        self.sockets: list[socket.socket] = []
        self.running = False

    def start(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.running = False
        time.sleep(0.2)
        for s in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.sockets = []

    def _accept(self) -> None:
        listener = self.listener
        while self.running:
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def stored_user_turns(engine: sa.engine.Engine, sender: str, field: str = "intent") -> list[str]:
    """The conversation's user turns as stored, in order: their intents, or (field="text") their
    stored (masked) texts."""
    column = "intent_name" if field == "intent" else "CAST(data AS json) ->> 'text'"
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    f"SELECT {column} FROM events WHERE sender_id = :s AND type_name = 'user' "
                    "ORDER BY id"
                ),
                {"s": sender},
            ).scalars()
        )


def test_a_database_blip_loses_nothing(postgres_url: str, model_path: Path, tmp_path: Path) -> None:
    target = sa.engine.make_url(postgres_url)
    proxy = Proxy(target.port or 5432)
    proxy.start()
    through_proxy = str(target.set(port=proxy.port))
    stored = sa.create_engine(postgres_url, future=True)

    def user_turns(sender: str) -> list[str]:
        return stored_user_turns(stored, sender)

    def user_texts(sender: str) -> list[str]:
        return stored_user_turns(stored, sender, "text")

    try:
        with running(model_path, tmp_path, {"DATABASE_URL": through_proxy}) as servers:
            chat = Chat(servers.rasa[0])
            assert PASSWORD_PAGE in chat.say("密码忘了")
            # cut for 1.5 s while the next message is on its way: the store retries
            proxy.stop()
            threading.Timer(1.5, proxy.start).start()
            reply = chat.say("/self_service_failed")
            assert PASSWORD_PHONE in reply and "工单号：" in reply
            assert user_turns(chat.sender) == ["forgot_password", "self_service_failed"]
            # cut for longer than the retries: an answer all the same, what was stored stays,
            # and the turn answered meanwhile is stored once the database is back
            proxy.stop()
            threading.Timer(8, proxy.start).start()
            assert Chat(servers.rasa[0], chat.sender).say("用户名也忘了").strip()
            time.sleep(8.5)
            assert PASSWORD_PAGE in chat.say("密码忘了")
            assert user_texts(chat.sender) == [
                "密码忘了",
                "/self_service_failed",
                "用户名也忘了",
                "密码忘了",
            ]
    finally:
        stored.dispose()
        proxy.stop()


# ---- a longer outage, at the level of the store ---------------------------------------------


def turn(tracker: "DialogueStateTracker", text: str, intent: str) -> None:
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

    tracker.update(UserUttered(text, intent={"name": intent, "confidence": 1.0}))
    tracker.update(BotUttered(f"answer to {intent}"))
    tracker.update(ActionExecuted("action_listen"))


def test_turns_answered_during_a_longer_outage_are_stored_when_it_ends(
    postgres_url: str, monkeypatch
) -> None:
    from rasa.core.tracker_store import FailSafeTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, SessionStarted
    from rasa.shared.core.trackers import DialogueStateTracker

    from stores import kept_conversations, retries
    from stores import tracker_store as module

    monkeypatch.setattr(retries, "RETRY_DELAYS", (0.05,))
    monkeypatch.setattr(kept_conversations, "FLUSH_INTERVAL", 0.2)
    domain = Domain.load(str(Path(__file__).parent.parent / "domain.yml"))
    target = sa.engine.make_url(postgres_url)
    proxy = Proxy(target.port or 5432)
    proxy.start()
    primary = module.MaskingSQLTrackerStore(domain, host=str(target.set(port=proxy.port)))
    store = FailSafeTrackerStore(primary)
    stored = sa.create_engine(postgres_url, future=True)

    def user_turns(sender: str) -> list[str]:
        return stored_user_turns(stored, sender)

    def start_session(tracker: DialogueStateTracker) -> DialogueStateTracker:
        for event in (
            ActionExecuted("action_session_start"),
            SessionStarted(),
            ActionExecuted("action_listen"),
        ):
            tracker.update(event)
        return tracker

    def fresh(sender: str) -> DialogueStateTracker:
        # what Rasa starts when the store has nothing for the conversation
        return start_session(DialogueStateTracker(sender, domain.slots))

    async def scenario() -> None:
        # a conversation stored normally
        first = fresh("s-1")
        turn(first, "密码忘了", "forgot_password")
        await store.save(first)

        # the database goes away for longer than the retries
        proxy.stop()
        assert await store.retrieve("s-1") is None  # Rasa's fallback knows nothing yet
        during = fresh("s-1")
        turn(during, "用户名也忘了，手机13812345678", "forgot_username")
        await store.save(during)  # kept in memory
        again = await store.retrieve("s-1")  # the conversation goes on from what was kept
        assert again is not None and len(again.events) == len(during.events)
        turn(again, "还是不行", "self_service_failed")
        await store.save(again)
        assert user_turns("s-1") == ["forgot_password"]  # nothing written while it is away

        proxy.start()
        for _ in range(50):  # the background catch-up runs every FLUSH_INTERVAL
            await asyncio.sleep(0.1)
            if not primary._kept:
                break
        assert user_turns("s-1") == ["forgot_password", "forgot_username", "self_service_failed"]
        back = await store.retrieve("s-1")
        # the conversation goes on from what the student saw last, each event once
        assert [e.intent_name for e in back.events if e.type_name == "user"] == [
            "forgot_username",
            "self_service_failed",
        ]

        # cut while a turn is being answered: read from the database, save fails, then the next
        # read (database back) stores the kept turn before reading
        read = await store.retrieve("s-1")
        proxy.stop()
        turn(read, "转人工", "request_human")
        await store.save(read)
        proxy.start()
        after = await store.retrieve("s-1")
        assert [e.intent_name for e in after.events if e.type_name == "user"] == [
            "forgot_username",
            "self_service_failed",
            "request_human",
        ]
        assert user_turns("s-1") == [
            "forgot_password",
            "forgot_username",
            "self_service_failed",
            "request_human",
        ]

        # the read fails, the database is back before the turn is saved: Rasa saves the new
        # tracker when it creates it, then again at the end of the turn; both saves are written
        second = fresh("s-2")
        turn(second, "你好", "greet")
        await store.save(second)
        proxy.stop()
        assert await store.retrieve("s-2") is None
        proxy.start()
        restarted = DialogueStateTracker("s-2", domain.slots)
        restarted.update(ActionExecuted("action_listen"))
        await store.save(restarted)
        turn(start_session(restarted), "身份证号重复", "duplicate_id")
        await store.save(restarted)
        assert user_turns("s-2") == ["greet", "duplicate_id"]
        assert [
            e.intent_name for e in (await store.retrieve("s-2")).events if e.type_name == "user"
        ] == ["duplicate_id"]

    try:
        asyncio.run(scenario())
        with stored.connect() as connection:
            data = " ".join(connection.execute(sa.text("SELECT data FROM events")).scalars())
        assert "13812345678" not in data  # masked on the way in, even when written late
    finally:
        primary.engine.dispose()
        stored.dispose()
        proxy.stop()
