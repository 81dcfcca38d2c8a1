"""The YAML tables that hold what the assistant says outside the domain (ticket texts, intent
titles, the channels' own replies): read once per process, on first use."""

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml


@lru_cache(maxsize=16)
def read_yaml(path: Path) -> Any:
    """The parsed content of `path`, cached: these files change only with a deployment."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))
