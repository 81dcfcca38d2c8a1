"""The WeCom (企业微信) app channel against a simulated WeCom: always encrypted (wechatpy's
enterprise WeChatCrypto plays WeCom's side), acknowledged at once, answered by the send API."""

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from channels.replies import replies
from channels.tencent import wechat_protocol as protocol
from harness.databases import migrate
from tests.helpers import PASSWORD_PAGE
from tests.servers import running, takeover_call
from tests.tencent_sim import BOMB, SECRET, ApiStub, inbound, stored_user_turns

TOKEN, CORP_ID, AGENT_ID = "wecom-test-token", "ww0123456789abcdef", "1000002"
AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
TAKEOVER_KEY = "wecom-takeover-key"


@pytest.fixture(scope="module")
def wecom(model_path: Path, tmp_path_factory, stub) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wecom")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    env = {
        "DATABASE_URL": database,
        "WECOM_TOKEN": TOKEN,
        "WECOM_AES_KEY": AES_KEY,
        "WECOM_CORP_ID": CORP_ID,
        "WECOM_SECRET": SECRET,
        "WECOM_AGENT_ID": AGENT_ID,
        "WECOM_API_BASE": stub.url,
        "TAKEOVER_SECRET": TAKEOVER_KEY,
    }
    with running(model_path, tmp, env) as servers:
        yield {
            "url": f"{servers.rasa[0]}/webhooks/wecom/webhook",
            "db": database,
            "rasa": servers.rasa[0],
        }


class Employee:
    def __init__(self, url: str, stub: ApiStub) -> None:
        from wechatpy.enterprise.crypto import WeChatCrypto

        self.url, self.stub, self.user = url, stub, f"u{uuid.uuid4().hex[:12]}"
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)

    def deliver(
        self, xml: str, forge: bool = False, timestamp: str = "", nonce: str = ""
    ) -> requests.Response:
        nonce, timestamp = nonce or uuid.uuid4().hex[:10], timestamp or str(int(time.time()))
        sealed = protocol.parse_xml(self.crypto.encrypt_message(xml, nonce, timestamp).encode())
        body = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID>{AGENT_ID}</AgentID>"
            f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
        )
        signature = "0" * 40 if forge else sealed["MsgSignature"]
        return requests.post(
            self.url,
            data=body.encode(),
            timeout=30,
            params={
                "msg_signature": signature,
                "timestamp": sealed["TimeStamp"],
                "nonce": sealed["Nonce"],
            },
        )

    def sent(self) -> list[str]:
        return [m["text"]["content"] for m in self.stub.sent if m["touser"] == self.user]

    def say(self, text: str, msg_id: str = "") -> str:
        before = len(self.sent())
        response = self.deliver(
            inbound(self.user, "text", msg_id or str(uuid.uuid4().int % 10**18), Content=text)
        )
        assert response.status_code == 200 and response.text == ""  # acknowledged at once
        deadline = time.monotonic() + 30
        while len(self.sent()) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        return "\n".join(self.sent()[before:])


def user_turns(database: str, user: str) -> int:
    return stored_user_turns(database, f"wecom:{user}")


def test_url_verification_returns_the_decrypted_echostr(wecom) -> None:
    from wechatpy.crypto import PrpCrypto

    key = base64.b64decode(AES_KEY + "=")
    echostr = PrpCrypto(key).encrypt("echo-4711", CORP_ID)
    echostr = echostr.decode() if isinstance(echostr, bytes) else echostr
    timestamp, nonce = str(int(time.time())), "n1"
    params = {
        "msg_signature": protocol.signature(TOKEN, timestamp, nonce, echostr),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
    good = requests.get(wecom["url"], params=params, timeout=10)
    assert good.status_code == 200 and good.text == "echo-4711"
    bad = requests.get(wecom["url"], params={**params, "msg_signature": "1" * 40}, timeout=10)
    assert bad.status_code == 403 and "echo-4711" not in bad.text


def test_a_forged_signature_is_refused_and_not_processed(wecom, stub) -> None:
    employee = Employee(wecom["url"], stub)
    response = employee.deliver(
        inbound(employee.user, "text", "77", Content="忘记密码"), forge=True
    )
    assert response.status_code == 403
    time.sleep(0.5)
    assert user_turns(wecom["db"], employee.user) == 0 and employee.sent() == []


def test_a_text_exchange_goes_through_the_send_api(wecom, stub) -> None:
    employee = Employee(wecom["url"], stub)
    assert PASSWORD_PAGE in employee.say("忘了学信网的登录密码")
    sent = [m for m in stub.sent if m["touser"] == employee.user]
    assert sent[0]["agentid"] == int(AGENT_ID) and "/cgi-bin/message/send" in sent[0]["path"]


def test_a_numbered_choice_and_a_repeated_delivery(wecom, stub) -> None:
    employee = Employee(wecom["url"], stub)
    assert "2." in employee.say("身份证号注册不了，说重复")
    assert "注册过" in employee.say("2")
    before = len(employee.sent())
    for _ in range(3):  # WeCom retries: the same MsgId three times is one turn, one answer
        employee.deliver(inbound(employee.user, "text", "555", Content="谢谢"))
    time.sleep(2)
    assert user_turns(wecom["db"], employee.user) == 3
    assert len(employee.sent()) == before + 1


def test_a_picture_gets_a_polite_text_answer_and_a_bomb_a_400(wecom, stub) -> None:
    employee = Employee(wecom["url"], stub)
    employee.deliver(inbound(employee.user, "image", "88", PicUrl="http://example.invalid/x.png"))
    deadline = time.monotonic() + 10
    while not employee.sent() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert employee.sent() == [replies()["wechat_unsupported"]]
    assert (
        requests.post(
            wecom["url"],
            data=BOMB,
            timeout=10,
            params={"msg_signature": "x", "timestamp": str(int(time.time())), "nonce": "n"},
        ).status_code
        == 400
    )


def test_a_screenshot_is_fetched_read_and_answered(wecom, stub, screenshot_set) -> None:
    shot = next(s for s in screenshot_set if s.name == "pending-photo.jpg")
    stub.media["wecom-shot-1"] = shot.data
    employee = Employee(wecom["url"], stub)
    response = employee.deliver(
        inbound(employee.user, "image", "818181", PicUrl="http://x/p.jpg", MediaId="wecom-shot-1")
    )
    assert response.status_code == 200 and response.text == ""
    deadline = time.monotonic() + 60
    while not employee.sent() and time.monotonic() < deadline:
        time.sleep(0.1)
    reply = "\n".join(employee.sent())
    assert "我看到截图里的提示是" in reply and "证件号码重复待审核" in reply and "注册过" in reply
    assert user_turns(wecom["db"], employee.user) == 1


def test_old_signed_requests_and_reused_nonces_are_refused(wecom, stub) -> None:
    employee = Employee(wecom["url"], stub)
    old = str(int(time.time()) - 30 * 86400)
    stale = employee.deliver(
        inbound(employee.user, "text", "61", Content="忘记密码"), timestamp=old
    )
    assert stale.status_code == 403
    now = str(int(time.time()))
    assert (
        employee.deliver(
            inbound(employee.user, "text", "62", Content="用户名忘了"), timestamp=now, nonce="n-62"
        ).status_code
        == 200
    )
    replayed = employee.deliver(
        inbound(employee.user, "text", "63", Content="密码忘了"), timestamp=now, nonce="n-62"
    )
    assert replayed.status_code == 403
    time.sleep(1)
    assert user_turns(wecom["db"], employee.user) == 1


def test_an_agent_who_takes_over_answers_through_the_send_api(wecom, stub) -> None:
    employee = Employee(wecom["url"], stub)
    assert PASSWORD_PAGE in employee.say("忘记密码了")
    conversation = f"wecom:{employee.user}"
    before = len(employee.sent())
    assert takeover_call(wecom["rasa"], "pause", conversation, TAKEOVER_KEY).status_code == 200
    assert employee.sent()[before:] == [replies()["takeover_joined"]]

    response = employee.deliver(inbound(employee.user, "text", "7001", Content="在吗，人工"))
    assert response.status_code == 200 and response.text == ""
    time.sleep(2)  # the assistant would have answered by now: it must not
    assert len(employee.sent()) == before + 1
    said = takeover_call(wecom["rasa"], "say", conversation, TAKEOVER_KEY, text="我在，请讲。")
    assert said.status_code == 200 and employee.sent()[-1] == "我在，请讲。"

    assert takeover_call(wecom["rasa"], "resume", conversation, TAKEOVER_KEY).status_code == 200
    rating = replies()["takeover_rating"]  # asked: an agent spoke to the student
    assert employee.sent()[-1] == f"{replies()['takeover_ended']}\n{rating}"
    assert PASSWORD_PAGE in employee.say("忘记密码了")
    assert user_turns(wecom["db"], employee.user) == 3  # the message to the agent is kept
