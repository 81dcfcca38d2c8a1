"""Faults: with the action server down, or the database unreachable for a moment, the student still
gets an answer (an apology and the contacts at worst), and no stored event is lost."""
import socket
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest
import sqlalchemy as sa

from tests.conftest import EMAIL, HOTLINE, PASSWORD_PAGE, PASSWORD_PHONE, migrate
from tests.servers import Chat, free_port, running


@pytest.fixture(scope="module")
def without_action_server(model_path: Path, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("no-actions")
    url = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(url)
    with running(model_path, tmp, {"DATABASE_URL": url}, action_server=False) as servers:
        yield servers.rasa[0]


def test_handoff_without_the_action_server_still_gives_the_contacts(without_action_server: str) -> None:
    reply = Chat(without_action_server).say("帮我转人工客服")
    assert HOTLINE in reply and EMAIL in reply and "没能生成工单号" in reply


def test_answers_that_need_no_action_server_are_unaffected(without_action_server: str) -> None:
    reply = Chat(without_action_server).say("密码忘了")
    assert PASSWORD_PAGE in reply and PASSWORD_PHONE in reply


@pytest.mark.parametrize("text", ["注册提示证件号码已被注册", "qwpoeiruty"])
def test_turns_that_need_the_action_server_get_an_answer(without_action_server: str, text: str) -> None:
    chat = Chat(without_action_server)
    assert chat.say(text).strip()
    assert PASSWORD_PAGE in chat.say("忘记密码了")  # and the conversation goes on


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut and restore, as a network blip would."""

    def __init__(self, target: int) -> None:
        self.port, self.target = free_port(), target
        self.sockets: List[socket.socket] = []
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
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.sockets = []

    def _accept(self) -> None:
        listener = self.listener
        while self.running:
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
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
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_a_database_blip_loses_nothing(postgres_url: str, model_path: Path, tmp_path: Path) -> None:
    target = sa.engine.make_url(postgres_url)
    proxy = Proxy(target.port or 5432)
    proxy.start()
    through_proxy = str(target.set(port=proxy.port))
    stored = sa.create_engine(postgres_url, future=True)

    def user_turns(sender: str) -> List[str]:
        with stored.connect() as connection:
            return list(connection.execute(sa.text(
                "SELECT intent_name FROM events WHERE sender_id = :s AND type_name = 'user' "
                "ORDER BY id"), {"s": sender}).scalars())

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
            # cut for longer than the retries: an answer all the same, and what was stored stays
            proxy.stop()
            threading.Timer(8, proxy.start).start()
            assert Chat(servers.rasa[0], chat.sender).say("用户名也忘了").strip()
            time.sleep(8.5)
            assert PASSWORD_PAGE in chat.say("密码忘了")
            assert user_turns(chat.sender)[:2] == ["forgot_password", "self_service_failed"]
    finally:
        stored.dispose()
        proxy.stop()
