"""Live takeover (staff/agent_takeover.py, channels/takeover_endpoint.py): an agent in the console
takes a student's conversation over, answers on the student's channel and hands it back; against a
real console, Rasa server and action server on one database, and a simulated WeChat server."""

import concurrent.futures
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from channels.replies import replies
from channels.tencent import wechat_protocol as protocol
from core import signed_calls
from harness.databases import migrate
from harness.personal_data import readable
from harness.servers import ROOT
from tests.accessibility import require_axe, violations
from tests.console import PASSWORD, add_user, console_running, signed_in
from tests.helpers import HOTLINE, PASSWORD_PAGE
from tests.servers import Chat, Stream, running, takeover_call
from tests.tencent_sim import SECRET, ApiStub, inbound, sent_to

KEY = "takeover-test-secret"
CHROMIUM = "/usr/bin/chromium"
WECHAT_TOKEN, APP_ID = "takeover-wechat-token", "wx00takeover0000"


@pytest.fixture(scope="module")
def live(model_path: Path, tmp_path_factory, stub: ApiStub) -> Iterator[dict]:
    """The console and the servers, with live takeover on and a hand-back check every second."""
    tmp = tmp_path_factory.mktemp("takeover")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    for name, role in (("lead", "admin"), ("wang", "agent"), ("li", "agent"), ("zhao", "agent")):
        add_user(database, name, role)
    rasa_env = {
        "DATABASE_URL": database,
        "TAKEOVER_SECRET": KEY,
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_APPID": APP_ID,
        "WECHAT_APPSECRET": SECRET,
        "WECHAT_API_BASE": stub.url,
        "WECHAT_TRANSFER_CUSTOMER_SERVICE": "1",
    }
    with running(model_path, tmp / "servers", rasa_env) as servers:
        console_env = {
            "DATABASE_URL": database,
            "TAKEOVER_SECRET": KEY,
            "ASSISTANT_URL": servers.rasa[0],
            "TAKEOVER_CHECK_SECONDS": "1",
        }
        with console_running(console_env, tmp / "console.log") as url:
            yield {
                "console": url,
                "rasa": servers.rasa[0],
                "db": database,
                "logs": [servers.logs["rasa0"], tmp / "console.log"],
            }


BUTTONS = [{"title": "有帮助", "payload": "1"}, {"title": "没帮助", "payload": "2"}]


def handed_back() -> str:
    """What the student is told when the agent who spoke to them hands back: the end, and the
    one-tap question whether the person helped."""
    return f"{replies()['takeover_ended']}\n{replies()['takeover_rating']}"


def handoff(chat: Chat) -> int:
    chat.say("注册的时候提示证件号码已被注册")
    found = re.search(r"工单号：(\d+)", chat.say("转人工"))
    assert found
    return int(found.group(1))


def post(session: requests.Session, url: str, **form: str) -> requests.Response:
    return session.post(url, data=form, timeout=60, allow_redirects=False)


def stored_texts(database: str, sender: str) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(database[len("sqlite:///") :]) as db:
        rows = db.execute(
            "SELECT type_name, data FROM events WHERE sender_id = ? AND type_name IN "
            "('user', 'bot') ORDER BY id",
            (sender,),
        ).fetchall()
    return [(kind, json.loads(data).get("text") or "") for kind, data in rows]


# ---- the signed calls on their own -----------------------------------------------------------


def test_a_call_is_accepted_only_with_the_key_fresh_and_well_formed() -> None:
    body, now = b'{"conversation_id": "x"}', time.time()
    headers = {k.lower(): v for k, v in signed_calls.signed_headers(KEY, body, now).items()}
    assert signed_calls.verified(KEY, headers, body, now) == headers["x-takeover-nonce"]
    assert signed_calls.verified("another key", headers, body, now) is None
    assert signed_calls.verified(KEY, headers, body + b" ", now) is None  # body changed
    assert signed_calls.verified(KEY, headers, body, now + 600) is None  # stale
    assert signed_calls.verified("", headers, body, now) is None  # takeover off
    assert signed_calls.verified(KEY, {**headers, "x-takeover-nonce": "短"}, body, now) is None
    forged = {**headers, "x-takeover-signature": "签名" + headers["x-takeover-signature"][2:]}
    assert signed_calls.verified(KEY, forged, body, now) is None  # non-ASCII: refused, no raise


# ---- the Rasa server's side faces the internet -----------------------------------------------


def test_the_takeover_routes_refuse_unsigned_forged_stale_and_replayed_calls(live) -> None:
    chat = Chat(live["rasa"])
    chat.say("忘记密码了")
    url = f"{live['rasa']}/webhooks/takeover/pause"
    body = json.dumps({"conversation_id": chat.sender, "agent": "mallory"}).encode()
    good = signed_calls.signed_headers(KEY, body)
    attempts = {
        "unsigned": {"Content-Type": "application/json"},
        "wrong key": signed_calls.signed_headers("guessed", body),
        "stale": signed_calls.signed_headers(KEY, body, time.time() - 3600),
        "forged": {**good, signed_calls.SIGNATURE: "0" * 64},
    }
    for name, headers in attempts.items():
        refused = requests.post(url, data=body, headers=headers, timeout=10)
        assert refused.status_code == 403, name
    too_large = b'{"conversation_id": "' + b"x" * 20000 + b'"}'
    headers = signed_calls.signed_headers(KEY, too_large)
    assert requests.post(url, data=too_large, headers=headers, timeout=10).status_code == 413
    # none of them paused the conversation: the assistant still answers
    assert PASSWORD_PAGE in chat.say("忘记密码了")

    unknown = json.dumps({"conversation_id": "never-seen", "agent": "a"}).encode()
    headers = signed_calls.signed_headers(KEY, unknown)
    assert requests.post(url, data=unknown, headers=headers, timeout=10).status_code == 404

    assert requests.post(url, data=body, headers=good, timeout=10).status_code == 200
    replayed = requests.post(url, data=body, headers=good, timeout=10)
    assert replayed.status_code == 403  # the nonce was used
    assert chat.post("还在吗") == [{"recipient_id": chat.sender, "custom": {"takeover": "waiting"}}]
    resume = json.dumps({"conversation_id": chat.sender, "agent": "a"}).encode()
    headers = signed_calls.signed_headers(KEY, resume)
    rasa_resume = f"{live['rasa']}/webhooks/takeover/resume"
    assert requests.post(rasa_resume, data=resume, headers=headers, timeout=10).status_code == 200
    assert PASSWORD_PAGE in chat.say("忘记密码了")


def test_the_widget_stream_is_bounded_and_checks_the_sender(live) -> None:
    stream = f"{live['rasa']}/webhooks/rest/stream"
    assert requests.get(stream, params={"sender": "a:b"}, timeout=10).status_code == 400
    assert requests.get(stream, timeout=10).status_code == 400
    chat = Chat.widget(live["rasa"])
    open_streams = [Stream(live["rasa"], chat) for _ in range(4)]
    try:
        one_more = requests.get(
            stream, params={"sender": chat.sender, "token": chat.token}, timeout=10
        )
        assert one_more.status_code == 429
    finally:
        for opened in open_streams:
            opened.close()


def test_a_widget_s_conversation_is_its_own_whoever_learns_its_id(live) -> None:
    """#24 item 13: the id alone (seen in a log, over a shoulder) opens no stream, fills none of
    the student's stream places and sends nothing into the conversation."""
    student, other = Chat.widget(live["rasa"]), Chat.widget(live["rasa"])
    assert student.sender.startswith("web-") and student.sender != other.sender
    assert PASSWORD_PAGE in student.say("忘记密码了")
    stream = f"{live['rasa']}/webhooks/rest/stream"
    for token in (None, "", "0" * 32, other.token, student.token.upper()):
        params = {"sender": student.sender, **({"token": token} if token is not None else {})}
        refused = requests.get(stream, params=params, timeout=10)
        assert refused.status_code == 403, (token, refused.status_code)
    # eight tries with the id alone, and the student's own widget still opens its stream
    for _ in range(8):
        alone = requests.get(stream, params={"sender": student.sender}, timeout=10)
        assert alone.status_code == 403
    own = Stream(live["rasa"], student)
    own.close()
    # nor can anyone speak in it: a message or a screenshot without its token is refused
    webhook = f"{live['rasa']}/webhooks/rest/webhook"
    for token in ({}, {"token": other.token}):
        body = {"sender": student.sender, "message": "我要转人工", **token}
        assert requests.post(webhook, json=body, timeout=10).status_code == 403
    picture = {"sender": student.sender, "image": "aGVsbG8="}
    screenshot = f"{live['rasa']}/webhooks/rest/screenshot"
    assert requests.post(screenshot, json=picture, timeout=10).status_code == 403
    # the conversation kept only the student's own message
    said = [text for kind, text in stored_texts(live["db"], student.sender) if kind == "user"]
    assert said == ["忘记密码了"]


# ---- the whole takeover ------------------------------------------------------------------------


def test_an_agent_takes_over_answers_on_the_widget_stream_and_hands_back(live) -> None:
    chat = Chat.widget(live["rasa"])
    number = handoff(chat)
    stream = Stream(live["rasa"], chat)
    wang, wang_csrf = signed_in(live["console"], "wang")
    li, li_csrf = signed_in(live["console"], "li")
    ticket = f"{live['console']}/tickets/{number}"
    try:
        assert post(wang, f"{ticket}/takeover", csrf=wang_csrf).status_code == 303
        joined = stream.wait_for(1)
        assert joined == [{"text": replies()["takeover_joined"], "from": "note"}]
        page = wang.get(ticket, timeout=10).text
        assert "你正在接管这段对话" in page and f"/tickets/{number}/messages" in page
        # a second agent can neither take over nor speak in the conversation
        assert post(li, f"{ticket}/takeover", csrf=li_csrf).status_code == 409
        assert post(li, f"{ticket}/say", csrf=li_csrf, text="我也来").status_code == 409

        # the student's message is kept for the agent, and the assistant stays quiet
        waiting = chat.post("我没注册过，手机号是13912345678")
        assert waiting == [{"recipient_id": chat.sender, "custom": {"takeover": "waiting"}}]
        news = wang.get(f"{ticket}/messages", params={"after": 0}, timeout=10).json()
        assert news["held"] and len(news["lines"]) > 2
        assert [line["sender"] for line in news["lines"]][-1] == "student"
        assert "我没注册过" in news["lines"][-1]["text"]
        assert "13912345678" not in readable(json.dumps(news, ensure_ascii=False))
        polled = wang.get(f"{ticket}/messages", params={"after": news["last"]}, timeout=10)
        assert polled.json() == {"last": news["last"], "lines": [], "held": True}

        words = "你好，我是客服小王。<b>请</b>用手机 13900001111 找回试试。"
        assert post(wang, f"{ticket}/say", csrf=wang_csrf, text=words).status_code == 303
        assert stream.wait_for(2)[1] == {"text": words, "from": "agent"}  # as typed, to the student
        assert "&lt;b&gt;请&lt;/b&gt;" in wang.get(ticket, timeout=10).text  # shown as text
        assert post(wang, f"{ticket}/say", csrf="forged", text="x").status_code == 403
        assert post(wang, f"{ticket}/say", csrf=wang_csrf, text=" ").status_code == 400

        assert post(wang, f"{ticket}/handback", csrf=wang_csrf).status_code == 303
        assert stream.wait_for(3)[2] == {"text": handed_back(), "from": "note", "buttons": BUTTONS}
        assert "谢谢你的评价" in chat.say("２")  # the one-tap rating, typed
        assert PASSWORD_PAGE in chat.say("那我忘记密码了怎么办")
    finally:
        stream.close()

    # the whole takeover is in the conversation's history, masked like the rest
    stored = stored_texts(live["db"], chat.sender)
    texts = [text for _, text in stored]
    assert replies()["takeover_joined"] in texts and handed_back() in texts
    with sqlite3.connect(live["db"].removeprefix("sqlite:///")) as db:
        rated = db.execute(
            "SELECT agent, helpful FROM agent_ratings WHERE conversation_id = ?", (chat.sender,)
        ).fetchall()
    assert rated == [("wang", 0)]
    assert any("客服小王" in text for text in texts)
    everything = readable(" ".join(texts))
    assert "13912345678" not in everything and "13900001111" not in everything
    notes = wang.get(ticket, timeout=10).text
    assert "接管了对话" in notes and "接管结束" in notes


def test_a_takeover_whose_agent_signs_out_goes_back_to_the_assistant(live) -> None:
    chat = Chat.widget(live["rasa"])
    number = handoff(chat)
    stream = Stream(live["rasa"], chat)
    zhao, csrf = signed_in(live["console"], "zhao")
    ticket = f"{live['console']}/tickets/{number}"
    try:
        assert post(zhao, f"{ticket}/takeover", csrf=csrf).status_code == 303
        assert chat.post("有人吗")[0]["custom"] == {"takeover": "waiting"}
        assert post(zhao, f"{live['console']}/logout", csrf=csrf).status_code == 303
        pushed = stream.wait_for(2)
        assert pushed[-1] == {"text": replies()["takeover_timeout"], "from": "note"}
    finally:
        stream.close()
    assert PASSWORD_PAGE in chat.say("忘记密码了")
    lead, _ = signed_in(live["console"], "lead")
    assert "已自动交回助手" in lead.get(ticket, timeout=10).text


def paused_and_held(live: dict, chat: Chat) -> tuple[bool, bool]:
    """Whether the student's conversation is paused (a message gets "waiting"), and whether an
    agent holds it in the console's table."""
    import sqlite3

    with sqlite3.connect(live["db"][len("sqlite:///") :]) as db:
        held = db.execute(
            "SELECT count(*) FROM takeovers WHERE conversation_id = ?", (chat.sender,)
        ).fetchone()[0]
    reply = chat.post("还在吗")
    return reply[0].get("custom") == {"takeover": "waiting"}, held == 1


def test_take_over_and_hand_back_at_once_never_leave_a_pause_nobody_holds(live) -> None:
    """A double submit, two tabs, an admin handing back while the agent takes over again."""
    chat = Chat(live["rasa"])
    number = handoff(chat)
    ticket = f"{live['console']}/tickets/{number}"
    tabs = [signed_in(live["console"], "li") for _ in range(2)]
    lead = signed_in(live["console"], "lead")
    for _ in range(4):
        start = threading.Barrier(4)

        def step(session_csrf: tuple, action: str, start: threading.Barrier = start) -> int:
            session, csrf = session_csrf
            start.wait()
            return post(session, f"{ticket}/{action}", csrf=csrf).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(step, tabs[0], "takeover"),
                pool.submit(step, tabs[1], "takeover"),
                pool.submit(step, tabs[1], "handback"),
                pool.submit(step, lead, "handback"),
            ]
            assert all(f.result() in (303, 409) for f in futures)
        paused, held = paused_and_held(live, chat)
        assert paused == held, (paused, held)
    post(tabs[0][0], f"{ticket}/handback", csrf=tabs[0][1])
    assert paused_and_held(live, chat) == (False, False)


def test_only_the_holder_or_an_admin_ends_a_colleague_s_work(live) -> None:
    """One rule (staff/rights.py) for hand-back, release and resolve: an agent could not hand
    back another's takeover, but could release or resolve that agent's ticket, which ended it."""
    chat = Chat(live["rasa"])
    number = handoff(chat)
    ticket = f"{live['console']}/tickets/{number}"
    li, zhao, lead = (signed_in(live["console"], name) for name in ("li", "zhao", "lead"))
    assert post(li[0], f"{ticket}/takeover", csrf=li[1]).status_code == 303
    for action in ("handback", "release", "resolve"):
        assert post(zhao[0], f"{ticket}/{action}", csrf=zhao[1]).status_code == 403, action
    assert paused_and_held(live, chat) == (True, True)
    assert post(lead[0], f"{ticket}/resolve", csrf=lead[1]).status_code == 303
    assert paused_and_held(live, chat) == (False, False)
    other = handoff(Chat(live["rasa"]))  # claimed only, no takeover
    page = f"{live['console']}/tickets/{other}"
    assert post(li[0], f"{page}/claim", csrf=li[1]).status_code == 303
    assert post(zhao[0], f"{page}/release", csrf=zhao[1]).status_code == 403
    assert post(li[0], f"{page}/release", csrf=li[1]).status_code == 303


def test_a_pause_that_nobody_holds_is_resumed_by_the_console(live) -> None:
    chat = Chat(live["rasa"])
    chat.say("忘记密码了")
    assert takeover_call(live["rasa"], "pause", chat.sender, KEY).status_code == 200
    deadline = time.monotonic() + 20
    while chat.post("有人吗")[0].get("custom") == {"takeover": "waiting"}:
        assert time.monotonic() < deadline, "still paused with nobody holding it"
        time.sleep(0.5)
    assert PASSWORD_PAGE in chat.say("忘记密码了")


def test_two_agents_racing_for_one_conversation_cannot_both_hold_it(
    postgres_url, monkeypatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from core.db import queries, takeover_claims
    from core.db.engine import dispose_all

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    try:
        number = queries.open_ticket("race", "rest", "password", "", "")
        agents = [f"agent{i}" for i in range(8)]
        with ThreadPoolExecutor(len(agents)) as pool:
            held = list(pool.map(lambda agent: takeover_claims.take("race", number, agent), agents))
        winners = [h for h in held if h is not None]
        assert len(winners) == 1 and takeover_claims.holder("race") == winners[0]
        assert not takeover_claims.touch("race", next(a for a in agents if a != winners[0].agent))
        assert (
            takeover_claims.release("race", winners[0].agent)
            and takeover_claims.holder("race") is None
        )
    finally:
        dispose_all()


# ---- WeChat: the agent's words go out through the customer-service API -------------------------


def wechat_post(live: dict, open_id: str, text: str) -> requests.Response:
    """A follower's text message, delivered by the simulated WeChat server (plain mode)."""
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    params = {
        "signature": protocol.signature(WECHAT_TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    reply = requests.post(
        f"{live['rasa']}/webhooks/wechat/webhook",
        params=params,
        data=inbound(open_id, "text", str(uuid.uuid4().int % 10**18), Content=text).encode(),
        timeout=30,
    )
    assert reply.status_code == 200
    return reply


def wechat_reply(live: dict, open_id: str, text: str) -> dict[str, str]:
    """The passive reply's fields."""
    reply = wechat_post(live, open_id, text)
    assert reply.text != "success"
    return protocol.parse_xml(reply.content)


def wechat_says(live: dict, open_id: str, text: str) -> str:
    """The passive reply's text; "" when the channel answered `success` (nothing to say now)."""
    reply = wechat_post(live, open_id, text)
    return "" if reply.text == "success" else protocol.parse_xml(reply.content)["Content"]


def test_a_wechat_handoff_goes_to_the_accounts_own_agents_when_one_is_online(
    live, stub: ApiStub
) -> None:
    open_id = f"o{uuid.uuid4().hex[:20]}"
    stub.agents_online = [{"kf_account": "kf2001@gh_test", "status": 1, "accepted_case": 0}]
    try:
        first = wechat_reply(live, open_id, "忘记密码了")
        assert first["MsgType"] == "text"  # not a handoff: the assistant answers
        transfer = wechat_reply(live, open_id, "转人工")
        assert transfer["MsgType"] == "transfer_customer_service"
        assert transfer["ToUserName"] == open_id and "Content" not in transfer
    finally:
        stub.agents_online = []
    # nobody online: the contacts and the ticket number, as without the setting
    other = f"o{uuid.uuid4().hex[:20]}"
    wechat_reply(live, other, "忘记密码了")
    handoff_reply = wechat_reply(live, other, "转人工")
    assert handoff_reply["MsgType"] == "text" and "kefu@chsi.com.cn" in handoff_reply["Content"]
    assert "工单号" in handoff_reply["Content"]


def test_a_wechat_follower_is_answered_by_an_agent_through_the_customer_service_api(
    live, stub: ApiStub
) -> None:
    open_id = f"o{uuid.uuid4().hex[:20]}"
    wechat_says(live, open_id, "注册时提示证件号码已被注册")
    found = re.search(r"工单号：(\d+)", wechat_says(live, open_id, "转人工"))
    assert found
    ticket = f"{live['console']}/tickets/{found.group(1)}"
    li, csrf = signed_in(live["console"], "li")
    assert post(li, f"{ticket}/takeover", csrf=csrf).status_code == 303
    assert sent_to(stub, open_id, 1) == [replies()["takeover_joined"]]

    assert wechat_says(live, open_id, "好的，我等你") == ""  # no passive reply: a person answers
    assert "好的，我等你" in li.get(ticket, timeout=10).text
    assert (
        post(li, f"{ticket}/say", csrf=csrf, text="请问你的学籍状态是在读吗？").status_code == 303
    )
    assert sent_to(stub, open_id, 2)[1] == "请问你的学籍状态是在读吗？"

    # past WeChat's 48-hour window the API refuses: the agent is told, and nothing is stored
    stub.refusals.append(45015)
    refused = post(li, f"{ticket}/say", csrf=csrf, text="这条发不出去")
    assert refused.status_code == 502 and "48 小时" in refused.text
    assert "这条发不出去" not in li.get(ticket, timeout=10).text

    assert post(li, f"{ticket}/handback", csrf=csrf).status_code == 303
    assert sent_to(stub, open_id, 3)[2] == handed_back()
    assert PASSWORD_PAGE in wechat_says(live, open_id, "忘记密码了")


# ---- in Chromium: the widget and the console, with axe-core on every page ---------------------


CANNED = "没有注册过的话，请看这里的说明：https://account.chsi.com.cn/account/help/sfzhcf.jsp"


def test_an_agent_takes_over_a_widget_conversation_in_the_browser(live, monkeypatch) -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; scripts/browser.sh installs it")
        pytest.skip("chromium is not installed")
    require_axe()
    from playwright.sync_api import sync_playwright

    from staff import canned_replies

    monkeypatch.setenv("DATABASE_URL", live["db"])
    canned_replies.save(None, "没注册过", CANNED, "lead")
    checked: dict[str, list[str]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        phone = {"viewport": {"width": 390, "height": 844}, "bypass_csp": True}
        student = browser.new_context(**phone).new_page()
        agent = browser.new_context(**phone).new_page()

        def student_says(text: str) -> None:
            student.fill(".chsi-input", text)
            student.press(".chsi-input", "Enter")

        def student_sees(selector: str, text: str) -> str:
            found = student.locator(selector, has_text=text).last
            found.wait_for(timeout=30000)
            return found.inner_text()

        student.goto(f"{live['rasa']}/webhooks/help/")
        student.locator(".chsi-bot").first.wait_for(timeout=30000)
        student_says("注册提示证件号码已被注册")
        student_sees(".chsi-bot", "注册过")
        student_says("转人工")
        number = re.search(r"工单号：(\d+)", student_sees(".chsi-bot", "工单号")).group(1)
        checked["help page"] = violations(student)

        agent.goto(f"{live['console']}/login")
        checked["sign-in"] = violations(agent)
        agent.fill("#name", "wang")
        agent.fill("#password", PASSWORD)
        agent.click("button[type=submit]")
        agent.locator(f"a[href='/tickets/{number}']").wait_for(timeout=10000)
        checked["queue"] = violations(agent)
        row = agent.locator("tr", has=agent.locator(f"a[href='/tickets/{number}']"))
        assert "● 在线" in row.inner_text()  # the student wrote a moment ago
        agent.click(f"a[href='/tickets/{number}']")
        checked["ticket"] = violations(agent)
        assert HOTLINE in agent.locator(".told").inner_text()  # the assistant gave it already
        agent.click("button:has-text('接管对话')")
        student_sees(".chsi-bot", replies()["takeover_joined"])

        agent.fill("#say", "你好，我是客服小王。请问你以前在学信网注册过账号吗？")
        agent.click("button:has-text('发送')")
        assert "客服小王" in student_sees(".chsi-agent", "请问你以前在学信网注册过账号吗")
        student_says("没有注册过，一直提示已被注册")
        agent.locator("#live li.student", has_text="一直提示已被注册").wait_for(timeout=20000)
        assert agent.input_value("#say") == ""  # the page did not reload under the agent
        agent.press("#say", "Alt+1")  # the first canned reply, checked against the FAQ
        assert agent.input_value("#say") == CANNED
        agent.click("button:has-text('发送')")
        student_sees(".chsi-agent", "account/help/sfzhcf.jsp")
        assert student.locator(".chsi-system").count() == 0  # no "cannot reach" while waiting
        checked["ticket, taken over"] = violations(agent)
        agent.screenshot(path=str(ROOT / "results" / "staff-takeover.png"), full_page=True)

        agent.click("button:has-text('交回助手')")
        student_sees(".chsi-bot", replies()["takeover_rating"])
        student.locator(".chsi-button", has_text="有帮助").last.click()  # one tap
        student_sees(".chsi-bot", "谢谢你的评价")
        student_says("忘记密码了")
        student_sees(".chsi-bot", "找回密码有三种方式")
        assert agent.evaluate("document.documentElement.scrollWidth") <= 390

        agent.context.clear_cookies()
        agent.goto(f"{live['console']}/login")
        agent.fill("#name", "lead")
        agent.fill("#password", PASSWORD)
        agent.click("button[type=submit]")
        pages = ("/admin/unanswered", "/admin/review", "/admin/labels", "/admin/feedback")
        pages += ("/admin/outcomes", "/admin/replies")
        for path in (*pages, "/tickets?status=claimed", "/tickets?status=open"):
            agent.goto(f"{live['console']}{path}")
            checked[path] = violations(agent)
            if path == "/admin/outcomes":  # the conversation just taken over and handed back
                for row in ("工作人员接手", "接手结束：交还助手"):
                    assert int(agent.locator("tr", has_text=row).locator("td").inner_text()) >= 1
                rated = agent.locator("#t-ratings ~ table tr", has_text="wang").inner_text()
                assert rated.split("\t")[2] != "0", rated  # wang's 有帮助
        browser.close()
    assert {page: found for page, found in checked.items() if found} == {}


# ---- a conversation saved as a test (#27 item 3) ---------------------------------------------


def test_a_conversation_saved_as_a_test_is_a_story_rasa_predicts(
    live, model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    """From the ticket page, an admin saves the conversation as a Rasa test story: the text
    masked as stored, a labelled message under its label; exported, `rasa test` passes on it."""
    from core.db import queries
    from staff import saved_tests
    from tests.helpers import rasa

    monkeypatch.setenv("DATABASE_URL", live["db"])
    chat = Chat.widget(live["rasa"])
    chat.say("学信网密码忘了，我手机13900001111")
    chat.say("没有")
    number = handoff(chat)
    queries.save_labels(["学信网密码忘了，我手机[手机号]"], "unsure", "forgot_password", "lead")
    lead, csrf = signed_in(live["console"], "lead")
    saved = post(lead, f"{live['console']}/tickets/{number}/save-test", csrf=csrf)
    assert saved.status_code == 303 and "saved_test=" in saved.headers["Location"]
    assert "已保存为测试" in lead.get(live["console"] + saved.headers["Location"], timeout=10).text
    ((_, name, by, story),) = [
        s for s in saved_tests.saved_stories() if f"ticket {number}," in s[1]
    ]
    assert by == "lead" and "13900001111" not in story and "[手机号]" in story
    assert "intent: forgot_password" in story and "action: utter_forgot_password" in story
    wang, wang_csrf = signed_in(live["console"], "wang")  # agents may not
    refused = post(wang, f"{live['console']}/tickets/{number}/save-test", csrf=wang_csrf)
    assert refused.status_code == 403
    exported = tmp_path / "saved.yml"
    assert saved_tests.export(exported) >= 1
    result = rasa(
        "test",
        "core",
        "--model",
        str(model_path),
        "--stories",
        str(exported),
        "--fail-on-prediction-errors",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
