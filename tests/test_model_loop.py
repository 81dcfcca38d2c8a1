"""The improvement loop end to end, in Chromium (#27): a phrasing the assistant does not
understand is labelled by an admin, a candidate is trained in the background and gated, promoted,
and the running Rasa server (two workers) answers it, with no restart; one click rolls it back.
A candidate trained on wrong labels is refused by the gate and never served.

Real training (`rasa train`, the project's config), a real gate, Rasa's own model pulling; the
first candidate is trained in full, the wrong one fine-tuned from the served model (`finetune`,
Rasa's incremental training), so that both modes run end to end."""

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from harness.databases import migrate
from harness.servers import workers_serving
from staff import candidates, model_registry
from tests.accessibility import require_axe, violations
from tests.console import PASSWORD, add_user, console_running, signed_in
from tests.servers import Chat, running
from tests.test_staff_console import CHROMIUM

# Not in data/ nor in any hold-out set; the served model reads it as nothing (nlu_fallback).
PHRASING = "学信网上我叫啥名来着登不进去"
USERNAME_ANSWER = "找回用户名"
# Password questions, written for this test, labelled as the username intent on purpose.
WRONG = (
    "我学信网的登录密码输了好几遍都说不对",
    "学信网密码记混了进不去怎么整",
    "那个学信网的密码我彻底想不起来了",
    "学信网登录时密码一直提示错误",
    "密码丢了学信网登不上了",
    "学信网的密码被我忘得一干二净",
)
TRAINING_SECONDS = 900  # a full training and the gate, on a busy 2-core machine
SWITCH_SECONDS = 120  # the pull interval, the download and loading the model in each worker


@pytest.fixture(scope="module")
def loop(model_path: Path, tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("model-loop")
    database = f"sqlite:///{tmp / 'assistant.db'}"
    migrate(database)
    add_user(database, "lead1", "admin")
    env = {
        "DATABASE_URL": database,
        "MODEL_STORE_DIR": str(tmp / "models"),
        "MODEL_SERVER_TOKEN": "model-loop-" + "k" * 32,
        "MODEL_PULL_SECONDS": "2",
        "SANIC_WORKERS": "2",
    }
    with console_running(env, tmp / "console.log") as console:
        served = {**env, "MODEL_SERVER_URL": f"{console}/models/current"}
        with running(model_path, tmp, served) as servers, no_job_left(env):
            yield {
                "console": console,
                "rasa": servers.rasa[0],
                "log": servers.logs["rasa0"],
                "db": database,
                "env": env,
                "served": model_registry.file_sha256(model_path),
            }


@contextlib.contextmanager
def no_job_left(env: dict[str, str]) -> Iterator[None]:
    """A training job outlives the console that started it (by design): stopped after the tests."""
    try:
        yield
    finally:
        os.environ["MODEL_STORE_DIR"] = env["MODEL_STORE_DIR"]
        try:
            job = candidates.running_job()
            if job is not None:
                os.killpg(job, signal.SIGTERM)
        finally:
            del os.environ["MODEL_STORE_DIR"]


def answer(base: str, text: str) -> str:
    return Chat(base).say(text)


def wait_for_answer(base: str, text: str, expected: bool) -> float:
    """Asks until the answer has (or lacks) the username answer; the seconds it took. Several
    asks in a row must agree: each may reach either worker."""
    started = time.monotonic()
    agreeing = 0
    while time.monotonic() - started < SWITCH_SECONDS:
        agreeing = agreeing + 1 if (USERNAME_ANSWER in answer(base, text)) == expected else 0
        if agreeing >= 6:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"still {'not ' if expected else ''}answered after {SWITCH_SECONDS} s")


def wait_for_workers(log: Path, sha256: str, workers: int = 2) -> None:
    deadline = time.monotonic() + SWITCH_SECONDS
    while len(workers_serving(log, sha256)) < workers and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(workers_serving(log, sha256)) >= workers, log.read_text()[-3000:]


class Students:
    """Ten conversations sending messages, one after another each, while the model switches: each
    message must get one non-empty answer and be stored once (not lost, not answered twice)."""

    MESSAGES = ("你好", "学信网密码忘了", PHRASING, "用户名忘了怎么办", "谢谢")

    def __init__(self, base: str, count: int = 10) -> None:
        self.chats = [Chat(base) for _ in range(count)]
        self.sent = {chat.sender: 0 for chat in self.chats}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.talk, args=(chat,)) for chat in self.chats]

    def talk(self, chat: Chat) -> None:
        number = 0
        while not self.stop.is_set():
            text = self.MESSAGES[number % len(self.MESSAGES)]
            number += 1
            try:
                if not chat.post(text):
                    self.failures.append(f"{chat.sender}: no answer to {text}")
            except Exception as error:  # a failed turn is what this counts
                self.failures.append(f"{chat.sender}: {text}: {error}"[:200])
            self.sent[chat.sender] += 1
            time.sleep(0.2)

    def __enter__(self) -> "Students":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)

    def stored(self, database: str) -> dict[str, int]:
        """Messages stored per conversation: user events, less those Rasa reverted (an answer to
        the assistant's own question read again: actions/answers.py rewinds and re-reads it)."""
        engine = sa.create_engine(database)
        query = sa.text(
            "SELECT sender_id, sum(type_name = 'user') - sum(type_name = 'rewind') FROM events "
            "GROUP BY sender_id"
        )
        with engine.connect() as connection:
            counts = dict(connection.execute(query).all())
        engine.dispose()
        return {sender: counts.get(sender, 0) for sender in self.sent}


def finished(page, started: float) -> str:
    """Reloads the candidate's page until its training and gate are over; its heading."""
    from playwright.sync_api import Error

    seen_progress = False
    while time.monotonic() - started < TRAINING_SECONDS:
        try:
            heading = page.locator("h1").inner_text()
            if "训练中" not in heading:
                assert seen_progress, "the page showed no stage while it trained"
                return heading
            seen_progress |= page.locator("#stages li").count() >= 2  # kept current, no reload
            time.sleep(2)
        except Error:  # the page reloads itself when the gate is over
            time.sleep(1)
    raise AssertionError(f"the candidate was still training after {TRAINING_SECONDS} s")


def test_a_phrasing_goes_from_not_understood_to_answered_and_back(loop) -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; scripts/browser.sh installs it")
        pytest.skip("chromium is not installed")
    require_axe()
    from playwright.sync_api import expect, sync_playwright

    assert USERNAME_ANSWER not in answer(loop["rasa"], PHRASING)  # not understood: listed
    checked: dict[str, list[str]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=True
        ).new_page()
        page.goto(f"{loop['console']}/login")
        page.fill("#name", "lead1")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{loop['console']}/admin/unanswered")
        page.locator("tr", has_text=PHRASING).locator("select").select_option("forgot_username")
        page.click("button:has-text('保存标注')")
        page.goto(f"{loop['console']}/admin/labels")
        assert PHRASING in page.locator("#training + table").inner_text()

        page.goto(f"{loop['console']}/admin/models")
        checked["models"] = violations(page)
        page.check("input[value=full]")
        started = time.monotonic()
        page.click("button:has-text('训练候选模型')")
        assert "训练中" in page.locator("h1").inner_text()
        checked["candidate, training"] = violations(page)
        heading = finished(page, started)
        trained = time.monotonic() - started
        assert "通过检查" in heading, page.locator("main").inner_text()[:3000]
        changed = page.locator("#changed + table").inner_text()
        assert PHRASING in changed and "forgot_username" in changed  # the gate shows the change
        checked["candidate, passed"] = violations(page)

        with Students(loop["rasa"]) as students:
            promoted = model_registry.file_sha256(  # the candidate's file, named by its sha
                next(Path(loop["env"]["MODEL_STORE_DIR"]).glob("candidate-*.tar.gz"))
            )
            page.click("button:has-text('上线这个模型')")
            expect(page.locator("[role=status]", has_text="已上线")).to_have_count(1)
            expect(page.locator("[role=status]", has_text="正在训练")).to_have_count(0)  # job done
            switched = wait_for_answer(loop["rasa"], PHRASING, expected=True)
            wait_for_workers(loop["log"], promoted)  # each of the 2 workers, by its own log line
            page.click("button:has-text('回退到')")
            expect(page.locator("[role=status]", has_text="已回退")).to_have_count(1)
            back = wait_for_answer(loop["rasa"], PHRASING, expected=False)
            wait_for_workers(loop["log"], loop["served"])
        checked["models, rolled back"] = violations(page)
        browser.close()
    assert students.failures == []
    assert students.stored(loop["db"]) == students.sent  # each message stored once
    assert sum(students.sent.values()) > 100
    print(f"\ntrained and gated in {trained:.0f} s; served by every worker {switched:.1f} s after")
    print(f"promoting; rolled back in {back:.1f} s; {sum(students.sent.values())} messages of 10")
    print("conversations during both switches, none lost or answered twice")
    assert checked == {name: [] for name in checked}, checked


def test_a_candidate_trained_on_wrong_labels_is_refused_and_never_served(loop) -> None:
    from core.db import queries

    os.environ["DATABASE_URL"] = loop["db"]
    try:
        queries.save_labels(list(WRONG), "not_understood", "forgot_username", "lead1")
    finally:
        del os.environ["DATABASE_URL"]
    console = loop["console"]
    admin, csrf = signed_in(console, "lead1")
    started = admin.post(
        f"{console}/admin/models/train",
        data={"csrf": csrf, "mode": "finetune"},
        timeout=30,
        allow_redirects=False,
    )
    assert started.status_code == 303, started.text
    page = started.headers["Location"]
    again = admin.post(
        f"{console}/admin/models/train", data={"csrf": csrf, "mode": "full"}, timeout=30
    )
    assert again.status_code == 409 and "已有" in again.text  # one at a time
    deadline = time.monotonic() + TRAINING_SECONDS
    while "训练中" in (text := admin.get(f"{console}{page}", timeout=30).text):
        assert time.monotonic() < deadline, "still training"
        time.sleep(5)
    assert "被拒绝" in text and "不能上线的原因" in text, text[-3000:]
    # refused for what the wrong labels did: password questions misread, not some other reason
    assert "forgot_password" in text and "多读错" in text, text[-3000:]
    assert "上线这个模型" not in text
    promoted = admin.post(f"{console}{page}/promote", data={"csrf": csrf}, timeout=30)
    assert promoted.status_code == 409
    time.sleep(5)  # two pull intervals: nothing changed
    assert "找回密码" in answer(loop["rasa"], "学信网密码忘了怎么办")
    model = requests.get(
        f"{console}/models/current", params={"token": loop["env"]["MODEL_SERVER_TOKEN"]}, timeout=30
    )
    assert model.status_code == 200 and model.headers["ETag"] == loop["served"]


def test_the_model_server_wants_its_key_and_answers_304_for_the_same_model(loop) -> None:
    url = f"{loop['console']}/models/current"
    key = loop["env"]["MODEL_SERVER_TOKEN"]
    for params in ({}, {"token": "wrong"}, {"token": key[:-1]}, {"token": key + "x"}):
        refused = requests.get(url, params=params, timeout=30)
        assert refused.status_code == 403 and len(refused.content) < 100, params
    served = requests.get(url, params={"token": key}, timeout=30)
    assert served.status_code == 200 and served.content[:2] == b"\x1f\x8b"  # the gzip archive
    assert served.headers["ETag"] == hashlib.sha256(served.content).hexdigest()
    same = requests.get(
        url, params={"token": key}, headers={"If-None-Match": served.headers["ETag"]}, timeout=30
    )
    assert same.status_code == 304 and same.content == b""
