"""The tests' fixtures. `make test` trains the model before pytest runs."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.databases import migrate
from tests.helpers import FAQ, MODEL, ROOT, load_yaml, new_postgres_database, require_redis


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
