"""End to end: the real action server and Rasa server, chatted with over the REST channel.

Each flow's replies must carry the FAQ's exact links, numbers and email; bad input must get a
non-empty, polite answer and leave the conversation working.
"""

import asyncio
import json
import sqlite3
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from channels.replies import replies
from harness.databases import migrate
from harness.personal_data import SECRETS, TYPED_FORMS, readable
from harness.servers import Servers
from tests.helpers import (
    COMPLAINING_REQUESTS,
    DUPLICATE_PAGE,
    EMAIL,
    FAQ_PAGE,
    FORM_STEPS,
    HOTLINE,
    PASSWORD_PAGE,
    PASSWORD_PHONE,
    USERNAME_PAGE,
)
from tests.servers import Chat, leave, running, widget_turn

# The running servers' conversation database and logs, for the privacy test.
SERVER_FILES: dict[str, Path] = {}
SERVERS: list[Servers] = []
# Every call from the Rasa server to the action server carries it (endpoints.yml).
ACTION_TOKEN = "e2e-action-token"


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("e2e")
    database = tmp / "assistant.db"
    migrate(f"sqlite:///{database}")
    env = {"DATABASE_URL": f"sqlite:///{database}", "ACTION_SERVER_TOKEN": ACTION_TOKEN}
    with running(model_path, tmp, env) as servers:
        SERVER_FILES.update(db=database, **servers.logs)
        SERVERS.append(servers)
        yield servers.rasa[0]


def rows(query: str, *args: str) -> list:
    with sqlite3.connect(SERVER_FILES["db"]) as db:
        return list(db.execute(query, args))


def test_forgotten_username_then_customer_service(server: str) -> None:
    chat = Chat(server)
    reply = chat.say("学信网用户名忘记了怎么找")
    assert USERNAME_PAGE in reply and "推荐" in reply
    reply = chat.say("/self_service_failed")  # the "还是不行" button
    assert HOTLINE in reply and EMAIL in reply and PASSWORD_PHONE not in reply


def test_forgotten_password_with_conscription_route_and_password_contacts(server: str) -> None:
    chat = Chat(server)
    reply = chat.say("密码忘了，登不进去")
    assert PASSWORD_PAGE in reply
    assert "兵役机关" in reply and PASSWORD_PHONE in reply and EMAIL in reply
    reply = chat.say("不行，没找回来")
    assert PASSWORD_PHONE in reply and EMAIL in reply and HOTLINE not in reply


def test_duplicate_id_already_registered_never_registered_graduate(server: str) -> None:
    chat = Chat(server)
    reply = chat.say("注册时说我的身份证号重复了")
    assert "证件号码重复待审核，不能再次注册此证件号码" in reply and "证件号码已被注册" in reply
    reply = chat.say("2")
    assert "注册过" in reply and "没注册过" in reply
    reply = chat.say("我从来没注册过")
    assert "我要重新注册" in reply and DUPLICATE_PAGE in reply
    assert "旧账号将不能用于征兵、研招报名" in reply
    assert "途径1：上传手持身份证照片" in reply and "途径3：提供学籍或学历信息" in reply
    assert "简单快捷" in reply and "在校生" in reply and "毕业生" in reply
    reply = chat.say("已经毕业了")
    assert "院校名称" in reply and "证书编号" in reply and "毕业年份（4位数字）" in reply
    assert "学历层次" in reply and "学号" not in reply
    assert "研招推免和统考" in reply


def test_duplicate_id_pending_review_pasted_with_digression(server: str) -> None:
    chat = Chat(server)
    reply = chat.say("证件号码重复待审核,不能再次注册此证件号码")
    assert "注册过" in reply
    reply = chat.say("审核一般要几天")
    assert "三个工作日" in reply and "注册过" in reply  # answered, then asked again
    reply = chat.say("注册过的")
    assert "三个工作日" in reply and USERNAME_PAGE in reply and "身份证审核材料" in reply


def test_student_status_given_early_is_not_asked_again(server: str) -> None:
    chat = Chat(server)
    chat.say("我还在读大二")
    chat.say("证件号码已被注册")
    reply = chat.say("没注册过")
    assert "学号" in reply and "入学年份（4位数字）" in reply and "证书编号" not in reply


def test_one_message_answers_two_questions(server: str) -> None:
    chat = Chat(server)
    chat.say("注册学信网提示证件号码已被注册")
    reply = chat.say("我畢業了，也沒註冊過")  # traditional characters, status and history at once
    assert "我要重新注册" in reply and "证书编号" in reply and "毕业年份（4位数字）" in reply


def test_human_on_request_mid_flow_and_other_site_questions(server: str) -> None:
    chat = Chat(server)
    chat.say("身份证号被占用了")
    reply = chat.say("转人工")
    assert HOTLINE in reply and EMAIL in reply
    reply = chat.say("学历认证报告怎么申请")
    assert FAQ_PAGE in reply and HOTLINE in reply


@pytest.mark.parametrize("step", FORM_STEPS)
@pytest.mark.parametrize("request_text", COMPLAINING_REQUESTS)
def test_a_request_for_a_person_leaves_the_form_at_any_step(
    server: str, step: str, request_text: str
) -> None:
    chat = Chat(server)
    messages, question = FORM_STEPS[step]
    for text in messages:
        reply = chat.say(text)
    assert question in reply  # the form asks this step's question
    reply = chat.say(request_text)
    assert HOTLINE in reply and EMAIL in reply and "工单号" in reply, reply
    assert question not in reply
    reply = chat.say("学信网密码忘了")  # the form is left: the next question is answered
    assert PASSWORD_PAGE in reply and question not in reply


def test_two_misunderstood_messages_hand_off(server: str) -> None:
    chat = Chat(server)
    first = chat.say("asdkjhqwe zzxcv")
    second = chat.say("lkjhg poiuy")
    assert HOTLINE in first + second and EMAIL in first + second


# Short, vague messages; a trained model hesitates between two topics on some of them (which ones
# depends on the training run, so the test takes the first that does).
VAGUE = [
    "用户名还是密码来着",
    "登录不了",
    "登不进去了",
    "审核",
    "核验",
    "账号的事",
    "身份证的问题",
    "注册有问题",
]


def test_hesitation_between_two_topics_asks_which_with_buttons(server: str) -> None:
    from actions.intent_titles import intent_titles

    for text in VAGUE:
        chat = Chat(server)
        question = requests.post(
            chat.url, json={"sender": chat.sender, "message": text}, timeout=60
        ).json()[0]
        if "不太确定" in question["text"]:
            break
    else:
        pytest.fail(f"the model hesitated on none of {VAGUE}: add a vaguer message")
    payloads = [b["payload"] for b in question["buttons"]]
    assert len(payloads) == 3 and payloads[-1] == "/nlu_fallback"
    offered = [p[1:] for p in payloads[:2]]
    for intent in offered:  # each option is named in the text too, for channels without buttons
        assert intent in intent_titles() and intent_titles()[intent] in question["text"]
    assert "{" not in question["text"] and offered[0] != offered[1]
    reply = chat.say(payloads[0])  # pressing a candidate answers it
    assert "不太确定" not in reply


def test_two_unreadable_answers_inside_the_form_give_the_contacts(server: str) -> None:
    chat = Chat(server)
    chat.say("注册时身份证号重复")
    first = chat.say("qwertyuiop")
    assert "没看懂" in first and HOTLINE not in first
    second = chat.say("asdfghjkl")
    assert HOTLINE in second and EMAIL in second and "你看到的是哪一条提示" in second
    assert "注册过" in chat.say("2")  # and the form goes on from where it was


def test_unrelated_question_gets_a_short_scope_answer(server: str) -> None:
    reply = Chat(server).say("今天食堂有什么好吃的")
    assert "只能" in reply and "学信网" in reply


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "忘" * 10_000,
        "😀😀😀",
        "hello, how are you?",
        "1234567",
        "<script>alert('x')</script><b>hi</b>",
        '{"message": null}',
        "\u200b",
    ],
)
def test_bad_input_gets_an_answer_and_the_conversation_continues(server: str, text: str) -> None:
    chat = Chat(server)
    assert chat.say(text).strip()
    assert PASSWORD_PAGE in chat.say("我忘记密码了")


def test_personal_data_is_refused_and_never_stored_or_logged(server: str) -> None:
    id_number, mobile, email = "11010519491231002X", "13812345678", "li.si@example.edu.cn"
    chat = Chat(server)
    reply = chat.say(f"我的身份证号是{id_number}，手机{mobile}，邮箱{email}")
    assert "不要在这里发送身份证号" in reply
    assert PASSWORD_PAGE in chat.say("密码忘了")  # and the conversation goes on
    stored = "\n".join(
        json.dumps(json.loads(data), ensure_ascii=False)  # stored ASCII-escaped
        for (data,) in rows("SELECT data FROM events WHERE sender_id = ?", chat.sender)
    )
    assert stored and "[身份证号]" in stored and "[手机号]" in stored and "[邮箱]" in stored
    # every table (events, tickets, statistics), and the write-ahead log beside the file
    database = b"".join(p.read_bytes() for p in SERVER_FILES["db"].parent.glob("assistant.db*"))
    for secret in (id_number, mobile, email):
        assert secret not in stored and secret.encode() not in database
        for log in (SERVER_FILES["rasa0"], SERVER_FILES["actions"]):
            assert secret not in log.read_text(encoding="utf-8", errors="replace")


def test_a_question_asked_with_personal_data_is_answered_after_a_note(server: str) -> None:
    chat = Chat(server)
    replies_to = chat.post("注册时候说我身份证号 1101 0519 4912 3100 2X 已经被人注册了")
    texts = [message.get("text", "") for message in replies_to]
    assert texts[0] == replies()["personal_data_note"]  # the student learns not to send it…
    assert "注册过" in "\n".join(texts[1:])  # …and the question is answered: the ID flow asks
    assert "不要在这里发送身份证号" not in "\n".join(texts)
    # a message that is only personal data gets the assistant's warning, and no note besides
    only = [m.get("text", "") for m in Chat(server).post("我手机号 139 1234 5678")]
    assert replies()["personal_data_note"] not in only and "不要在这里发送" in only[0]


def test_personal_data_typed_in_any_form_is_never_stored_or_logged(server: str) -> None:
    chat = Chat(server)
    for variant in TYPED_FORMS:
        assert chat.say(f"我的信息是{variant}，帮我查一下").strip()
    database = b"".join(p.read_bytes() for p in SERVER_FILES["db"].parent.glob("assistant.db*"))
    places = {"database": database.decode("utf-8", errors="replace")}
    for name in ("rasa0", "actions"):
        places[name] = SERVER_FILES[name].read_text(encoding="utf-8", errors="replace")
    assert "[手机号]" in readable(places["database"])  # the messages were stored, masked
    for name, content in places.items():
        seen = readable(content)
        for secret in SECRETS:
            assert secret not in seen, f"{secret} readable in {name}"


# ---- the socket.io channel, as a chat widget uses it ------------------------------------------


def test_socketio_replies_reach_the_page_and_the_session_outlives_the_connection(
    server: str,
) -> None:
    session, first = asyncio.run(widget_turn(server, None, "学信网的密码想不起来了", server))
    assert any(PASSWORD_PAGE in text for text in first), first
    # a new connection (page reloaded) with the same session goes on with that conversation:
    # "no" answers the "did it work?" of the password answer
    again, second = asyncio.run(widget_turn(server, session, "没有，还是登不上", server))
    assert again == session
    assert any(PASSWORD_PHONE in text for text in second), second


def test_socketio_refuses_a_page_elsewhere(server: str) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        asyncio.run(widget_turn(server, None, "你好", "https://elsewhere.example"))


def test_which_pages_may_connect() -> None:
    from channels.socketio import origin_allowed

    environ = {"HTTP_HOST": "help.example.edu"}
    assert origin_allowed("https://help.example.edu", environ, [])  # its own pages
    assert origin_allowed("http://help.example.edu/", environ, [])
    assert not origin_allowed("https://help.example.edu.evil.test", environ, [])
    assert not origin_allowed("https://www.example.edu", environ, [])
    assert origin_allowed("https://www.example.edu", environ, ["https://www.example.edu"])
    assert origin_allowed("https://x.test", environ, ["*"])
    assert not origin_allowed("null", environ, [])
    behind_proxy = {"HTTP_HOST": "127.0.0.1:5005", "HTTP_X_FORWARDED_HOST": "help.example.edu"}
    assert origin_allowed("https://help.example.edu", behind_proxy, [])


def test_handoff_gives_a_ticket_number_and_a_ready_email(server: str) -> None:
    from urllib.parse import parse_qs, urlsplit

    chat = Chat(server)
    chat.say("注册提示证件号码已被注册")
    chat.say("以前注册过")
    reply = chat.say("我要找人工客服")
    assert HOTLINE in reply and EMAIL in reply
    ((number,),) = rows("SELECT id FROM tickets WHERE conversation_id = ?", chat.sender)
    assert f"工单号：{number}" in reply
    link = reply[reply.index("(mailto:") + 1 : reply.index(")", reply.index("(mailto:"))]
    body = parse_qs(urlsplit(link).query)["body"][0]
    assert str(number) in body and "证件号码已被注册" in body and "以前注册过学信网账号" in body
    ((status, path),) = rows("SELECT status, path FROM tickets WHERE id = ?", number)
    assert status == "open" and path.startswith("提示“证件号码已被注册”")


def test_misunderstood_messages_are_counted_for_the_trainers(server: str) -> None:
    # (masked like everything stored: the privacy test reads the whole database file)
    for _ in range(2):
        Chat(server).say("zxqv  wtf qwop")
    counted = rows("SELECT text, count FROM unanswered_questions WHERE text LIKE 'zxqv%'")
    assert counted == [("zxqv wtf qwop", 2)]


def assert_feedback(helpful: Chat, not_helpful: Chat) -> None:
    """The username answer helped the one, the password answer did not help the other."""
    recorded = rows(
        "SELECT conversation_id, answer, helpful FROM answer_feedback "
        "WHERE conversation_id IN (?, ?) ORDER BY answer",
        helpful.sender,
        not_helpful.sender,
    )
    assert recorded == [
        (not_helpful.sender, "utter_forgot_password", 0),
        (helpful.sender, "utter_forgot_username", 1),
    ]


def test_yes_or_no_after_an_answer_is_recorded_as_feedback(server: str) -> None:
    yes, no = Chat(server), Chat(server)
    yes.say("用户名忘了")
    assert "太好了" in yes.say("/affirm")  # the "找回了" button
    no.say("忘了密码")
    assert PASSWORD_PHONE in no.say("/self_service_failed")
    assert_feedback(helpful=yes, not_helpful=no)


def test_a_typed_answer_to_did_you_get_it_back_is_read_in_its_context(server: str) -> None:
    """Answers the classifier alone does not place (#26): read against the question just asked,
    recorded as feedback, and followed as the buttons would be."""
    yes, no = Chat(server), Chat(server)
    yes.say("用户名忘了")
    # the classifier alone reads this as forgot_username (0.61): a yes in its context
    assert "太好了" in yes.say("可以了，原来用户名是手机号")
    no.say("忘了密码")
    reply = no.say("没，卡在那个滑块验证那里")  # nlu_fallback alone: a no in its context
    assert PASSWORD_PHONE in reply and EMAIL in reply
    assert_feedback(helpful=yes, not_helpful=no)
    # the student's own words are what the conversation keeps
    typed = rows("SELECT data FROM events WHERE sender_id = ? AND type_name = 'user'", no.sender)
    assert any("卡在那个滑块验证" in json.loads(data)["text"] for (data,) in typed)


def test_answers_that_did_not_help_or_ended_with_a_person_are_listed_for_review(
    server: str,
) -> None:
    """#27 item 1: the message whose answer did not help, and the one whose answer was followed
    by a ticket within two turns, each stored masked with the intent chosen."""
    no, person = Chat(server), Chat(server)
    no.say("学信网密码记不住了，手机13912345678")
    no.say("没有，还是不行")
    person.say("我用户名想不起来了")
    person.say("找人工")
    # (whether a message was also unsure depends on the training: not asked here)
    listed = rows(
        "SELECT kind, text, intent, count FROM review_messages WHERE kind != 'unsure' AND "
        "(text LIKE '%记不住了%' OR text LIKE '%用户名想不起来%') ORDER BY kind, intent"
    )
    assert listed == [
        ("did_not_help", "学信网密码记不住了，手机[手机号]", "forgot_password", 1),
        # the no was answered with the contacts and a ticket: within two turns of the answer
        ("handed_off", "学信网密码记不住了，手机[手机号]", "forgot_password", 1),
        ("handed_off", "我用户名想不起来了", "forgot_username", 1),
    ]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"message": "hi"}',
        '{"sender": "", "message": "hi"}',
        '{"sender": "a"}',
        '{"sender": "a", "message": 5}',
        '{"sender": "a", "message": "hi", "message_id": 7}',
    ],
)
def test_a_malformed_request_gets_400_with_the_reason(server: str, body: str) -> None:
    response = requests.post(
        f"{server}/webhooks/rest/webhook",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"]


def test_a_message_delivered_three_times_is_one_turn(server: str) -> None:
    chat = Chat(server)
    replies = [chat.post("密码忘了", message_id="msg-1") for _ in range(3)]
    assert replies[0] == replies[1] == replies[2] and PASSWORD_PAGE in replies[0][0]["text"]
    assert rows(
        "SELECT count(*) FROM events WHERE sender_id = ? AND type_name = 'user'", chat.sender
    ) == [(1,)]


# ---- hostile and careless input ----------------------------------------------------------------


def test_a_very_long_message_is_answered_from_its_beginning_with_a_note(server: str) -> None:
    chat = Chat(server)
    text = "我忘记学信网的登录密码了，怎么找回？" + "我真的很着急，明天就要用。" * 800  # ~10,000
    assert len(text) > 10_000
    reply = chat.say(text)
    assert "消息比较长" in reply and PASSWORD_PAGE in reply
    assert PASSWORD_PAGE in chat.say("密码忘了")  # and the conversation goes on


@pytest.mark.parametrize(
    "sender",
    ["wx:o-someone", "wecom:zhangsan", "sio:abcdef12", "a\nb", "\x1b[31mred", "x" * 129, "学生"],
)
def test_a_sender_id_outside_the_rest_namespace_is_refused(server: str, sender: str) -> None:
    response = requests.post(
        f"{server}/webhooks/rest/webhook",
        timeout=10,
        json={"sender": sender, "message": "忘记密码"},
    )
    assert response.status_code == 400 and "sender" in response.json()["error"]


def test_bodies_that_are_not_json_or_too_large_are_refused(server: str) -> None:
    url = f"{server}/webhooks/rest/webhook"
    form = requests.post(
        url,
        data='{"sender": "s1", "message": "hi"}',
        timeout=10,
        headers={"Content-Type": "text/plain"},
    )
    assert form.status_code == 415
    big = requests.post(url, json={"sender": "s1", "message": "忘" * 300_000}, timeout=30)
    assert big.status_code == 413
    metadata = requests.post(
        url, json={"sender": "s1", "message": "hi", "metadata": {"x": "y" * 5000}}, timeout=10
    )
    assert metadata.status_code == 400 and "metadata" in metadata.json()["error"]


def test_jsonp_and_cross_site_requests_cannot_reach_socketio(server: str) -> None:
    handshake = f"{server}/socket.io/?EIO=4&transport=polling"
    assert requests.get(handshake, timeout=10).status_code == 200  # a client that is no browser
    assert requests.get(handshake + "&j=0", timeout=10).status_code == 403
    assert (
        requests.get(handshake, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10).status_code
        == 403
    )
    assert (
        requests.get(handshake, headers={"Origin": "https://evil.example"}, timeout=10).status_code
        == 403
    )


def test_socketio_session_ids_are_checked_and_namespaced(server: str) -> None:
    from channels.socketio import SENDER_PREFIX

    session, texts = asyncio.run(widget_turn(server, uuid.uuid4().hex, "密码忘了", server))
    assert PASSWORD_PAGE in "\n".join(texts)
    conversation, _, token = session.rpartition("_")  # issued by the server, not the one offered
    count = "SELECT count(*) FROM events WHERE sender_id = ?"
    assert rows(count, SENDER_PREFIX + conversation)[0][0]
    assert not rows(count, conversation)[0][0]
    # the token, which alone lets a client join, is stored nowhere
    assert not rows(
        "SELECT count(*) FROM events WHERE sender_id LIKE ? OR data LIKE ?",
        f"%{token}%",
        f"%{token}%",
    )[0][0]

    async def confirm(session_id: str) -> str:
        client = socketio.AsyncClient(reconnection=False)
        confirmed: asyncio.Queue[str] = asyncio.Queue()
        client.on("session_confirm", confirmed.put)
        await client.connect(server, transports=["polling"])
        try:
            await client.emit("session_request", {"session_id": session_id})
            return await asyncio.wait_for(confirmed.get(), 10)
        finally:
            await leave(client)

    for bad in ("wx:o-someone", "a\nb", "x" * 65, "short"):
        # bounded: a python-engineio polling client once hung here for minutes
        assert asyncio.run(asyncio.wait_for(confirm(bad), 60)) != bad


def test_the_help_page_sends_a_content_security_policy(server: str) -> None:
    page = requests.get(f"{server}/webhooks/help/", timeout=10)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = requests.get(f"{server}/webhooks/help/widget.js", timeout=10)
    assert script.headers["X-Content-Type-Options"] == "nosniff"


def listening_addresses(pid: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) a process listens on over TCP."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1].split(":")[0])
    return found


def action_call(action: str, sender: str) -> dict:
    """A call as the Rasa server makes it to the action server, on an empty conversation."""
    return {
        "next_action": action,
        "sender_id": sender,
        "tracker": {"sender_id": sender, "slots": {}, "events": [], "latest_message": {}},
        "domain": {},
        "version": "3.6.21",
    }


def test_the_servers_listen_on_loopback_and_the_action_server_wants_its_token(server: str) -> None:
    servers = SERVERS[0]
    for name in ("actions", "rasa0"):
        listening = listening_addresses(servers.pid(name))
        assert listening and set(listening) == {"0100007F"}, (name, listening)  # 127.0.0.1
    call = action_call("action_create_handoff_ticket", "forged")
    refused = requests.post(f"{servers.actions}/webhook", json=call, timeout=10)
    assert refused.status_code == 401
    forged = requests.post(
        f"{servers.actions}/webhook", params={"token": "guess"}, json=call, timeout=10
    )
    assert forged.status_code == 401
    assert rows("SELECT count(*) FROM tickets WHERE conversation_id = 'forged'")[0][0] == 0


def test_the_action_server_refuses_a_compressed_body_that_inflates_past_its_limit(
    server: str,
) -> None:
    """rasa-sdk inflates a deflate body whole: 16 MB of zeros fit in a 16 KB request."""
    from runtime.action_server import MAX_REQUEST_BYTES

    url, token = f"{SERVERS[0].actions}/webhook", {"token": ACTION_TOKEN}
    headers = {"Content-Encoding": "deflate", "Content-Type": "application/json"}
    bomb = zlib.compress(b"0" * (4 * MAX_REQUEST_BYTES), 9)
    assert len(bomb) < 100_000
    refused = requests.post(url, params=token, data=bomb, headers=headers, timeout=30)
    assert refused.status_code == 413
    call = action_call("action_start_over", "compressed")
    body = zlib.compress(json.dumps(call).encode("utf-8"))
    answered = requests.post(url, params=token, data=body, headers=headers, timeout=30)
    assert answered.status_code == 200
    assert {e["event"] for e in answered.json()["events"]} == {"reset_slots", "active_loop"}
    garbled = requests.post(url, params=token, data=b"not zlib", headers=headers, timeout=30)
    assert garbled.status_code in (400, 500) and "not zlib" not in garbled.text


def test_a_handoff_gives_the_contacts_of_the_latest_topic(server: str) -> None:
    chat = Chat(server)
    assert PASSWORD_PHONE in chat.say("学信网密码忘了")
    assert "旧账号将不能用于征兵、研招报名" in chat.say("选我要重新注册的话旧账号会怎么样")
    handoff = chat.say("我要找人工客服")
    assert HOTLINE in handoff and PASSWORD_PHONE not in handoff


def test_resetting_a_password_is_answered_not_taken_as_starting_over(server: str) -> None:
    chat = Chat(server)
    assert "注册过" in chat.say("注册时提示证件号码已被注册")
    reply = chat.say("另外想请教一下，学信网的密码要怎么重置呢")
    assert PASSWORD_PAGE in reply and "重新开始" not in reply


def test_a_socketio_packet_over_the_limit_is_refused_at_once(server: str) -> None:
    from channels.socketio import MAX_PACKET_BYTES

    base = f"{server}/socket.io/?EIO=4&transport=polling"
    handshake = requests.get(base, timeout=10)
    session = f"{base}&sid={json.loads(handshake.text[handshake.text.index('{') :])['sid']}"
    assert requests.post(session, data=b"40", timeout=10).status_code == 200  # namespace
    packet = '42["user_uttered",{"message":"' + "忘" * MAX_PACKET_BYTES + '"}]'
    assert requests.post(session, data=packet.encode("utf-8"), timeout=10).status_code == 413
    small = '42["user_uttered",{"message":"你好"}]'
    assert requests.post(session, data=small.encode("utf-8"), timeout=10).status_code == 200
