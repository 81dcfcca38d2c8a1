"""The hardening checks of the public endpoints, run against a `make run` on this machine.

    WECHAT_TOKEN=tok WECHAT_APPID=wxapp WECHAT_APPSECRET=sec make run     # in one terminal
    WECHAT_TOKEN=tok .venv/bin/python -m harness.check_hardening      # in another

Prints one line per check: long messages (latency, the Rasa server's RSS before and after), a
WeChat request signed 30 days ago, "①" as a reply to a numbered question, a non-ASCII signature,
a reused nonce, what listens on 5005/5055, and whether any of twelve typed forms of an ID number,
a mobile or an email can be read in var/ or logs/ after being sent. Exits 1 if a check fails.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from harness.personal_data import SECRETS, TYPED_FORMS, readable

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:5005"
WECHAT = f"{BASE}/webhooks/wechat/webhook"
TOKEN = os.environ.get("WECHAT_TOKEN", "")
failed: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failed.append(name)


def listening() -> str:
    return subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout


def rss_mb(pid: int) -> float:
    found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert found, f"no VmRSS for process {pid}"
    return int(found.group(1)) / 1024


def signed(timestamp: str, nonce: str) -> dict:
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def wechat_text(user: str, content: str, msg_id: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[{user}]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]>"
        f"</MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def main() -> int:
    ports = listening()
    for port in ("5005", "5055"):
        lines = [line for line in ports.splitlines() if f":{port} " in line]
        check(
            f"port {port} on loopback only",
            bool(lines) and all("127.0.0.1:" in line for line in lines),
            " | ".join(line.split()[3] for line in lines),
        )
    listener = re.search(r":5005 .*?pid=(\d+)", ports)
    assert listener, "nothing listens on port 5005: is `make run` running?"
    pid = int(listener.group(1))
    requests.post(f"{BASE}/webhooks/rest/webhook", json={"sender": "warm", "message": "你好"})
    words = "我忘记了学信网的登录密码，手机号也换了，不知道怎么找回，明天就要用，请帮帮我。"
    for chars in (10_000, 100_000):
        text = (words * (chars // len(words) + 1))[:chars]
        before, started = rss_mb(pid), time.perf_counter()
        reply = requests.post(
            f"{BASE}/webhooks/rest/webhook",
            headers={"Content-Type": "application/json"},
            data=json.dumps(
                {"sender": f"long-{chars}", "message": text}, ensure_ascii=False
            ).encode(),
        )
        seconds, after = time.perf_counter() - started, rss_mb(pid)
        check(
            f"{chars:,}-character message",
            reply.ok and seconds < 2 and after - before < 300,
            f"{reply.status_code} in {seconds * 1000:.0f} ms, RSS {before:.0f} -> {after:.0f} MB",
        )
    if not TOKEN:
        check("WeChat checks", False, "set WECHAT_TOKEN as for make run")
    else:
        old = str(int(time.time()) - 30 * 86400)
        reply = requests.post(
            WECHAT, params=signed(old, "n-old"), data=wechat_text("o-attacker", "忘记密码", "1")
        )
        check(
            "request signed 30 days ago",
            reply.status_code == 403 and "stale" in reply.text,
            f"{reply.status_code} {reply.text}",
        )
        user = f"o-check{int(time.time())}"
        now = str(int(time.time()))
        requests.post(
            WECHAT,
            params=signed(now, f"a{now}"),
            data=wechat_text(user, "注册时提示身份证号重复", f"2{now}"),
        )
        reply = requests.post(
            WECHAT, params=signed(now, f"b{now}"), data=wechat_text(user, "①", f"3{now}")
        )
        content = re.search(r"<Content><!\[CDATA\[(.{0,30})", reply.text, re.S)
        check(
            "'①' as a reply",
            reply.status_code == 200 and bool(content),
            f"{reply.status_code} {content.group(1) if content else reply.text[:60]!r}",
        )
        reply = requests.post(
            WECHAT,
            params={**signed(now, f"c{now}"), "signature": "签名"},
            data=wechat_text(user, "hi", f"4{now}"),
        )
        check("non-ASCII signature", reply.status_code == 403, str(reply.status_code))
        reply = requests.post(
            WECHAT, params=signed(now, f"b{now}"), data=wechat_text(user, "用户名忘了", f"5{now}")
        )
        check(
            "nonce reused with another body",
            reply.status_code == 403 and "nonce" in reply.text,
            f"{reply.status_code} {reply.text}",
        )
    for variant in TYPED_FORMS:
        requests.post(
            f"{BASE}/webhooks/rest/webhook",
            json={"sender": "privacy-check", "message": f"我的信息是{variant}"},
        ).raise_for_status()
    # every file in var/ (the database, its WAL, the workers' turn queues) and every log
    stored = [path for path in (ROOT / "var").rglob("*") if path.is_file()]
    for path in [*stored, *(ROOT / "logs").glob("*.log")]:
        seen = readable(path.read_bytes().decode("utf-8", "replace"))
        hits = [s for s in SECRETS if s in seen]
        check(
            f"no personal data in {path.relative_to(ROOT)}",
            not hits,
            f"{len(TYPED_FORMS)} variants sent; readable: {hits or 'none'}",
        )
    log = (ROOT / "logs" / "rasa.log").read_text(encoding="utf-8", errors="replace")
    check(
        "no URL or traceback in logs/rasa.log",
        "signature=" not in log and "Traceback" not in log,
        "checked",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
