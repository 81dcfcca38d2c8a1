"""Starting the real servers: an action server and one or more Rasa servers on free loopback ports.

Used by the benchmark and by the end-to-end tests. Each set gets its own endpoints file (the
project's, pointed at its action server) and logs in a directory of its own, and the environment
it is given (DATABASE_URL, REDIS_URL…). Stopped on exit.
"""

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Settings credentials.yml and endpoints.yml expand (unset: the WeChat channel is "not
# configured", no action server token).
CHANNEL_DEFAULTS = {
    name: ""
    for name in (
        "WECHAT_TOKEN",
        "WECHAT_APPID",
        "WECHAT_APPSECRET",
        "WECHAT_AES_KEY",
        "WECOM_TOKEN",
        "WECOM_AES_KEY",
        "WECOM_CORP_ID",
        "WECOM_SECRET",
        "WECOM_AGENT_ID",
        "ACTION_SERVER_TOKEN",
    )
}
QUIET_ENV = {
    **CHANNEL_DEFAULTS,
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "RASA_TELEMETRY_ENABLED": "false",
}


def project_command(
    program: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """One of the project's .venv programs (python, rasa, alembic) run from the project's root,
    quietly, with its output captured."""
    return subprocess.run(
        [str(BIN / program), *args],
        cwd=ROOT,
        env={**QUIET_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ServerError(RuntimeError):
    """A server exited or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Servers:
    """The running servers: their addresses, processes and logs."""

    rasa: list[str]  # base URLs of the Rasa servers
    actions: str = ""  # base URL of the action server
    logs: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: float = 0.0  # time.monotonic() when the processes were started

    def pid(self, name: str) -> int:
        return self.processes[name].pid


def workers_serving(log: Path, sha256: str) -> set[str]:
    """The Rasa workers (pids) that logged switching to the pulled model with this SHA-256
    (runtime/model_pulling.py): proof that each switched, where answers may all reach one."""
    pattern = re.compile(rf"Now serving the model {sha256[:16]} .*\(worker (\d+)\)")
    return set(pattern.findall(log.read_text(encoding="utf-8", errors="replace")))


def answers(url: str) -> bool:
    """Whether GET `url` answers 200 now."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_for(url: str, servers: Servers, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, proc in servers.processes.items():
            if proc.poll() is not None:
                raise ServerError(f"{name} exited early:\n{servers.logs[name].read_text()[-3000:]}")
        if answers(url):
            return
        time.sleep(0.2)
    raise ServerError(f"{url} did not answer within {seconds} s")


STORE_TYPE = "type: stores.tracker_store.MaskingSQLTrackerStore"


@contextlib.contextmanager
def running(
    model: Path,
    tmp: Path,
    env: dict[str, str],
    rasa_servers: int = 1,
    action_server: bool = True,
    enable_api: bool = False,
    compact: bool = True,
) -> Iterator[Servers]:
    """Starts the servers; without `action_server`, the Rasa servers point at a closed port;
    without `compact`, the tracker store reads whole sessions (stores/compaction.py)."""
    tmp.mkdir(parents=True, exist_ok=True)
    action_port = free_port()
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(
        (ROOT / "endpoints.yml")
        .read_text(encoding="utf-8")
        .replace("http://localhost:5055/webhook", f"http://127.0.0.1:{action_port}/webhook")
        .replace(STORE_TYPE, STORE_TYPE if compact else f"{STORE_TYPE}\n  compact: false"),
        encoding="utf-8",
    )
    # the servers of one set check each other's widget tokens (core/session_tokens.py), as the
    # servers of one deployment do with the same SESSION_SECRET
    environment = {"SESSION_SECRET": secrets.token_hex(32), **QUIET_ENV, **env}
    commands: dict[str, list[str]] = {}
    if action_server:
        commands["actions"] = [
            str(BIN / "python"),
            "-m",
            "runtime.action_server",
            "--port",
            str(action_port),
        ]
    ports = [free_port() for _ in range(rasa_servers)]
    for i, port in enumerate(ports):
        commands[f"rasa{i}"] = [
            str(BIN / "python"),
            "-m",
            "runtime.rasa_server",
            "run",
            "--model",
            str(model),
            "--port",
            str(port),
            "--interface",
            "127.0.0.1",
            "--endpoints",
            str(endpoints),
            "--credentials",
            "credentials.yml",
        ]
        if enable_api:
            commands[f"rasa{i}"].append("--enable-api")
    servers = Servers(
        rasa=[f"http://127.0.0.1:{port}" for port in ports],
        actions=f"http://127.0.0.1:{action_port}",
    )
    try:
        servers.started = time.monotonic()
        for name, command in commands.items():
            servers.logs[name] = tmp / f"{name}.log"
            servers.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=servers.logs[name].open("w"),
                stderr=subprocess.STDOUT,
            )
        if action_server:
            wait_for(f"http://127.0.0.1:{action_port}/health", servers, 120)
        for url in servers.rasa:
            wait_for(f"{url}/", servers, 240)
        yield servers
    finally:
        for proc in servers.processes.values():
            proc.terminate()
        for proc in servers.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
