"""Two Rasa servers and one action server on the real PostgreSQL and Redis serve one conversation.

Turns sent alternately to the two servers carry the dialogue state over; a burst of messages to
both at once is processed one turn at a time, each message once, none lost; a message delivered
to both servers is one turn. Skips without PostgreSQL or Redis, except in CI (CI=true).
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from channels.replies import replies
from harness.servers import Servers
from tests.helpers import DUPLICATE_PAGE, PASSWORD_PAGE, new_postgres_database, require_redis
from tests.servers import Chat, Stream, running, takeover_call

TAKEOVER_KEY = "cluster-takeover-key"


@pytest.fixture(scope="module")
def cluster(model_path: Path, tmp_path_factory) -> Iterator[tuple[Servers, str]]:
    redis_url = require_redis()
    with new_postgres_database() as database:
        env = {"DATABASE_URL": database, "REDIS_URL": redis_url, "TAKEOVER_SECRET": TAKEOVER_KEY}
        with running(
            model_path, tmp_path_factory.mktemp("cluster"), env, rasa_servers=2
        ) as servers:
            yield servers, database


def stored_events(database: str, sender: str) -> list[tuple[str, str]]:
    """(type, intent or action name) of the conversation's stored events, in order."""
    engine = sa.create_engine(database, future=True)
    try:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    sa.text(
                        "SELECT type_name, coalesce(intent_name, action_name, '') FROM events "
                        "WHERE sender_id = :s ORDER BY id"
                    ),
                    {"s": sender},
                )
            ]
    finally:
        engine.dispose()


def user_texts(database: str, sender: str) -> list[str]:
    import json

    engine = sa.create_engine(database, future=True)
    try:
        with engine.connect() as connection:
            return [
                json.loads(data)["text"]
                for data in connection.execute(
                    sa.text(
                        "SELECT data FROM events WHERE sender_id = :s AND type_name = 'user' "
                        "ORDER BY id"
                    ),
                    {"s": sender},
                ).scalars()
            ]
    finally:
        engine.dispose()


def test_turns_alternating_between_servers_keep_the_dialogue_state(cluster) -> None:
    (servers, _), chat = cluster, Chat(cluster[0].rasa[0])
    a, b = (f"{url}/webhooks/rest/webhook" for url in servers.rasa)
    assert "证件号码已被注册" in chat.say("注册的时候说身份证号重复", a)
    assert "注册过" in chat.say("2", b)  # the form's question, asked by the other server
    reply = chat.say("没有注册过", a)
    assert "我要重新注册" in reply and DUPLICATE_PAGE in reply
    reply = chat.say("我是在校生", b)
    assert "学号" in reply and "入学年份（4位数字）" in reply


def test_a_burst_to_both_servers_is_processed_once_per_message_one_turn_at_a_time(cluster) -> None:
    (servers, database), chat = cluster, Chat(cluster[0].rasa[0])
    urls = [f"{url}/webhooks/rest/webhook" for url in servers.rasa]
    texts = [
        "你好",
        "密码忘了",
        "用户名也忘了",
        "谢谢",
        "注册提示证件号码已被注册",
        "转人工",
        "学历认证怎么弄",
        "好的",
        "再见",
        "你是机器人吗",
    ] * 2
    replies: dict[int, list[dict]] = {}

    def send(i: int) -> None:
        replies[i] = chat.post(texts[i], urls[i % 2], message_id=f"burst-{i}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(120)
    assert sorted(replies) == list(range(len(texts)))
    assert all(reply and reply[0].get("text") for reply in replies.values())  # none empty
    stored = user_texts(database, chat.sender)
    assert sorted(stored) == sorted(texts)  # each message once, none lost
    # in arrival order, give or take the HTTP race between two messages sent 20 ms apart
    positions = [stored.index(t) for t in texts[:10]]
    assert all(abs(p - i) <= 2 for i, p in enumerate(positions)), stored
    # one turn at a time: every user message is followed by its own actions, ending in a listen
    events = [e for e in stored_events(database, chat.sender) if e[0] in ("user", "action")]
    turns = 0
    for before, after in zip(events, events[1:], strict=False):
        if after[0] == "user":
            assert before == ("action", "action_listen"), events
            turns += 1
    assert turns == len(texts)  # (the first follows the session start's listen)


def test_one_message_delivered_to_both_servers_is_one_turn(cluster) -> None:
    (servers, database), chat = cluster, Chat(cluster[0].rasa[0])
    urls = [f"{url}/webhooks/rest/webhook" for url in servers.rasa]
    replies: list[list[dict]] = []
    threads = [
        threading.Thread(
            target=lambda u=u: replies.append(chat.post("忘记密码", u, message_id="same-id"))
        )
        for u in urls * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(replies) == 4 and all(r == replies[0] for r in replies)
    assert PASSWORD_PAGE in replies[0][0]["text"]
    assert user_texts(database, chat.sender) == ["忘记密码"]


def test_a_takeover_holds_on_both_servers_and_reaches_a_widget_on_the_other(cluster) -> None:
    servers, _ = cluster
    first, second = servers.rasa
    chat = Chat.widget(first)  # its token is checked by the other server too (same key)
    assert PASSWORD_PAGE in chat.say("忘记密码了")
    stream = Stream(second, chat)  # the widget streams from the other server
    try:
        assert takeover_call(first, "pause", chat.sender, TAKEOVER_KEY).status_code == 200
        waiting = [{"recipient_id": chat.sender, "custom": {"takeover": "waiting"}}]
        assert chat.post("还在吗", url=f"{second}/webhooks/rest/webhook") == waiting
        assert chat.post("有人吗") == waiting
        said = takeover_call(second, "say", chat.sender, TAKEOVER_KEY, text="在的，请讲。")
        assert said.status_code == 200
        pushed = stream.wait_for(2)  # published through Redis by either server
        assert pushed == [
            {"text": replies()["takeover_joined"], "from": "note"},
            {"text": "在的，请讲。", "from": "agent"},
        ]
        assert takeover_call(first, "resume", chat.sender, TAKEOVER_KEY).status_code == 200
        ended = stream.wait_for(3)[2]["text"]  # and, an agent having spoken, the rating question
        assert ended == f"{replies()['takeover_ended']}\n{replies()['takeover_rating']}"
    finally:
        stream.close()
    assert PASSWORD_PAGE in chat.say("忘记密码了", url=f"{second}/webhooks/rest/webhook")
