"""Paths, the FAQ's contacts and helpers that the tests share (their fixtures: conftest.py)."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaluation.holdout import HOLDOUT_DIR, read_examples
from harness import databases
from harness.servers import ROOT, project_command

MODEL = ROOT / "models" / "assistant.tar.gz"
FAQ = ROOT / "docs" / "source" / "faq-attachment-2.md"
HOLDOUT = sorted(HOLDOUT_DIR.glob("*.yml"))

# The FAQ's links and contacts, as the tests check them in replies and responses.
USERNAME_PAGE = "https://account.chsi.com.cn/account/password!rtvlgname"
PASSWORD_PAGE = "https://account.chsi.com.cn/account/password!retrive"
DUPLICATE_PAGE = "https://account.chsi.com.cn/account/help/sfzhcf.jsp"
FAQ_PAGE = "https://account.chsi.com.cn/account/help/index.jsp"
PASSWORD_PHONE = "010-82199588"  # FAQ section 二, 找回密码 方式三
HOTLINE = "010-67410388"  # FAQ section 五, 以上仍无法解决
EMAIL = "kefu@chsi.com.cn"

# Every step of every form: the messages that reach it, and the words of its question. A request
# for a person must leave the form from any of them, in every channel (#26: a request that came
# with a complaint got the form's question again).
FORM_STEPS = {
    "id_error": (["注册时身份证号提示重复"], "你看到的是哪一条提示"),
    "registered_before": (
        ["注册时身份证号提示重复", "2"],
        "你以前用这个身份证号在学信网注册过账号吗",
    ),
    "student_status": (["注册时身份证号提示重复", "2", "没注册过"], "在校生和毕业生不一样"),
}
# Requests for a person with a complaint about the effort, written for these tests.
COMPLAINING_REQUESTS = [
    "问这么多干嘛，烦死了，直接给我转人工",
    "跟你说不清楚，我要找真人客服",
    "弄了一晚上都不行，你们客服在吗",
]


def rasa(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs Rasa's command line as the servers run it (runtime/rasa_server.py: Rasa's own, with
    the project's patches) and returns its result, output captured."""
    return project_command("python", "-m", "runtime.rasa_server", *args, timeout=timeout)


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def nlu_examples(paths: list[Path]) -> dict[str, list[str]]:
    """Intent -> examples, from Rasa NLU YAML files (read as `make eval` reads them)."""
    examples: dict[str, list[str]] = {}
    for path in paths:
        for example in read_examples(path):
            examples.setdefault(example.intent, []).append(example.text)
    return examples


# ---- databases and Redis for the storage and several-server tests ------------------------------
# PostgreSQL and Redis run on every developer and CI machine of this project; elsewhere the tests
# that need them skip with the reason, except in CI (CI=true), where they must run.
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(what: str, error: Exception) -> None:
    reason = f"{what} is not reachable ({type(error).__name__}: {error})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run these tests")
    pytest.skip(reason)


@contextlib.contextmanager
def new_postgres_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards (harness.databases)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(databases.new_postgres_database(POSTGRES_ADMIN_URL))
        except Exception as error:
            unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL}", error)
        yield url


def require_redis() -> str:
    try:
        databases.redis_answers(REDIS_TEST_URL)
    except Exception as error:
        unavailable(f"Redis at {REDIS_TEST_URL}", error)
    return REDIS_TEST_URL
