"""The tests' fixtures. `make test` trains the model before pytest runs."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import screenshots as made_screenshots
from harness.databases import migrate
from harness.screenshots import Screenshot
from tests.helpers import FAQ, MODEL, ROOT, load_yaml, new_postgres_database, require_redis
from tests.tencent_sim import ApiStub


@pytest.fixture(scope="session")
def model_path() -> Path:
    if not MODEL.exists():
        pytest.fail(
            "No trained model at models/assistant.tar.gz: run `make test`, which trains it."
        )
    return MODEL


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    return load_yaml(ROOT / "domain.yml")


@pytest.fixture(scope="session")
def faq_text() -> str:
    return FAQ.read_text(encoding="utf-8")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'assistant.db'}"
    migrate(url)
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with new_postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture(scope="session")
def screenshot_set() -> list[Screenshot]:
    """Phone screenshots of CHSI's pages, made for the tests (harness/screenshots.py)."""
    if not os.path.exists(made_screenshots.CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; scripts/browser.sh installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return made_screenshots.render()


@pytest.fixture(scope="module")
def stub() -> Iterator[ApiStub]:
    """A simulated Tencent API (tests/tencent_sim.py), one per test module: modules count what
    it received."""
    api = ApiStub()
    yield api
    api.server.shutdown()
