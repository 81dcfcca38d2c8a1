"""Framing, deadlines and the connection cap (core/http_guard.py) on every port the project opens:
the Rasa server with two workers, the action server and the staff console."""

import concurrent.futures
import contextlib
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from channels import limits
from channels.replies import replies
from core import http_guard, signed_calls
from harness.databases import migrate
from harness.servers import project_command
from tests.console import add_user, console_running, signed_in
from tests.servers import Chat, running
from tests.test_workers import cpu_seconds, worker_pids

# Timed (answers within a second, CPU spent, deadlines): with the machine to itself.
pytestmark = pytest.mark.alone

CAP = 48  # MAX_CONNECTIONS for these servers: small enough to reach in a test
TAKEOVER_KEY = "guard-takeover-key"
BODY_SECONDS = 6

# Each was seen to pin a worker (-1) or answer 500, or to be read as something else (4_4 as 44).
MALFORMED = {
    "negative length": b"Content-Length: -1\r\n",
    "letters": b"Content-Length: abc\r\n",
    "underscore": b"Content-Length: 4_4\r\n",
    "plus sign": b"Content-Length: +2\r\n",
    "superscript": "Content-Length: ²\r\n".encode(),
    "two lengths": b"Content-Length: 2\r\nContent-Length: 3\r\n",
    "space before colon": b"Content-Length : 2\r\n",
    "capital Chunked": b"Transfer-Encoding: Chunked\r\n",
    "gzip, no length": b"Transfer-Encoding: gzip\r\n",
    "chunked with a trailing space": b"Transfer-Encoding: chunked \r\n",
    "length and chunked": b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    "folded header": b"X-A: b\r\n c\r\nContent-Length: 2\r\n",
}


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x",
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 0",
        b"POST /webhook HTTP/1.1\r\ncontent-length:\t17 ",
        b"POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked",
        b"GET / HTTP/1.0",
    ],
)
def test_well_framed_heads_pass(head: bytes) -> None:
    assert http_guard.framing_problem(head) is None


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_each_malformed_framing_is_named(name: str) -> None:
    head = b"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\n" + MALFORMED[name].rstrip(b"\r\n")
    assert http_guard.framing_problem(head) is not None


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/2.0",
        b"GET /",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked",
        b"GET / HTTP/1.1\r\nno colon here",
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999",
    ],
)
def test_other_bad_heads_are_named(head: bytes) -> None:
    assert http_guard.framing_problem(head) is not None


@pytest.mark.parametrize("line", [b"0", b"1a", b"FFFF;name=value"])
def test_hex_chunk_sizes_pass(line: bytes) -> None:
    assert http_guard.chunk_line_problem(line) is None


@pytest.mark.parametrize("line", [b"4_4", b"-1", b"+4", b"0x10", b" 4", b"", b"123456789"])
def test_other_chunk_sizes_are_refused(line: bytes) -> None:
    assert http_guard.chunk_line_problem(line) == "chunk size"


@pytest.mark.processes
def test_the_sanic_code_it_wraps_is_the_one_pinned() -> None:
    """In a fresh process: once an app has started, Sanic's TouchUp has recompiled its methods."""
    shown = project_command(
        "python", "-c", "from core import http_guard as g; print(g.pinned_sources() == g.PINNED)"
    )
    assert shown.stdout.strip() == "True", shown.stderr


@pytest.fixture(scope="module")
def ports(model_path: Path, tmp_path_factory) -> Iterator[dict]:
    """A Rasa server with two workers, its action server and the staff console."""
    tmp = tmp_path_factory.mktemp("http-guard")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    add_user(database, "guard-admin", "admin")
    env = {
        "DATABASE_URL": database,
        "SANIC_WORKERS": "2",
        "MAX_CONNECTIONS": str(CAP),
        "TAKEOVER_SECRET": TAKEOVER_KEY,
        "SANIC_PROXIES_COUNT": "1",  # as behind deploy/nginx: the client is X-Forwarded-For's
        "SANIC_REQUEST_TIMEOUT": str(BODY_SECONDS),  # Sanic's own setting: the body's deadline
    }
    with (
        running(model_path, tmp, env) as servers,
        console_running(env, tmp / "console.log") as console,
    ):
        yield {
            "servers": servers,
            "rasa": servers.rasa[0],
            "by port": {
                "rasa": (servers.rasa[0], "/webhooks/rest/webhook"),
                "actions": (servers.actions, "/webhook"),
                "console": (console, "/login"),
            },
        }


def raw_request(base: str, head: bytes, body: bytes = b"{}") -> bytes:
    """Sends one request as bytes; returns the status line (b"" when the server just closed)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(head + b"\r\n" + body)
        try:
            return connection.recv(4096).split(b"\r\n")[0]
        except (ConnectionResetError, TimeoutError):
            return b""


def test_malformed_framing_gets_400_on_every_port_and_nobody_waits(ports) -> None:
    for name, (base, path) in ports["by port"].items():
        for kind, headers in MALFORMED.items():
            head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + headers
            for _ in range(20 if kind == "negative length" else 2):
                status = raw_request(base, head)
                assert status in (b"HTTP/1.1 400 Bad Request", b""), (name, kind, status)
                assert status, (name, kind)  # an answer, not only a closed connection
    workers = worker_pids(ports["servers"])
    assert len(workers) == 2
    before = [cpu_seconds(pid) for pid in workers]
    chat = Chat(ports["rasa"])
    for _ in range(12):  # the kernel spreads new connections over both workers
        started = time.monotonic()
        assert "密码" in chat.say("学信网密码忘了")
        assert time.monotonic() - started < 1.0
    time.sleep(1)
    spent = [cpu_seconds(pid) - was for pid, was in zip(workers, before, strict=True)]
    assert all(seconds < 2.0 for seconds in spent), spent  # nothing is spinning


def test_a_bad_chunk_size_gets_400(ports) -> None:
    base, path = ports["by port"]["rasa"]
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += b"Content-Type: application/json\r\n"
    assert raw_request(base, head, b"4_4\r\n" + b"x" * 68 + b"\r\n0\r\n\r\n").endswith(
        b" 400 Bad Request"
    )
    good = b'{"sender": "chunked-1", "message": "\xe4\xbd\xa0\xe5\xa5\xbd"}'
    assert raw_request(base, head, b"%x\r\n%b\r\n0\r\n\r\n" % (len(good), good)).endswith(
        b" 200 OK"
    )


def test_a_chunk_longer_than_its_size_gets_400(ports) -> None:
    """Its rest would have been read as the next chunk's size (a framing desync)."""
    base, path = ports["by port"]["rasa"]
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += b"Content-Type: application/json\r\n"
    assert raw_request(base, head, b"2\r\n{}abc\r\n0\r\n\r\n").endswith(b" 400 Bad Request")


def stopped_body(base: str, path: str) -> tuple[float, bytes]:
    """Sends a head and the start of its body, then nothing; how long the connection was held
    until the server closed it, and what the server said."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        started = time.monotonic()
        connection.sendall(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a": 1'
        )
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(4096):  # until the server closes
                answer += chunk
        return time.monotonic() - started, answer


def test_a_body_that_stops_coming_is_cut_off_and_its_connection_closed(ports) -> None:
    """After the 408 Sanic went on draining the body with no timer: the socket stayed open.
    Every port at once (each waits out its own deadline)."""
    targets = ports["by port"]
    with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
        results = dict(
            zip(targets, pool.map(lambda t: stopped_body(*t), targets.values()), strict=True)
        )
    for name, (held, answer) in results.items():
        assert answer.split(b"\r\n")[0].split(b" ")[1] in (b"408", b"503"), (name, answer[:60])
        assert held < BODY_SECONDS + 8, (name, held)


def trickled_head(base: str) -> tuple[float, bytes]:
    """Sends a head a line a second for as long as the server lets it; how long the connection
    was held, and what the server said."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        started = time.monotonic()
        connection.sendall(b"GET / HTTP/1.1\r\n")
        try:
            for _ in range(30):
                time.sleep(1)
                connection.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = connection.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        return time.monotonic() - started, answer


def test_a_trickled_head_is_cut_off_at_its_deadline(ports) -> None:
    bases = {name: base for name, (base, _) in ports["by port"].items()}
    with concurrent.futures.ThreadPoolExecutor(len(bases)) as pool:
        results = dict(zip(bases, pool.map(trickled_head, bases.values()), strict=True))
    limit = http_guard.HEAD_SECONDS + 6  # the deadline, and the check's interval
    for name, (held, answer) in results.items():
        assert held < limit, (name, held)  # Sanic's own timer let one run 81 s
        assert answer.startswith(b"HTTP/1.1 408") or answer == b"", (name, answer[:40])


def closed_by_the_server(connections: list[socket.socket], enough: int, seconds: float) -> int:
    """How many of `connections` the server closed (end of stream or reset), watching them all
    at once until `enough` are or `seconds` have passed; one at a time, the open ones cost a
    timeout each (19 s in all)."""
    closed = 0
    with selectors.DefaultSelector() as watching:
        for connection in connections:
            watching.register(connection, selectors.EVENT_READ, connection)
        deadline = time.monotonic() + seconds
        while closed < enough and watching.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in watching.select(left):
                watching.unregister(key.data)
                try:
                    closed += key.data.recv(1) == b""  # bytes would be an answer, not a close
                except ConnectionResetError:
                    closed += 1
    return closed


def test_connections_over_the_cap_are_closed_and_the_server_recovers(ports) -> None:
    base = ports["rasa"]
    host, port = base.removeprefix("http://").split(":")
    held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3 * CAP)]
    try:
        time.sleep(1)
        closed = closed_by_the_server(held, enough=CAP - 4, seconds=3)
        assert closed >= CAP - 4, closed  # two workers hold at most 2 × CAP of them
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.5)
    assert "密码" in Chat(base).say("密码忘记了怎么找回")


def test_the_root_does_not_tell_the_rasa_version(ports) -> None:
    root = requests.get(f"{ports['rasa']}/", timeout=10)
    assert root.status_code == 200 and "rasa" not in root.text.lower()
    assert "3.6" not in root.text
    assert requests.get(f"{ports['rasa']}/version", timeout=10).status_code == 404


def test_inputs_that_answered_500_get_a_clear_4xx(ports) -> None:
    rest = f"{ports['rasa']}/webhooks/rest/webhook"
    json_body = {"Content-Type": "application/json"}
    lone = b'{"sender": "s-500", "message": "hi", "message_id": "\\ud800"}'
    assert requests.post(rest, data=lone, headers=json_body, timeout=10).status_code == 400
    nested = b'{"sender": "s-500", "message": "hi", "metadata": {"a": ' + b"[" * 1000
    nested += b"]" * 1000 + b"}}"
    assert requests.post(rest, data=nested, headers=json_body, timeout=10).status_code == 400
    body = b'{"conversation_id": "s-500", "agent": "x"}'
    for digits in ("²", "¹²³⁴"):  # str.isdigit() says yes to both
        changed = {"X-Takeover-Timestamp": digits.encode("utf-8")}
        headers = {**signed_calls.signed_headers(TAKEOVER_KEY, body), **changed}
        url = f"{ports['rasa']}/webhooks/takeover/pause"
        call = requests.post(url, data=body, headers=headers, timeout=10)
        assert call.status_code in (401, 403), call.status_code
    base, _ = ports["by port"]["rasa"]
    signed = signed_calls.signed_headers(TAKEOVER_KEY, body)
    head = b"POST /webhooks/takeover/pause HTTP/1.1\r\nHost: x\r\n"
    for name in (signed_calls.TIMESTAMP, signed_calls.NONCE):
        head += f"{name}: {signed[name]}\r\n".encode()
    head += b"X-Takeover-Signature: \xff\xff\xff\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n" % len(body)
    assert raw_request(base, head, body).split(b" ")[1] in (b"401", b"403")
    console = ports["by port"]["console"][0]
    admin, _ = signed_in(console, "guard-admin")
    assert admin.get(f"{console}/tickets/1/messages?after=²", timeout=10).status_code == 404
    form = requests.Session()
    form.get(f"{console}/login", timeout=10)
    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n'
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n+AGEAYgBj-\r\n--b--\r\n"
    )
    login = form.post(
        f"{console}/login",
        data=multipart,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        timeout=10,
    )
    assert 400 <= login.status_code < 500, login.status_code


def test_one_address_is_slowed_down_and_others_are_not(ports) -> None:
    """One client opened 32 tickets a second, a new sender id each; now an address gets
    MESSAGES_PER_ADDRESS messages a minute, across both workers, and then a polite 429."""
    rest = f"{ports['rasa']}/webhooks/rest/webhook"
    flooding = {"X-Forwarded-For": "203.0.113.7"}

    def send(number: int) -> int:
        body = {"sender": f"flood-{number}", "message": "/request_human"}
        return requests.post(rest, json=body, headers=flooding, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(limits.MESSAGES_PER_ADDRESS + 20)))
    assert statuses.count(200) == limits.MESSAGES_PER_ADDRESS, statuses
    assert statuses.count(429) == 20
    slowed = requests.post(
        rest, json={"sender": "flood-x", "message": "你好"}, headers=flooding, timeout=60
    )
    assert slowed.status_code == 429 and slowed.json()[0]["text"] == replies()["rate_limited"]
    other = {"X-Forwarded-For": "198.51.100.9"}
    fine = requests.post(rest, json={"sender": "other-1", "message": "你好"}, headers=other)
    assert fine.status_code == 200 and fine.json()
