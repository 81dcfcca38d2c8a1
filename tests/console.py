"""The staff console for the tests: accounts, a real console process, and signed-in sessions."""

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import requests

from harness.servers import BIN, QUIET_ENV, ROOT, free_port
from tests.servers import wait_until_answers

PASSWORD = "correct horse battery staple"


def add_user(database: str, name: str, role: str, password: str = PASSWORD) -> None:
    result = subprocess.run(
        [str(BIN / "python"), "-m", "staff", "users", "add", name, "--role", role]
        + ["--password-stdin"],
        cwd=ROOT,
        env={**QUIET_ENV, "DATABASE_URL": database},
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def console_running(env: dict[str, str], log: Path) -> Iterator[str]:
    """`python -m staff console` on a free port with `env`; yields its address."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "python"), "-m", "staff", "console", "--port", str(port)],
        cwd=ROOT,
        env={**QUIET_ENV, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/login")
        yield url
    finally:
        process.terminate()
        process.wait(20)


def sign_in(session: requests.Session, url: str, name: str, password: str) -> requests.Response:
    """Posts the sign-in form as a browser would: the form's CSRF token, with its cookie."""
    form = session.get(f"{url}/login", timeout=10).text
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    data = {"csrf": csrf, "name": name, "password": password}
    return session.post(f"{url}/login", data=data, timeout=30, allow_redirects=False)


def signed_in(url: str, name: str, password: str = PASSWORD) -> tuple[requests.Session, str]:
    """A requests session signed in as `name`, and the session's CSRF token."""
    session = requests.Session()
    reply = sign_in(session, url, name, password)
    assert reply.status_code == 303, reply.text
    page = session.get(f"{url}/tickets", timeout=10).text
    return session, page.split('name="csrf" value="')[1].split('"')[0]
