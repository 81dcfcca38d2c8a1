r"""Toneless pinyin of Chinese text, exactly as pypinyin's `lazy_pinyin` gives it, from a table
of about 1 MB.

pypinyin keeps its 47,000 phrases and 42,000 characters as Python lists and strings: 55 MB of
each worker's memory (tracemalloc), for a speller that only asks for the sound of short runs of
characters. The table holds the same answers in about 1 MB (understanding/sections.py): every
character's own reading and every phrase's readings, computed by pypinyin when the model is
trained and saved with it, so a server never imports pypinyin. It reads text as pypinyin does:
- text is split into runs of what pypinyin counts as Chinese (its own pattern, saved with the
  table) and the rest; the rest is kept as it is, one item per run;
- a Chinese run is cut into words by forward maximum matching (pypinyin.seg.mmseg, strict):
  the longest phrase among the starts of what remains that begin some phrase;
- a word that is a phrase gets the phrase's readings; any other word, each character's own (a
  character pypinyin has no reading for stays as it is).

tests/test_pinyin_table.py checks the table against lazy_pinyin on every phrase, every character
and random text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

from understanding.sections import Sections

SEPARATOR = "\x1f"  # between the readings of a phrase
MAX_REMEMBERED_RUNS = 8192


class PinyinTable:
    """The readings of pypinyin's characters and phrases (see the module); `sound(text)`."""

    def __init__(self, pattern: str, readings: Sections) -> None:
        self._chinese = re.compile(pattern)
        self._readings = readings
        # students type the same few runs of characters (py-spy: pypinyin took 4 % of a
        # worker's time under load before its answers were remembered)
        self.sound = functools.lru_cache(maxsize=MAX_REMEMBERED_RUNS)(self._sound)

    def __len__(self) -> int:
        return len(self._readings)

    def _sound(self, text: str) -> tuple[str, ...]:
        """lazy_pinyin(text) as a tuple."""
        out: list[str] = []
        for run in _runs(text, self._chinese):
            if not self._chinese.match(run[0]):
                out.append(run)
                continue
            for word in self._words(run):
                phrase = self._readings.get(word) if len(word) > 1 else None
                if phrase is not None:
                    out.extend(phrase.split(SEPARATOR))
                else:
                    out.extend(self._readings.get(char) or char for char in word)
        return tuple(out)

    def _words(self, run: str) -> Iterator[str]:
        """pypinyin.seg.mmseg.seg.cut, which is strict: the longest phrase among the starts of
        what remains that begin some phrase; failing one, a single character, or every character
        when all that remains begins a phrase but holds none."""
        while run:
            length, phrase = 0, 0
            while length < len(run) and self._readings.begins_longer(run[: length + 1]):
                length += 1
                if length > 1 and self._readings.get(run[:length]) is not None:
                    phrase = length
            if phrase:
                yield run[:phrase]
                run = run[phrase:]
            elif length == len(run):
                yield from run
                return
            else:
                yield run[0]
                run = run[1:]

    @classmethod
    def from_pypinyin(cls) -> PinyinTable:
        """The table of the installed pypinyin (imported here only: at training time)."""
        from pypinyin import Style
        from pypinyin.constants import PHRASES_DICT, PINYIN_DICT, RE_HANS
        from pypinyin.converter import DefaultConverter

        converter = DefaultConverter()  # lazy_pinyin's

        def readings(text: str) -> str:
            items = converter.convert(text, Style.NORMAL, False, "default", True)
            return SEPARATOR.join(item[0] for item in items)

        entries: dict[str, str] = {}
        for phrase in PHRASES_DICT:
            if len(phrase) < 2:  # pypinyin reads a single character by its own table
                raise ValueError(f"pypinyin has a one-character phrase: {phrase!r}")
            entries[phrase] = readings(phrase)
            entries.setdefault(phrase[0], readings(phrase[0]))
        for code in PINYIN_DICT:
            entries[chr(code)] = readings(chr(code))
        return cls(RE_HANS.pattern, Sections.of(entries))

    def save(self, directory: Path) -> None:
        self._readings.save(directory, "pinyin_table", pattern=self._chinese.pattern)

    @classmethod
    def load(cls, directory: Path) -> PinyinTable:
        readings, extra = Sections.load(directory, "pinyin_table")
        return cls(extra["pattern"], readings)


def _runs(text: str, chinese: re.Pattern) -> Iterator[str]:
    """pypinyin.seg.simpleseg.simple_seg: alternating runs of Chinese and other characters."""
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or bool(chinese.match(text[i])) != bool(chinese.match(text[start])):
            yield text[start:i]
            start = i
