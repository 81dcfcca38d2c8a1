"""scripts/setup.sh: a clear message when no supported Python exists, and a fast no-op rerun."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.processes  # runs scripts/setup.sh


def test_no_supported_python_says_what_to_install(tmp_path: Path) -> None:
    # A PATH with only a Python that Rasa 3.6 cannot use (or none), and no pyenv.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3.11"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "VENV": str(tmp_path / "venv"),
    }
    result = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "no Python 3.8, 3.9 or 3.10" in result.stderr
    assert "pyenv install 3.10" in result.stderr and "PYTHON=" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_rerun_with_nothing_changed_is_a_fast_no_op() -> None:
    start = time.monotonic()
    result = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "installing" not in result.stderr
    print(f"\nsetup re-run: {elapsed:.2f} s")
