"""The real servers for end-to-end tests (harness/servers.py), and a student's chat over REST."""

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness import servers as launcher
from harness.servers import Servers


@contextlib.contextmanager
def running(
    model: Path, tmp: Path, env: dict[str, str], rasa_servers: int = 1, action_server: bool = True
) -> Iterator[Servers]:
    """harness.servers.running, failing the test (with the server's log) when a server fails."""
    try:
        with launcher.running(model, tmp, env, rasa_servers, action_server) as servers:
            yield servers
    except launcher.ServerError as error:
        pytest.fail(str(error))


class Chat:
    """One student's conversation over the REST channel, with any of the given servers."""

    def __init__(self, base: str, sender: str | None = None) -> None:
        self.url = f"{base}/webhooks/rest/webhook"
        self.sender = sender or f"e2e-{uuid.uuid4().hex[:8]}"

    def post(self, text: str, url: str | None = None, **extra: str) -> list[dict]:
        response = requests.post(
            url or self.url, json={"sender": self.sender, "message": text, **extra}, timeout=60
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
