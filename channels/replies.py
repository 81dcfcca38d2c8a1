"""What the channels themselves say (replies.yml): when the assistant cannot answer, when a
message is not text or too long, when the help page cannot reach the server."""

from pathlib import Path
from typing import Any

from core.yaml_files import read_yaml

REPLIES_FILE = Path(__file__).with_name("replies.yml")


def replies() -> dict[str, str]:
    """Reply name -> text (replies.yml)."""
    texts: dict[str, str] = read_yaml(REPLIES_FILE)
    return texts


def unavailable() -> list[dict[str, Any]]:
    return [{"recipient_id": None, "text": replies()["unavailable"]}]
