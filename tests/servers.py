"""Starting the real servers for end-to-end tests: action server and one or more Rasa servers.

Each set runs on free loopback ports, with its own endpoints file and logs under a temporary
directory, and the environment it is given (DATABASE_URL, REDIS_URL…). Stopped on exit.
"""
import contextlib
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import requests

from tests.conftest import BIN, QUIET_ENV, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Servers:
    rasa: List[str]  # base URLs of the Rasa servers
    logs: Dict[str, Path] = field(default_factory=dict)
    processes: List[subprocess.Popen] = field(default_factory=list)

    def log_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in self.logs.values())


def wait_for(url: str, servers: Servers, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for proc, (name, log) in zip(servers.processes, servers.logs.items()):
            if proc.poll() is not None:
                pytest.fail(f"{name} exited early:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def running(model: Path, tmp: Path, env: Dict[str, str], rasa_servers: int = 1,
            action_server: bool = True) -> Iterator[Servers]:
    """Starts the servers; without `action_server`, the Rasa servers point at a closed port."""
    action_port = free_port()
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(
        (ROOT / "endpoints.yml").read_text(encoding="utf-8").replace(
            "http://localhost:5055/webhook", f"http://127.0.0.1:{action_port}/webhook"),
        encoding="utf-8")
    environment = {**QUIET_ENV, **env}
    commands: Dict[str, List[str]] = {}
    if action_server:
        commands["actions"] = [str(BIN / "rasa"), "run", "actions", "--actions", "actions",
                               "--port", str(action_port)]
    ports = [free_port() for _ in range(rasa_servers)]
    for i, port in enumerate(ports):
        commands[f"rasa{i}"] = [str(BIN / "rasa"), "run", "--model", str(model), "--port",
                                str(port), "--endpoints", str(endpoints),
                                "--credentials", "credentials.yml"]
    servers = Servers(rasa=[f"http://127.0.0.1:{port}" for port in ports])
    try:
        for name, command in commands.items():
            servers.logs[name] = tmp / f"{name}.log"
            servers.processes.append(subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=servers.logs[name].open("w"),
                stderr=subprocess.STDOUT))
        if action_server:
            wait_for(f"http://127.0.0.1:{action_port}/health", servers, 120)
        for url in servers.rasa:
            wait_for(f"{url}/", servers, 240)
        yield servers
    finally:
        for proc in servers.processes:
            proc.terminate()
        for proc in servers.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


class Chat:
    """One student's conversation over the REST channel, with any of the given servers."""

    def __init__(self, base: str, sender: Optional[str] = None) -> None:
        self.url = f"{base}/webhooks/rest/webhook"
        self.sender = sender or f"e2e-{uuid.uuid4().hex[:8]}"

    def post(self, text: str, url: Optional[str] = None, **extra: str) -> List[Dict]:
        response = requests.post(url or self.url, json={"sender": self.sender, "message": text,
                                                        **extra}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def say(self, text: str, url: Optional[str] = None, **extra: str) -> str:
        """Sends one message; returns all reply texts joined, with button titles and payloads."""
        messages = self.post(text, url, **extra)
        assert messages, f"empty reply to {text[:40]!r}"
        parts = []
        for message in messages:
            assert message.get("text", "").strip(), f"a reply without text to {text[:40]!r}"
            parts.append(message["text"])
            parts += [f"[{b['title']}]({b['payload']})" for b in message.get("buttons", [])]
        return "\n".join(parts)
