"""Shared paths and helpers. `make test` trains the model before pytest runs."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODEL = ROOT / "models" / "assistant.tar.gz"
FAQ = ROOT / "docs" / "source" / "faq-attachment-2.md"
HOLDOUT = sorted((ROOT / "tests" / "nlu" / "holdout").glob("*.yml"))

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
    """intent -> examples, from Rasa NLU YAML files."""
    examples: Dict[str, List[str]] = {}
    for path in paths:
        for block in load_yaml(path).get("nlu", []):
            if "intent" not in block:
                continue
            lines = [line[2:].strip() for line in block["examples"].splitlines()
                     if line.startswith("- ")]
            examples.setdefault(block["intent"], []).extend(lines)
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
