"""The real servers for end-to-end tests (harness/servers.py), a student's chat over REST, the
help-page widget's live-takeover stream, and the console's signed takeover calls."""

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from core import signed_calls
from harness import servers as launcher
from harness.servers import Servers


@contextlib.contextmanager
def running(
    model: Path,
    tmp: Path,
    env: dict[str, str],
    rasa_servers: int = 1,
    action_server: bool = True,
    compact: bool = True,
) -> Iterator[Servers]:
    """harness.servers.running, failing the test (with the server's log) when a server fails."""
    try:
        with launcher.running(
            model, tmp, env, rasa_servers, action_server, compact=compact
        ) as servers:
            yield servers
    except launcher.ServerError as error:
        pytest.fail(str(error))


class Chat:
    """One student's conversation over the REST channel, with any of the given servers."""

    def __init__(self, base: str, sender: str | None = None, token: str | None = None) -> None:
        self.url = f"{base}/webhooks/rest/webhook"
        self.sender = sender or f"e2e-{uuid.uuid4().hex[:8]}"
        self.token = token

    @classmethod
    def widget(cls, base: str) -> "Chat":
        """A conversation as the help-page widget has it: issued by the server, with its token."""
        issued = requests.post(f"{base}/webhooks/rest/session", timeout=30)
        assert issued.status_code == 200, issued.text
        return cls(base, issued.json()["sender"], issued.json()["token"])

    def post(self, text: str, url: str | None = None, **extra: str) -> list[dict]:
        token = {"token": self.token} if self.token else {}
        response = requests.post(
            url or self.url,
            json={"sender": self.sender, "message": text, **token, **extra},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def say(self, text: str, url: str | None = None, **extra: str) -> str:
        """Sends one message; returns all reply texts joined, with button titles and payloads."""
        messages = self.post(text, url, **extra)
        assert messages, f"empty reply to {text[:40]!r}"
        parts = []
        for message in messages:
            assert message.get("text", "").strip(), f"a reply without text to {text[:40]!r}"
            parts.append(message["text"])
            parts += [f"[{b['title']}]({b['payload']})" for b in message.get("buttons", [])]
        return "\n".join(parts)


class Stream:
    """The widget's Server-Sent Events stream for one conversation, read in a thread.

    Read with http.client on a socket of its own: closing shuts that socket at once, where a
    `requests` stream closed from another thread waits for the server's next keep-alive."""

    def __init__(self, rasa: str, chat: Chat) -> None:
        self.pushed: list[dict] = []
        address = urllib.parse.urlsplit(rasa)
        self.connection = http.client.HTTPConnection(address.netloc, timeout=60)
        query = urllib.parse.urlencode({"sender": chat.sender, "token": chat.token or ""})
        self.connection.request("GET", f"/webhooks/rest/stream?{query}")
        self.reply = self.connection.getresponse()
        assert self.reply.status == 200
        assert self.reply.getheader("Content-Type", "").startswith("text/event-stream")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while line := self.reply.readline():
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith("data: "):
                    self.pushed.append(json.loads(text[len("data: ") :]))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # closed
            pass

    def wait_for(self, count: int, seconds: float = 20) -> list[dict]:
        deadline = time.monotonic() + seconds
        while len(self.pushed) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.pushed)

    def close(self) -> None:
        if self.connection.sock is not None:
            with contextlib.suppress(OSError):
                self.connection.sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()


def takeover_call(
    rasa: str, step: str, conversation_id: str, key: str, **fields: str
) -> requests.Response:
    """A live-takeover call to a Rasa server, signed as the staff console signs it."""
    body = json.dumps({"conversation_id": conversation_id, "agent": "tester", **fields}).encode()
    headers = signed_calls.signed_headers(key, body)
    return requests.post(f"{rasa}/webhooks/takeover/{step}", data=body, headers=headers, timeout=30)


async def widget_turn(
    server: str, session_id: str | None, text: str, origin: str
) -> tuple[str, list[str]]:
    """Connects as a page at `origin` would, asks for `session_id` (None: a new one), says
    `text`, and returns the session the server confirmed and the texts of the bot_uttered
    events that follow."""
    client = socketio.AsyncClient(reconnection=False)
    said: asyncio.Queue[dict] = asyncio.Queue()
    confirmed: asyncio.Queue[str] = asyncio.Queue()
    client.on("bot_uttered", said.put)
    client.on("session_confirm", confirmed.put)
    # polling: the websocket transport of this python-socketio needs a newer aiohttp than Rasa's
    await client.connect(server, transports=["polling"], headers={"Origin": origin})
    try:
        await client.emit("session_request", {"session_id": session_id})
        session = await asyncio.wait_for(confirmed.get(), 10)
        await client.emit("user_uttered", {"message": text, "session_id": session})
        texts = [(await asyncio.wait_for(said.get(), 30)).get("text", "")]
        while True:  # the rest of this turn's messages
            try:
                texts.append((await asyncio.wait_for(said.get(), 2)).get("text", ""))
            except asyncio.TimeoutError:
                return session, texts
    finally:
        await leave(client)


async def leave(client: socketio.AsyncClient) -> None:
    """Leaves without waiting for the open long poll, which the server answers only at its next
    ping (about 30 s), as a closed tab does; the close packet is queued but may not be sent, and
    the server then drops the session at its ping timeout."""
    await client.eio.disconnect(abort=True)


def wait_until_answers(url: str, seconds: float = 60) -> None:
    """Returns once GET `url` answers 200, or after `seconds` (the test then fails on its own)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not launcher.answers(url):
        time.sleep(0.1)
