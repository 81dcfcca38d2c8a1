"""Shared paths and helpers. `make test` trains the model before pytest runs."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from evaluation.holdout import HOLDOUT_DIR, read_examples

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
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

# Quiet TensorFlow and deprecation noise in the subprocesses the tests start.
QUIET_ENV = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "RASA_TELEMETRY_ENABLED": "false",
}


def rasa(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs the project's rasa CLI and returns its result, output captured."""
    return subprocess.run(
        [str(BIN / "rasa"), *args],
        cwd=ROOT,
        env=QUIET_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_yaml(path: Path) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def nlu_examples(paths: List[Path]) -> Dict[str, List[str]]:
    """intent -> examples, from Rasa NLU YAML files (read as `make eval` reads them)."""
    examples: Dict[str, List[str]] = {}
    for path in paths:
        for example in read_examples(path):
            examples.setdefault(example.intent, []).append(example.text)
    return examples


@pytest.fixture(scope="session")
def model_path() -> Path:
    if not MODEL.exists():
        pytest.fail("No trained model at models/assistant.tar.gz: run `make test`, which trains it.")
    return MODEL


@pytest.fixture(scope="session")
def domain() -> Dict[str, Any]:
    return load_yaml(ROOT / "domain.yml")


@pytest.fixture(scope="session")
def faq_text() -> str:
    return FAQ.read_text(encoding="utf-8")
