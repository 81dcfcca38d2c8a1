"""jieba's word frequencies from a table saved with the model, instead of its 75 MB dict.

jieba keeps its dictionary as `Tokenizer.FREQ`, a dict of 500,000 words and word prefixes: 75 MB
of each worker's own memory (the largest part after TensorFlow). The speller builds the same
entries into a table of a few MB when the model is trained (understanding/sections.py), and when
the model is loaded puts them in front of jieba before anything asks jieba to read its own
dictionary. What jieba asks of FREQ (`in`, `[]`, `get`, and `[]=` when a user dictionary adds
words) is answered by `Frequencies`: the words added since in a dict, the rest from the table.
Tokens, frequencies and jieba's total come out the same (tests/test_jieba_table.py).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from understanding.sections import Sections

logger = logging.getLogger(__name__)

NAME = "jieba_frequencies"
MAX_REMEMBERED_LOOKUPS = 65536
_MISSING = object()


class Frequencies:
    """A jieba Tokenizer's FREQ: the table's frequencies, and the words added since."""

    def __init__(self, table: Sections) -> None:
        self._table = table
        self._added: dict[str, int] = {}
        self._lookup = functools.lru_cache(maxsize=MAX_REMEMBERED_LOOKUPS)(self._from_table)

    def _from_table(self, word: str) -> int | None:
        found = self._table.get(word)
        return None if found is None else int(found)

    def get(self, word: str, default: Any = None) -> Any:
        if word in self._added:
            return self._added[word]
        found = self._lookup(word)
        return default if found is None else found

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word, _MISSING) is not _MISSING

    def __getitem__(self, word: str) -> int:
        found = self.get(word, _MISSING)
        if found is _MISSING:
            raise KeyError(word)
        return found

    def __setitem__(self, word: str, frequency: int) -> None:
        self._added[word] = frequency


def build() -> tuple[Sections, int]:
    """The main dictionary as jieba initialises it: (word and prefix frequencies, total)."""
    import jieba

    fresh = jieba.Tokenizer()
    fresh.initialize()
    return Sections.of({word: str(freq) for word, freq in fresh.FREQ.items()}), fresh.total


def save(directory: Path, table: Sections, total: int) -> None:
    table.save(directory, NAME, total=str(total))


def install(directory: Path) -> bool:
    """Puts the saved frequencies in front of jieba's default tokenizer, unless jieba has read
    its dictionary already or the model has no table (then jieba reads its own: the same
    frequencies, in more memory)."""
    import jieba

    if jieba.dt.initialized or not (directory / f"{NAME}.bin").exists():
        logger.info("jieba's word frequencies are read from its own dictionary.")
        return False
    table, extra = Sections.load(directory, NAME)
    jieba.dt.FREQ, jieba.dt.total = Frequencies(table), int(extra["total"])
    jieba.dt.initialized = True
    return True
