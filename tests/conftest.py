"""The tests' fixtures. `make test` trains the model before pytest runs.

Tests that start processes (the real servers, nginx, Chromium, the project's scripts) or read the
trained model are marked `processes`: `make test` runs them all, `make test-fast` the others,
for the edit loop. A test is marked by what it uses (a fixture that needs the model or draws
screenshots in Chromium, at any depth) or by hand (`pytestmark`); under `make test-fast`
(CHSI_FAST_TESTS=1), an unmarked test that starts a process fails and says to mark it.
"""

import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import screenshot_pages as made_screenshots
from harness.databases import migrate
from harness.screenshot_pages import Screenshot
from tests.helpers import FAQ, MODEL, ROOT, load_yaml, new_postgres_database, require_redis
from tests.tencent_sim import ApiStub

# Python asks `uname -p` the first time anyone wants the processor's name (Rasa and TensorFlow do
# on import), then keeps it: asked here, before a test runs, so that which test imports Rasa first
# does not decide whether it "starts a process".
platform.processor()

# Fixtures that start processes or need the trained model: a test using any of them, directly or
# through another fixture, is marked `processes`.
PROCESS_FIXTURES = frozenset(("model_path", "screenshot_set"))


# The files that take longest, longest first: `make test` hands whole files to its two pytest
# workers in this order (--dist loadfile --no-loadscope-reorder), so that the longest is not
# started last while the other worker has nothing left to do. Seconds of one worker, from the
# JUnit report of a full run, 2026-12-04 (`pytest -m "not alone" -n 2 --dist loadfile
# --junitxml=…`): test_model_loop 277 (before its second candidate was fine-tuned rather than
# trained in full), test_workers 77, test_takeover 74, test_rasa_patches 67, test_faults 67…
# A file not listed runs after these, in the usual order. xdist gives a worker its next file
# when two tests of its current one are left, so this is the order files are handed out, not
# a strict schedule.
SLOWEST_FIRST = (
    "test_model_loop.py",
    "test_faults.py",
    "test_workers.py",
    "test_takeover.py",
    "test_rasa_patches.py",
    "test_wechat.py",
    "test_pinyin_speller.py",
    "test_help_page.py",
    "test_deploy.py",
    "test_staff_console.py",
    "test_nlu_holdout.py",
    "test_compaction.py",
    "test_e2e_rest.py",
    "test_wecom.py",
    "test_stories.py",
    "test_several_servers.py",
    "test_screenshots.py",
    "test_storage.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


@pytest.fixture(autouse=True)
def _starts_no_process_unless_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `make test-fast`, starting a process from an unmarked test fails it."""
    if os.environ.get("CHSI_FAST_TESTS") != "1" or request.node.get_closest_marker("processes"):
        return
    import subprocess

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{request.node.nodeid} starts a process: mark it `processes` (tests/conftest.py)"
        )

    monkeypatch.setattr(subprocess, "Popen", refused)
    monkeypatch.setattr(os, "fork", refused)  # multiprocessing's fork start method


@pytest.fixture(scope="session")
def model_path() -> Path:
    if not MODEL.exists():
        pytest.fail(
            "No trained model at models/assistant.tar.gz: run `make test`, which trains it."
        )
    # loaded here as the Rasa server loads it (tests/test_rasa_patches.py: the same to the bit)
    from runtime import rasa_patches

    assert rasa_patches.patch_model_load()
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
    """Phone screenshots of CHSI's pages, made for the tests (harness/screenshot_pages.py)."""
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
