"""Corrects the typos that pinyin input methods make: a word typed with the right sound but the
wrong characters (在见 for 再见, 密马 for 密码, 注测 for 注册, 毕叶 for 毕业, 帐号 for 账号).

Trained on the training examples: every word of two to four Chinese characters in them (jieba,
with the project's user dictionary) is indexed by its toneless pinyin. In a message, a run of two
to four characters that is not one of those words but sounds exactly like one is replaced by it,
unless jieba's dictionary knows the typed run as the more common word of the two (白白 stays 白白).
Place it after the normaliser and before the tokenizer; the tracker keeps what the student wrote.
Pinyin typed without any characters (xuexinwang mima wangle) becomes the training words it names
first (romanised.py). Its model also holds the pinyin and jieba's word frequencies as compact tables
(pinyin_table.py, jieba_table.py), which a server reads instead of pypinyin's and jieba's own dicts
(130 MB).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from understanding import cjk, jieba_table, pinyin_table, romanised, sections
from understanding.fingerprint import source_fingerprint
from understanding.pinyin_table import PinyinTable
from understanding.stored_component import StoredComponent

INDEX_FILE = "pinyin_index.json"
LONGEST_WORD = 4


def _jieba(dictionary_path: str | None) -> Any:
    import jieba

    jieba.initialize()
    if dictionary_path:
        for file in sorted(Path(dictionary_path).glob("*")):
            jieba.load_userdict(str(file))
    return jieba


def training_words(texts: Iterable[str], dictionary_path: str | None) -> list[str]:
    """The words of two to four Chinese characters in `texts`, as jieba splits them."""
    jieba = _jieba(dictionary_path)
    return [
        token
        for text in texts
        for token in jieba.lcut(text)
        if 2 <= len(token) <= LONGEST_WORD and all(cjk.is_ideograph(ch) for ch in token)
    ]


def index_words(words: Iterable[str], table: PinyinTable) -> dict[str, str]:
    """Toneless pinyin -> word (the first seen, in sorted order, for a stable model)."""
    index: dict[str, str] = {}
    for word in sorted(set(words)):
        index.setdefault(" ".join(table.sound(word)), word)
    return index


def common_characters(texts: Iterable[str], table: PinyinTable) -> dict[str, str]:
    """Toneless syllable -> the training data's most common character with that sound (pinyin
    typed without characters: romanised.py), ties to the first in code-point order."""
    counts: dict[str, int] = {}
    for text in texts:
        for char in text:
            if cjk.is_ideograph(char):
                counts[char] = counts.get(char, 0) + 1
    best: dict[str, str] = {}
    for char in sorted(counts):
        sound = table.sound(char)[0]
        if sound.isascii() and counts[char] > counts.get(best.get(sound, ""), 0):
            best[sound] = char
    return dict(sorted(best.items()))


def correct(
    text: str, index: dict[str, str], known: set, frequency: dict[str, int], table: PinyinTable
) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if not cjk.is_ideograph(text[i]):
            out.append(text[i])
            i += 1
            continue
        end = i
        while end < len(text) and cjk.is_ideograph(text[end]):
            end += 1
        out.append(_correct_run(text[i:end], index, known, frequency, table))
        i = end
    return "".join(out)


def _correct_run(
    run: str, index: dict[str, str], known: set, frequency: dict[str, int], table: PinyinTable
) -> str:
    if len(run) < 2:
        return run
    syllables = table.sound(run)
    if len(syllables) != len(run):  # pinyin did not map one syllable per character
        return run
    out: list[str] = []
    i = 0
    while i < len(run):
        for n in range(min(LONGEST_WORD, len(run) - i), 1, -1):
            typed = run[i : i + n]
            if typed in known:
                out.append(typed)
                break
            meant = index.get(" ".join(syllables[i : i + n]))
            if (
                meant
                and frequency.get(typed, 0) < frequency.get(meant, 1)
                and not _breaks_a_word(run, i, i + n, known)
            ):
                out.append(meant)
                break
        else:
            n = 1
            out.append(run[i])
        i += n
    return "".join(out)


def _breaks_a_word(run: str, start: int, end: int, known: set) -> bool:
    """Whether run[start:end] cuts through a trained word that only partly overlaps it: in
    是机器人在回复吗, 在回 sounds like 再会, but 回 begins 回复. A correction must not make the
    sentence worse, so such a run is left as typed."""
    for first in range(max(0, start - LONGEST_WORD + 1), end):
        for length in range(2, LONGEST_WORD + 1):
            last = first + length
            if last <= start or (first >= start and last <= end):
                continue  # no overlap, or inside the run being corrected
            if (first < start < last or first < end < last) and run[first:last] in known:
                return True
    return False


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True)
class PinyinSpellingCorrector(StoredComponent):
    """Replaces runs that sound like a training word but are not one (see the module)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"dictionary_path": None}

    @staticmethod
    def required_packages() -> list[str]:
        return ["pypinyin", "jieba"]  # pypinyin for training only: the model keeps its table

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The module's helpers and the character and pinyin tables decide the output too."""
        return source_fingerprint(
            sys.modules[__name__], cjk, pinyin_table, jieba_table, sections, romanised
        )

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        index: dict[str, str] | None = None,
        table: PinyinTable | None = None,
        known: set[str] | None = None,
        characters: dict[str, str] | None = None,
    ) -> None:
        super().__init__(config, model_storage, resource)
        self.table = table
        self.index: dict[str, str] = index or {}
        self.known = known if known is not None else set(self.index.values())
        self.characters: dict[str, str] = characters or {}
        self.frequency = _jieba(config.get("dictionary_path")).dt.FREQ

    def learn(self, training_data: TrainingData) -> None:
        words = training_words(
            (example.get(TEXT) or "" for example in training_data.training_examples),
            self._config.get("dictionary_path"),
        )
        self.table = PinyinTable.from_pypinyin()
        self.index = index_words(words, self.table)
        self.known = set(self.index.values()) | set(words)
        self.characters = common_characters(
            (example.get(TEXT) or "" for example in training_data.training_examples), self.table
        )

    def save(self, directory: Path) -> None:
        assert self.table is not None  # learned
        self.table.save(directory)
        jieba_table.save(directory, *jieba_table.build())
        (directory / INDEX_FILE).write_text(
            json.dumps(
                {"index": self.index, "known": sorted(self.known), "characters": self.characters},
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )

    @classmethod
    def restored(cls, directory: Path) -> dict[str, Any]:
        stored = json.loads((directory / INDEX_FILE).read_text(encoding="utf-8"))
        table = PinyinTable.load(directory)
        # before anything makes jieba read its own dictionary (this component comes before the
        # tokenizer, and its __init__ loads the user dictionary)
        jieba_table.install(directory)
        return {
            "index": stored["index"],
            "table": table,
            "known": set(stored["known"]),
            "characters": stored.get("characters", {}),
        }

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text and self.table is not None:
                text = romanised.convert(text, self.index, self.characters)
                message.set(TEXT, correct(text, self.index, self.known, self.frequency, self.table))
        return messages
