"""A simulated Tencent server side for the WeChat and WeCom channel tests."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from harness.servers import free_port

SECRET = "test-app-secret"


class ApiStub:
    """Tencent's token, message-send and media endpoints on loopback, recording what they get."""

    def __init__(self) -> None:
        self.token_requests = 0
        self.busy = 0  # how many sends to answer with "system busy" (errcode -1) first
        self.refusals: list[int] = []  # errcodes to answer the next sends with, in turn
        self.agents_online: list[dict] = []  # what getonlinekflist answers
        self.sent: list[dict] = []
        self.media: dict[str, bytes] = {}  # media id -> the file media/get serves
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                if self.path.startswith("/cgi-bin/customservice/getonlinekflist"):
                    self._json({"kf_online_list": stub.agents_online})
                    return
                if self.path.startswith("/cgi-bin/media/get"):
                    found = stub.media.get(query.get("media_id", [""])[0])
                    if found is None or not query.get("access_token", [""])[0].startswith("T"):
                        self._json({"errcode": 40007, "errmsg": "invalid media_id"})
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(found)))
                    self.end_headers()
                    self.wfile.write(found)
                    return
                # WeChat: /cgi-bin/token?…secret=; WeCom: /cgi-bin/gettoken?…corpsecret=
                if self.path.startswith(("/cgi-bin/token", "/cgi-bin/gettoken")) and (
                    f"secret={SECRET}" in self.path
                ):
                    stub.token_requests += 1
                    self._json({"access_token": f"T{stub.token_requests}", "expires_in": 7200})
                else:
                    self._json({"errcode": 40013, "errmsg": "invalid appid"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if stub.refusals:
                    self._json({"errcode": stub.refusals.pop(0), "errmsg": "refused"})
                    return
                if stub.busy > 0:
                    stub.busy -= 1
                    self._json({"errcode": -1, "errmsg": "system error"})
                    return
                stub.sent.append({"path": self.path, **body})
                self._json({"errcode": 0, "errmsg": "ok"})

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def inbound(open_id: str, kind: str, msg_id: str | None = None, **fields: str) -> str:
    parts = [
        "<ToUserName><![CDATA[gh_test]]></ToUserName>",
        f"<FromUserName><![CDATA[{open_id}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        f"<MsgType><![CDATA[{kind}]]></MsgType>",
    ]
    parts += [f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()]
    if msg_id:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return "<xml>" + "".join(parts) + "</xml>"


# Hostile XML: entity expansion (a billion laughs) and an external entity.
BOMB = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType>
<Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<xml><MsgType>text</MsgType><Content>&e;</Content></xml>"""


def stored_user_turns(database: str, sender_id: str) -> int:
    """How many user messages of `sender_id` the SQLite database at `database` (a URL) holds."""
    import sqlite3

    with sqlite3.connect(database[len("sqlite:///") :]) as db:
        return db.execute(
            "SELECT count(*) FROM events WHERE sender_id = ? AND type_name = 'user'", (sender_id,)
        ).fetchone()[0]


def sent_to(stub: ApiStub, user: str, count: int, seconds: float = 60) -> list[str]:
    """The texts the channel sent `user` through the API, once there are `count` (or time is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        texts = [m["text"]["content"] for m in stub.sent if m.get("touser") == user]
        if len(texts) >= count:
            return texts
        time.sleep(0.1)
    return [m["text"]["content"] for m in stub.sent if m.get("touser") == user]
