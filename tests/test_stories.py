"""Dialogue: every test story in tests/stories is predicted exactly, action by action."""

import re
from pathlib import Path

from tests.helpers import rasa


def test_stories_have_no_prediction_errors(model_path: Path, tmp_path: Path) -> None:
    result = rasa(
        "test",
        "core",
        "--model",
        str(model_path),
        "--stories",
        "tests/stories",
        "--fail-on-prediction-errors",
        "--out",
        str(tmp_path),
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # Two "Correct: N / N" lines: conversations, then actions. Both must be complete and non-empty.
    counts = re.findall(r"Correct:\s+(\d+) / (\d+)", output)
    assert len(counts) >= 2, output[-2000:]
    for correct, total in counts:
        assert int(total) > 0 and correct == total, output[-4000:]
    print("\n" + "\n".join(f"correct {c} / {t}" for c, t in counts))
