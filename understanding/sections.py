r"""A read-only map from short Chinese strings to text values, held as one bytes object.

Dictionaries of Chinese words (jieba's 500,000 word frequencies, pypinyin's phrases) cost 50 to
80 MB each as Python dicts of strings in every worker. Here the same entries take one byte string
of a few MB, grouped in sections by first character in code-point order:

    =<value of the one-character key>\n<rest of a key>\t<value>\n<rest of a key>\t<value>\n…

(`-\n` heads the section when the character alone is not a key). A section is found by bisecting
an array of code points; a key within it by a search for "\n<rest>\t", which can only match at
the start of a line (the rest of a key holds no "\n" or "\t", and values hold no "\n").
"""

from __future__ import annotations

import bisect
import json
from array import array
from collections.abc import Mapping
from pathlib import Path


class Sections:
    """Look-ups of `key -> value` and "does some longer key begin with this?"."""

    def __init__(self, data: bytes, chars: array, starts: array) -> None:
        self._data, self._chars, self._starts = data, chars, starts

    @classmethod
    def of(cls, entries: Mapping[str, str]) -> Sections:
        by_first: dict[str, dict[str, str]] = {}
        for key, value in entries.items():
            if not key or "\n" in key or "\t" in key or "\n" in value:
                raise ValueError(f"cannot hold the entry {key!r}: {value!r}")
            by_first.setdefault(key[0], {})[key] = value
        data, chars, starts = bytearray(), array("I"), array("I")
        for first in sorted(by_first):
            keys = by_first[first]
            chars.append(ord(first))
            starts.append(len(data))
            data += b"=" + keys[first].encode() + b"\n" if first in keys else b"-\n"
            for key in sorted(k for k in keys if len(k) > 1):
                data += key[1:].encode() + b"\t" + keys[key].encode() + b"\n"
        starts.append(len(data))
        return cls(bytes(data), chars, starts)

    def __len__(self) -> int:
        return len(self._data)

    def _section(self, first: str) -> tuple[int, int, int] | None:
        """(start, end of the head line, end) of the character's section, if it has one."""
        i = bisect.bisect_left(self._chars, ord(first))
        if i == len(self._chars) or self._chars[i] != ord(first):
            return None
        start, end = self._starts[i], self._starts[i + 1]
        return start, self._data.index(b"\n", start, end), end

    def get(self, key: str) -> str | None:
        section = self._section(key[0]) if key else None
        if section is None:
            return None
        start, head_end, end = section
        if len(key) == 1:
            head = self._data[start:head_end]
            return head[1:].decode() if head[:1] == b"=" else None
        found = self._data.find(b"\n" + _bytes(key[1:]) + b"\t", head_end, end)
        if found == -1:
            return None
        begin = self._data.index(b"\t", found + 1) + 1
        return self._data[begin : self._data.index(b"\n", begin)].decode()

    def begins_longer(self, start: str) -> bool:
        """Whether some key longer than one character begins with `start` (or is it)."""
        section = self._section(start[0]) if start else None
        if section is None:
            return False
        _, head_end, end = section
        if len(start) == 1:
            return head_end + 1 < end
        return self._data.find(b"\n" + _bytes(start[1:]), head_end, end) != -1

    def save(self, directory: Path, name: str, **extra: str) -> None:
        (directory / f"{name}.bin").write_bytes(self._data)
        index = {"chars": self._chars.tobytes().hex(), "starts": self._starts.tobytes().hex()}
        (directory / f"{name}.json").write_text(json.dumps({**index, **extra}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, name: str) -> tuple[Sections, dict[str, str]]:
        """The sections saved as `name`, and the extra values saved with them."""
        meta = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        chars, starts = array("I"), array("I")
        chars.frombytes(bytes.fromhex(meta.pop("chars")))
        starts.frombytes(bytes.fromhex(meta.pop("starts")))
        return cls((directory / f"{name}.bin").read_bytes(), chars, starts), meta


def _bytes(text: str) -> bytes:
    """UTF-8, a lone surrogate kept as bytes no key has (no key holds one)."""
    return text.encode("utf-8", "surrogatepass")
