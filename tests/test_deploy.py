"""The several-server deployment of deploy/: Debian's nginx with deploy/nginx/chsi-assistant.conf in
front of two Rasa servers on the real PostgreSQL and Redis. REST, socket.io, the simulated WeChat
and the help-page widget (in Chromium, with a live takeover pushed across servers) all go through
it; its limits and headers hold; and the systemd units say what they must."""

import asyncio
import configparser
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from channels.replies import replies
from channels.tencent import wechat_protocol as protocol
from harness.servers import ROOT, free_port
from tests import webchat
from tests.helpers import PASSWORD_PAGE, PASSWORD_PHONE, new_postgres_database, require_redis
from tests.servers import Chat, running, takeover_call, wait_until_answers, widget_turn
from tests.tencent_sim import SECRET, ApiStub, inbound

DEPLOY = ROOT / "deploy"
CHROMIUM = "/usr/bin/chromium"
KEY = "deploy-takeover-key"
WECHAT_TOKEN, APP_ID = "deploy-wechat-token", "wx00deploy000000"
TOP_LEVEL = """user root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$upstream_addr $request_method $uri $status';
    access_log {tmp}/access.log upstreams;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/chsi-assistant.conf;
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else ""
    )
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed; scripts/browser.sh installs it")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


@pytest.fixture(scope="module")
def proxy(model_path: Path, tmp_path_factory, stub: ApiStub) -> Iterator[dict]:
    nginx = nginx_binary()
    redis_url = require_redis()
    tmp = tmp_path_factory.mktemp("deploy")
    page_port = webchat.page_port()  # a page elsewhere that embeds rasa-webchat
    with new_postgres_database() as database:
        env = {
            "CORS_ORIGINS": f"http://127.0.0.1:{page_port}",
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "TAKEOVER_SECRET": KEY,
            "WECHAT_TOKEN": WECHAT_TOKEN,
            "WECHAT_APPID": APP_ID,
            "WECHAT_APPSECRET": SECRET,
            "WECHAT_API_BASE": stub.url,
        }
        with running(model_path, tmp / "servers", env, rasa_servers=2) as servers:
            port = free_port()
            first, second = (url.removeprefix("http://") for url in servers.rasa)
            site = (DEPLOY / "nginx" / "chsi-assistant.conf").read_text(encoding="utf-8")
            site = site.replace("127.0.0.1:5005", first).replace("127.0.0.1:5015", second)
            site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
            (tmp / "chsi-assistant.conf").write_text(site, encoding="utf-8")
            (tmp / "nginx.conf").write_text(TOP_LEVEL.format(tmp=tmp), encoding="utf-8")
            command = [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")]
            checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
            assert checked.returncode == 0, checked.stderr
            process = subprocess.Popen(
                [*command, "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=(tmp / "nginx.out").open("w"),
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_answers(f"{url}/", 20)
                yield {
                    "url": url,
                    "rasa": servers.rasa,
                    "access_log": tmp / "access.log",
                    "page_port": page_port,
                }
            finally:
                process.terminate()
                process.wait(20)


def test_rest_turns_through_the_proxy_reach_both_servers_and_keep_the_dialogue(proxy) -> None:
    chat = Chat(proxy["url"])
    assert PASSWORD_PAGE in chat.say("学信网的密码忘了")
    assert PASSWORD_PHONE in chat.say("没有，还是登不上")
    for _ in range(6):  # least_conn spreads the other students' turns over both servers
        assert PASSWORD_PAGE in Chat(proxy["url"]).say("忘记密码了")
    served = proxy["access_log"].read_text(encoding="utf-8")
    used = set(re.findall(r"^(127\.0\.0\.1:\d+) POST /webhooks/rest/webhook 200", served, re.M))
    assert used == {url.removeprefix("http://") for url in proxy["rasa"]}


def test_the_proxy_refuses_large_bodies_and_hides_the_takeover_calls(proxy) -> None:
    big = requests.post(
        f"{proxy['url']}/webhooks/rest/webhook",
        data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413 and "nginx" in big.headers.get("Server", "")
    chat = Chat(proxy["url"])
    chat.say("忘记密码了")
    from_outside = takeover_call(proxy["url"], "pause", chat.sender, KEY)
    assert from_outside.status_code == 404  # not even signed calls cross the proxy
    assert PASSWORD_PAGE in chat.say("忘记密码了")  # and the conversation was not paused
    assert requests.get(f"{proxy['url']}/conversations/x/tracker", timeout=10).status_code == 404


def test_socketio_works_through_the_proxy_and_a_forged_forwarded_host_does_not(proxy) -> None:
    url = proxy["url"]
    _, texts = asyncio.run(widget_turn(url, None, "密码忘了", url))
    assert any(PASSWORD_PAGE in text for text in texts), texts
    # a page elsewhere cannot pass as the assistant's own by naming itself the forwarded host
    forged = requests.get(
        f"{url}/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        headers={"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"},
        timeout=10,
    )
    assert forged.status_code == 403


def test_rasa_webchat_with_default_options_answers_through_the_proxy(proxy, tmp_path) -> None:
    """#30: the community widget, with its documented snippet and no options beyond the
    address, on a page of another origin, through nginx in front of two servers."""
    with webchat.embedding_page(proxy["page_port"], proxy["url"], tmp_path) as page:
        texts, links = webchat.ask_in_webchat(page, "学信网密码忘了")
    assert any("找回密码" in text for text in texts), texts
    assert PASSWORD_PAGE in links, links


def test_a_wechat_message_through_the_proxy_gets_its_passive_reply(proxy) -> None:
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    params = {
        "signature": protocol.signature(WECHAT_TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    open_id = f"o{uuid.uuid4().hex[:20]}"
    reply = requests.post(
        f"{proxy['url']}/webhooks/wechat/webhook",
        params=params,
        data=inbound(open_id, "text", "880001", Content="忘记密码了").encode(),
        timeout=30,
    )
    assert reply.status_code == 200
    fields = protocol.parse_xml(reply.content)
    assert fields["ToUserName"] == open_id and PASSWORD_PAGE in fields["Content"]


def test_the_widget_through_the_proxy_gets_an_agent_s_words_from_either_server(proxy) -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; scripts/browser.sh installs it")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    first, second = proxy["rasa"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{proxy['url']}/webhooks/help/")
        page.locator(".chsi-bot").first.wait_for(timeout=30000)
        page.fill(".chsi-input", "忘记密码了")
        page.press(".chsi-input", "Enter")
        page.locator(".chsi-bot", has_text="找回密码").last.wait_for(timeout=30000)
        sender = page.evaluate(
            "Object.keys(sessionStorage).map(k => JSON.parse(sessionStorage[k]).sender)[0]"
        )
        assert takeover_call(first, "pause", sender, KEY).status_code == 200
        page.locator(".chsi-bot", has_text=replies()["takeover_joined"]).wait_for(timeout=20000)
        said = takeover_call(second, "say", sender, KEY, text="我是客服，请讲。")
        assert said.status_code == 200
        page.locator(".chsi-agent", has_text="我是客服，请讲。").wait_for(timeout=20000)
        assert takeover_call(second, "resume", sender, KEY).status_code == 200
        page.locator(".chsi-bot", has_text=replies()["takeover_ended"]).wait_for(timeout=20000)
        browser.close()


def test_the_systemd_units_restart_keep_to_loopback_and_read_the_settings() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {unit.name for unit in units} == {
        "chsi-actions.service",
        "chsi-rasa@.service",
        "chsi-staff.service",
    }
    settings = (DEPLOY / "systemd" / "assistant.env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z_]+)=", settings, re.M))
    assert {"DATABASE_URL", "REDIS_URL", "TAKEOVER_SECRET", "ACTION_SERVER_TOKEN"} <= documented
    for unit in units:
        parsed = configparser.ConfigParser(strict=False, interpolation=None)
        parsed.read_string(unit.read_text(encoding="utf-8").replace("\\\n", " "))
        service = parsed["Service"]
        assert service["Restart"] == "on-failure", unit.name
        assert service["EnvironmentFile"] == "/etc/chsi-assistant/assistant.env", unit.name
        assert service["User"] == "chsi" and service["NoNewPrivileges"] == "true", unit.name
        command = service["ExecStart"].split()
        assert command[0] == "/opt/chsi-assistant/.venv/bin/python" and command[1] == "-m"
        assert (ROOT / command[2].replace(".", "/")).with_suffix(".py").exists() or (
            ROOT / command[2] / "__main__.py"
        ).exists(), unit.name
        if "--host" in command or "--interface" in command:
            flag = "--host" if "--host" in command else "--interface"
            assert command[command.index(flag) + 1] == "127.0.0.1", unit.name
    actions = (DEPLOY / "systemd" / "chsi-actions.service").read_text(encoding="utf-8")
    assert "ACTION_SERVER_HOST=127.0.0.1" in actions
    rasa = configparser.ConfigParser(strict=False, interpolation=None)
    rasa.read_string((DEPLOY / "systemd" / "chsi-rasa@.service").read_text(encoding="utf-8"))
    service = rasa["Service"]  # the supervisor's READY=1 and watchdog (runtime/workers.py)
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) >= 10 and "WORKERS_STATUS_PORT=1%i" in service["Environment"]
    assert {"WORKERS_STATUS_URLS", "WORKER_HANG_SECONDS", "MAX_CONNECTIONS"} <= documented
