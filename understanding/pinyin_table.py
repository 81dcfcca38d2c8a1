r"""Toneless pinyin of Chinese text, exactly as pypinyin's `lazy_pinyin` gives it, from a table
of about 1 MB.

pypinyin keeps its 47,000 phrases and 42,000 characters as Python lists and strings: 55 MB of
each worker's memory (tracemalloc), for a speller that only asks for the sound of short runs of
characters. The table holds the same answers as one bytes object, built from pypinyin when the
model is trained and saved with it, so a server never imports pypinyin.

The bytes hold one section per character, in code point order: the character's own reading, then
every phrase it begins (without that first character) with the phrase's readings:

    <reading>\n<rest of phrase>\t<reading>\x1f<reading>…\n<rest of phrase>\t…\n

and it is read as pypinyin reads text:
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

import bisect
import functools
import json
import re
from array import array
from collections.abc import Iterator
from pathlib import Path

SEPARATOR = "\x1f"  # between the readings of a phrase
MAX_REMEMBERED_RUNS = 8192


class PinyinTable:
    """The readings of pypinyin's characters and phrases (see the module); `sound(text)`."""

    def __init__(self, pattern: str, data: bytes, chars: array, starts: array) -> None:
        self._chinese = re.compile(pattern)
        self._data, self._chars, self._starts = data, chars, starts
        # students type the same few runs of characters (py-spy: pypinyin took 4 % of a
        # worker's time under load before its answers were remembered)
        self.sound = functools.lru_cache(maxsize=MAX_REMEMBERED_RUNS)(self._sound)

    # ---- reading ------------------------------------------------------------------------------

    def _sound(self, text: str) -> tuple[str, ...]:
        """lazy_pinyin(text) as a tuple."""
        out: list[str] = []
        for run in _runs(text, self._chinese):
            if not self._chinese.match(run[0]):
                out.append(run)
                continue
            for word in self._words(run):
                readings = self._phrase(word) if len(word) > 1 else None
                if readings is None:
                    readings = [self._char(ch) for ch in word]
                out.extend(readings)
        return tuple(out)

    def _section(self, char: str) -> tuple[int, int] | None:
        """The byte range of the character's section, if it has one."""
        i = bisect.bisect_left(self._chars, ord(char))
        if i == len(self._chars) or self._chars[i] != ord(char):
            return None
        return self._starts[i], self._starts[i + 1]

    def _begins_a_phrase(self, word: str) -> bool:
        section = self._section(word[0])
        if section is None:
            return False
        start, end = section
        own_end = self._data.index(b"\n", start, end)
        if len(word) == 1:
            return own_end + 1 < end
        return self._data.find(b"\n" + word[1:].encode(), own_end, end) != -1

    def _words(self, run: str) -> Iterator[str]:
        """pypinyin.seg.mmseg.seg.cut, which is strict: the longest phrase among the starts of
        what remains that begin some phrase; failing one, a single character, or every character
        when all that remains begins a phrase but holds none."""
        while run:
            length, phrase = 0, 0
            while length < len(run) and self._begins_a_phrase(run[: length + 1]):
                length += 1
                if length > 1 and self._phrase(run[:length]) is not None:
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

    def _phrase(self, word: str) -> list[str] | None:
        section = self._section(word[0])
        if section is None:
            return None
        start, end = section
        own_end = self._data.index(b"\n", start, end)
        found = self._data.find(b"\n" + word[1:].encode() + b"\t", own_end, end)
        if found == -1:
            return None
        begin = self._data.index(b"\t", found) + 1
        return self._data[begin : self._data.index(b"\n", begin)].decode().split(SEPARATOR)

    def _char(self, char: str) -> str:
        section = self._section(char)
        if section is None:
            return char
        start, end = section
        return self._data[start : self._data.index(b"\n", start, end)].decode()

    # ---- building and storing -----------------------------------------------------------------

    @classmethod
    def from_pypinyin(cls) -> PinyinTable:
        """The table of the installed pypinyin (imported here only: at training time)."""
        from pypinyin import Style
        from pypinyin.constants import PHRASES_DICT, PINYIN_DICT, RE_HANS
        from pypinyin.converter import DefaultConverter

        converter = DefaultConverter()  # lazy_pinyin's

        def readings(text: str) -> list[str]:
            items = converter.convert(text, Style.NORMAL, False, "default", True)
            return [item[0] for item in items]

        phrases: dict[str, list[str]] = {}
        for phrase in PHRASES_DICT:
            if len(phrase) < 2:  # pypinyin reads a single character by its own table
                raise ValueError(f"pypinyin has a one-character phrase: {phrase!r}")
            phrases.setdefault(phrase[0], []).append(phrase)
        codes = sorted(set(PINYIN_DICT) | {ord(first) for first in phrases})
        data, starts = bytearray(), array("I")
        for code in codes:
            char = chr(code)
            starts.append(len(data))
            (own,) = readings(char)
            data += own.encode() + b"\n"
            for phrase in sorted(phrases.get(char, ())):
                said = SEPARATOR.join(readings(phrase))
                data += phrase[1:].encode() + b"\t" + said.encode() + b"\n"
        starts.append(len(data))
        return cls(RE_HANS.pattern, bytes(data), array("I", codes), starts)

    def save(self, directory: Path) -> None:
        (directory / "pinyin_table.bin").write_bytes(self._data)
        (directory / "pinyin_table.json").write_text(
            json.dumps(
                {
                    "pattern": self._chinese.pattern,
                    "chars": self._chars.tobytes().hex(),
                    "starts": self._starts.tobytes().hex(),
                }
            ),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, directory: Path) -> PinyinTable:
        meta = json.loads((directory / "pinyin_table.json").read_text(encoding="utf-8"))
        chars, starts = array("I"), array("I")
        chars.frombytes(bytes.fromhex(meta["chars"]))
        starts.frombytes(bytes.fromhex(meta["starts"]))
        return cls(meta["pattern"], (directory / "pinyin_table.bin").read_bytes(), chars, starts)


def _runs(text: str, chinese: re.Pattern) -> Iterator[str]:
    """pypinyin.seg.simpleseg.simple_seg: alternating runs of Chinese and other characters."""
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or bool(chinese.match(text[i])) != bool(chinese.match(text[start])):
            yield text[start:i]
            start = i
