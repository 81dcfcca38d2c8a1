"""The WeChat Official Account channel, against a simulated WeChat server: real signatures, real
AES (wechatpy's own WeChatCrypto plays WeChat's side), a customer-service API stub on loopback."""

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from channels.replies import replies
from channels.tencent import wechat_protocol as protocol
from harness.databases import migrate
from harness.personal_data import readable
from tests.helpers import COMPLAINING_REQUESTS, FORM_STEPS, PASSWORD_PAGE
from tests.servers import running
from tests.tencent_sim import (
    BOMB,
    EXTERNAL,
    SECRET,
    ApiStub,
    inbound,
    sent_to,
    stored_user_turns,
)

TOKEN, APP_ID = "chsi-test-token", "wx0123456789abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them


# ---- the protocol on its own ---------------------------------------------------------------


def test_signature_is_sha1_of_the_sorted_parameters() -> None:
    import hashlib

    expected = hashlib.sha1("".join(sorted([TOKEN, "1700000000", "n0nce"])).encode()).hexdigest()
    assert protocol.signature_matches(expected, TOKEN, "1700000000", "n0nce")
    assert not protocol.signature_matches(expected[:-1] + "0", TOKEN, "1700000000", "n0nce")
    assert not protocol.signature_matches(None, TOKEN, "1700000000", "n0nce")


@pytest.mark.parametrize(
    "body",
    [
        BOMB,
        EXTERNAL,
        b"<xml><a>1</a>",
        b"<html/>",
        b"<xml>" + b"x" * (protocol.MAX_BODY_BYTES + 1) + b"</xml>",
    ],
)
def test_unsafe_or_malformed_xml_is_refused(body: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_xml(body)


def test_reply_text_cannot_break_out_of_cdata() -> None:
    nasty = "a]]></Content><Content>injected]]>b"
    fields = protocol.parse_xml(protocol.text_reply("user", "account", nasty).encode())
    assert fields["Content"] == nasty and fields["ToUserName"] == "user"


def test_buttons_become_a_numbered_list_and_links_plain_text() -> None:
    text, payloads = protocol.as_plain_text(
        [
            {"text": "看 [官方说明](https://account.chsi.com.cn/account/help/sfzhcf.jsp)"},
            {
                "text": "你看到的是哪一条？",
                "buttons": [
                    {"title": "待审核", "payload": "/a"},
                    {"title": "已被注册", "payload": "/b"},
                ],
            },
        ]
    )
    assert "官方说明：https://account.chsi.com.cn/account/help/sfzhcf.jsp" in text
    assert "1. 待审核" in text and "2. 已被注册" in text and payloads == ["/a", "/b"]


def test_a_mail_link_becomes_the_address_and_the_subject_to_write() -> None:
    from actions.handoff import mailto

    link = mailto(17, "问题：忘记密码\n走过的步骤：忘记密码 → 没找回")
    text, _ = protocol.as_plain_text([{"text": f"也可以发邮件：[点这里]({link})"}])
    assert text == "也可以发邮件：kefu@chsi.com.cn，主题写“学信网账号问题（工单号 17）”"
    # a link without a subject keeps just the address
    assert protocol.plain_link("邮箱", "mailto:kefu@chsi.com.cn") == "kefu@chsi.com.cn"


def test_long_replies_are_split_within_the_limit() -> None:
    text = "\n".join(f"第{i}行：" + "学信网账号" * 40 for i in range(30)) + "\n" + "长" * 3000
    pieces = protocol.split_text(text)
    assert len(pieces) > 1
    assert all(len(p.encode("utf-8")) <= protocol.TEXT_LIMIT_BYTES for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")


# ---- a simulated WeChat: the customer-service API on loopback ----------------------------


def wechat_env(stub: ApiStub, database: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database,
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APPID": APP_ID,
        "WECHAT_APPSECRET": SECRET,
        "WECHAT_API_BASE": stub.url,
        **extra,
    }


@pytest.fixture(scope="module")
def safe_mode(model_path: Path, tmp_path_factory, stub) -> Iterator[dict[str, str]]:
    """A Rasa server with the channel in safe (AES) mode."""
    tmp = tmp_path_factory.mktemp("wechat-safe")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    with running(model_path, tmp, wechat_env(stub, database, WECHAT_AES_KEY=AES_KEY)) as servers:
        yield {
            "url": f"{servers.rasa[0]}/webhooks/wechat/webhook",
            "db": database,
            "log": servers.logs["rasa0"],
        }


@pytest.fixture(scope="module")
def slow_plain_mode(model_path: Path, tmp_path_factory, stub) -> Iterator[str]:
    """Plain mode, with a reply deadline no answer can meet: every answer goes by API."""
    tmp = tmp_path_factory.mktemp("wechat-slow")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    with running(model_path, tmp, wechat_env(stub, database, WECHAT_REPLY_SECONDS="0")) as servers:
        yield f"{servers.rasa[0]}/webhooks/wechat/webhook"


def signed(extra: dict[str, str] | None = None) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    return {
        "signature": protocol.signature(TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **(extra or {}),
    }


class Follower:
    """A WeChat user whose messages the simulated WeChat server delivers in safe mode."""

    def __init__(self, url: str) -> None:
        from wechatpy.crypto import WeChatCrypto

        self.url, self.open_id = url, f"o{uuid.uuid4().hex[:20]}"
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)

    def deliver(
        self, xml: str, timestamp: str | None = None, nonce: str | None = None
    ) -> requests.Response:
        nonce, timestamp = nonce or uuid.uuid4().hex[:10], timestamp or str(int(time.time()))
        sealed = protocol.parse_xml(self.crypto.encrypt_message(xml, nonce, timestamp).encode())
        body = (
            "<xml><ToUserName><![CDATA[gh_test]]></ToUserName>"
            f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
        )
        params = signed({"encrypt_type": "aes", "msg_signature": sealed["MsgSignature"]})
        params.update(
            timestamp=sealed["TimeStamp"],
            nonce=sealed["Nonce"],
            signature=protocol.signature(TOKEN, sealed["TimeStamp"], sealed["Nonce"]),
        )
        return requests.post(self.url, params=params, data=body.encode(), timeout=30)

    def reply_text(self, response: requests.Response) -> str:
        assert response.status_code == 200, response.text
        outer = protocol.parse_xml(response.content)
        inner = self.crypto.decrypt_message(
            response.text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
        )
        fields = protocol.parse_xml(inner.encode() if isinstance(inner, str) else inner)
        assert fields["ToUserName"] == self.open_id and fields["MsgType"] == "text"
        return fields["Content"]

    def say(self, text: str, msg_id: str | None = None) -> str:
        msg_id = msg_id or str(uuid.uuid4().int % 10**18)
        return self.reply_text(self.deliver(inbound(self.open_id, "text", msg_id, Content=text)))


def user_turns(database: str, open_id: str) -> int:
    return stored_user_turns(database, f"wx:{open_id}")


# ---- the channel in the real Rasa server ---------------------------------------------------


def test_url_verification_echoes_only_with_a_valid_signature(safe_mode) -> None:
    good = requests.get(safe_mode["url"], params=signed({"echostr": "e-123"}), timeout=10)
    assert good.status_code == 200 and good.text == "e-123"
    forged = signed({"echostr": "e-123"})
    forged["signature"] = "0" * 40
    bad = requests.get(safe_mode["url"], params=forged, timeout=10)
    assert bad.status_code == 403 and "e-123" not in bad.text


def test_a_post_with_a_bad_signature_is_refused_and_not_processed(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    params = signed()
    params["signature"] = "f" * 40
    response = requests.post(
        user.url,
        params=params,
        timeout=10,
        data=inbound(user.open_id, "text", "1", Content="忘记密码").encode(),
    )
    assert response.status_code == 403
    assert user_turns(safe_mode["db"], user.open_id) == 0


def test_a_text_exchange_in_safe_mode(safe_mode) -> None:
    reply = Follower(safe_mode["url"]).say("学信网密码忘了怎么办")
    assert PASSWORD_PAGE in reply and "](" not in reply  # links as plain text


def test_a_handoff_gives_the_ticket_number_and_a_readable_mail_address(safe_mode) -> None:
    reply = Follower(safe_mode["url"]).say("转人工")
    number = re.search(r"工单号：(\d+)", reply)
    assert number, reply
    assert f"kefu@chsi.com.cn，主题写“学信网账号问题（工单号 {number.group(1)}）”" in reply
    assert "mailto:" not in reply and "%" not in reply


@pytest.mark.parametrize("step", FORM_STEPS)
def test_a_request_for_a_person_leaves_the_form_at_any_step(safe_mode, step: str) -> None:
    user = Follower(safe_mode["url"])
    messages, question = FORM_STEPS[step]
    for text in messages:
        reply = user.say(text)
    assert question in reply
    reply = user.say(COMPLAINING_REQUESTS[0])
    assert "010-67410388" in reply and "工单号" in reply and question not in reply


def test_a_numbered_choice_maps_back_to_its_option(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    question = user.say("注册时提示身份证号重复")
    assert "1." in question and "2." in question
    follow_up = user.say("2")  # 证件号码已被注册
    assert "注册过" in follow_up


def test_the_same_message_delivered_three_times_is_one_turn(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    replies_ = [user.say("用户名忘了", msg_id="123456789") for _ in range(3)]
    assert replies_[0] == replies_[1] == replies_[2]
    assert user_turns(safe_mode["db"], user.open_id) == 1


def test_subscribing_gets_the_welcome(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    reply = user.reply_text(user.deliver(inbound(user.open_id, "event", Event="subscribe")))
    assert "学信网账号问题助手" in reply


def test_a_picture_gets_a_polite_text_answer(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    reply = user.reply_text(
        user.deliver(inbound(user.open_id, "image", "42", PicUrl="http://example.invalid/p.jpg"))
    )
    assert reply == replies()["wechat_unsupported"]


def test_an_xml_bomb_is_refused(safe_mode) -> None:
    response = requests.post(safe_mode["url"], params=signed(), data=BOMB, timeout=10)
    assert response.status_code == 400


def test_a_slow_answer_is_acknowledged_then_sent_by_the_customer_service_api(
    slow_plain_mode, stub
) -> None:
    open_id = f"o{uuid.uuid4().hex[:20]}"
    for number, text in enumerate(["忘记密码了", "用户名也忘了"]):
        response = requests.post(
            slow_plain_mode,
            params=signed(),
            timeout=10,
            data=inbound(open_id, "text", f"9{number}", Content=text).encode(),
        )
        assert response.status_code == 200 and response.text == "success"
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and len([m for m in stub.sent if m["touser"] == open_id]) <= number
        ):
            time.sleep(0.1)
    sent = [m for m in stub.sent if m["touser"] == open_id]
    assert len(sent) == 2 and PASSWORD_PAGE in sent[0]["text"]["content"]
    assert all(m["msgtype"] == "text" and "access_token=T1" in m["path"] for m in sent)
    assert stub.token_requests == 1  # fetched once, then cached


# ---- hostile and careless input ----------------------------------------------------------------


def test_only_recent_timestamps_are_fresh() -> None:
    now = time.time()
    assert protocol.fresh(str(int(now)), now) and protocol.fresh(str(int(now) - 60), now)
    assert not protocol.fresh(str(int(now) - 30 * 86400), now)
    assert not protocol.fresh(str(int(now) + 3600), now)
    for bad in ("", "abc", "１７００００００００", "1" * 40, "-5"):
        assert not protocol.fresh(bad, now)


def test_a_non_ascii_signature_is_simply_wrong() -> None:
    assert not protocol.signature_matches("签名", TOKEN, "1700000000", "n0nce")
    assert not protocol.signature_matches("\udc80", TOKEN, "1700000000", "n0nce")


def test_a_request_signed_30_days_ago_is_refused(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    old = str(int(time.time()) - 30 * 86400)
    response = user.deliver(inbound(user.open_id, "text", "31", Content="忘记密码"), timestamp=old)
    assert response.status_code == 403
    stale = {
        "signature": protocol.signature(TOKEN, old, "n"),
        "timestamp": old,
        "nonce": "n",
        "echostr": "e-1",
    }
    assert requests.get(safe_mode["url"], params=stale, timeout=10).status_code == 403
    assert user_turns(safe_mode["db"], user.open_id) == 0


def test_a_nonce_reused_for_another_message_is_refused(safe_mode) -> None:
    user, now = Follower(safe_mode["url"]), str(int(time.time()))
    first = user.deliver(inbound(user.open_id, "text", "41", Content="用户名忘了"), now, "n-41")
    assert first.status_code == 200
    second = user.deliver(inbound(user.open_id, "text", "42", Content="密码忘了"), now, "n-41")
    assert second.status_code == 403
    assert user_turns(safe_mode["db"], user.open_id) == 1


def test_an_identical_retry_is_answered_again_and_processed_once(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    params = {"n": uuid.uuid4().hex[:10], "t": str(int(time.time()))}
    xml = inbound(user.open_id, "text", "51", Content="用户名忘了")
    sealed = protocol.parse_xml(user.crypto.encrypt_message(xml, params["n"], params["t"]).encode())
    body = f"<xml><Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>".encode()
    query = {
        "timestamp": sealed["TimeStamp"],
        "nonce": sealed["Nonce"],
        "encrypt_type": "aes",
        "msg_signature": sealed["MsgSignature"],
        "signature": protocol.signature(TOKEN, sealed["TimeStamp"], sealed["Nonce"]),
    }
    replies_ = [requests.post(user.url, params=query, data=body, timeout=30) for _ in range(2)]
    assert [r.status_code for r in replies_] == [200, 200]
    assert user.reply_text(replies_[0]) == user.reply_text(replies_[1])
    assert user_turns(safe_mode["db"], user.open_id) == 1


def test_a_circled_digit_picks_that_choice_and_never_gives_500(safe_mode) -> None:
    user = Follower(safe_mode["url"])
    assert "2." in user.say("注册时提示身份证号重复")
    assert "注册过" in user.say("②")
    assert user.say("⑳").strip()  # no such choice: read as text, still answered


def test_a_non_ascii_signature_gets_403_and_no_url_is_logged(safe_mode) -> None:
    params = signed({"signature": "签名签名"})
    response = requests.post(safe_mode["url"], params=params, timeout=10, data=b"<xml/>")
    assert response.status_code == 403
    log = safe_mode["log"].read_text(encoding="utf-8", errors="replace")
    assert "signature=" not in log and "Traceback" not in log


def test_a_malformed_aes_key_turns_the_channel_off_not_the_server(caplog) -> None:
    from channels.tencent.wechat import WeChatInput

    channel = WeChatInput(token=TOKEN, app_id=APP_ID, secret=SECRET, aes_key="too-short")
    assert channel.problem == "misconfigured" and channel.envelope is None
    assert "WECHAT_AES_KEY is unusable" in caplog.text


def test_plain_mode_is_announced_with_a_warning(caplog) -> None:
    from channels.tencent.wechat import WeChatInput

    WeChatInput(token=TOKEN, app_id=APP_ID, secret=SECRET, aes_key="")
    assert "plain mode" in caplog.text


def test_a_sender_that_is_not_an_openid_is_refused() -> None:
    import asyncio

    from channels.tencent.wechat import WeChatInput

    channel = WeChatInput(token=TOKEN, app_id=APP_ID, secret=SECRET)
    for user in ("o\nfake log line", "o\x1b[31mred", "x" * 65, ""):
        with pytest.raises(protocol.ProtocolError):
            asyncio.run(
                channel.answer(
                    None, {"FromUserName": user, "MsgType": "text", "Content": "hi", "MsgId": "1"}
                )
            )


def test_busy_answers_from_tencent_are_retried(stub) -> None:
    import asyncio

    from channels.tencent.wechat import WeChatInput

    channel = WeChatInput(token=TOKEN, app_id=APP_ID, secret=SECRET, api_base=stub.url)
    stub.busy = 2
    asyncio.run(channel.api.send_text("o-busy", ["第一条"]))
    assert [m["text"]["content"] for m in stub.sent if m["touser"] == "o-busy"] == ["第一条"]


def test_an_api_that_does_not_answer_is_logged_by_name(caplog, monkeypatch) -> None:
    import asyncio
    import socket

    from channels.tencent import wechat_api
    from channels.tencent.wechat import WeChatInput

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    monkeypatch.setattr(wechat_api, "API_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(wechat_api, "RETRY_DELAYS", (0.01,))
    channel = WeChatInput(
        token=TOKEN,
        app_id=APP_ID,
        secret=SECRET,
        api_base=f"http://127.0.0.1:{silent.getsockname()[1]}",
    )
    asyncio.run(channel._send("o-silent", ["你好"]))
    silent.close()
    assert "TimeoutError" in caplog.text


# ---- pictures and voice (after the token-counting test above: they fetch tokens too) ----------


def answer(user: "Follower", response: requests.Response, stub: ApiStub, count: int) -> str:
    """The passive reply, or (past WeChat's deadline) the `count` messages sent by API."""
    if response.text == "success":
        return "\n".join(sent_to(stub, user.open_id, count))
    return user.reply_text(response)


def test_a_screenshot_of_the_error_page_is_read_and_answered(
    safe_mode, stub, screenshot_set
) -> None:
    for shot in [s for s in screenshot_set if s.intent.startswith("error_")]:
        media_id = f"m{uuid.uuid4().hex[:16]}"
        stub.media[media_id] = shot.data
        user = Follower(safe_mode["url"])
        picture = inbound(
            user.open_id,
            "image",
            str(uuid.uuid4().int % 10**18),
            PicUrl="http://mmbiz.qpic.cn/x.jpg",
            MediaId=media_id,
        )
        reply = answer(user, user.deliver(picture), stub, 1)
        assert "我看到截图里的提示是" in reply and shot.shows in reply, (shot.name, reply)
        assert "注册过" in reply, shot.name  # the duplicate-ID flow's question
    stored = readable(
        Path(safe_mode["db"][len("sqlite:///") :]).read_bytes().decode("utf-8", "replace")
    )
    logged = readable(safe_mode["log"].read_text(encoding="utf-8", errors="replace"))
    for shot in screenshot_set:
        if shot.id_number:
            assert shot.id_number.lower() not in stored and shot.id_number.lower() not in logged


def test_a_picture_that_cannot_be_fetched_gets_a_polite_answer(safe_mode, stub) -> None:
    user = Follower(safe_mode["url"])
    picture = inbound(user.open_id, "image", "4242", PicUrl="http://x/y.jpg", MediaId="missing1")
    assert answer(user, user.deliver(picture), stub, 1) == replies()["screenshot_busy"]
    stub.media["huge1"] = b"\xff\xd8" + b"\0" * (4 * 1024 * 1024)  # over MAX_IMAGE_BYTES
    picture = inbound(user.open_id, "image", "4243", PicUrl="http://x/z.jpg", MediaId="huge1")
    assert answer(user, user.deliver(picture), stub, 2).endswith(replies()["screenshot_too_large"])


def test_a_voice_message_is_answered_from_wechats_recognition(safe_mode, stub) -> None:
    user = Follower(safe_mode["url"])
    voice = inbound(
        user.open_id, "voice", "5151", MediaId="v1", Format="amr", Recognition="我学信网密码忘了。"
    )
    assert PASSWORD_PAGE in answer(user, user.deliver(voice), stub, 1)
    unheard = inbound(user.open_id, "voice", "5152", MediaId="v2", Format="amr")
    assert answer(user, user.deliver(unheard), stub, 1) == replies()["voice_unsupported"]
