"""What the channels themselves say (replies.yml): when the assistant cannot answer, when a
message is not text or too long, when the help page cannot reach the server."""
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

import yaml

REPLIES_FILE = Path(__file__).with_name("replies.yml")


@lru_cache(maxsize=1)
def replies() -> Dict[str, str]:
    return yaml.safe_load(REPLIES_FILE.read_text(encoding="utf-8"))


def unavailable() -> List[Dict[str, Any]]:
    return [{"recipient_id": None, "text": replies()["unavailable"]}]
