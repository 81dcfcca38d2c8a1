"""understanding/pinyin_table.py: the speller's pinyin, exactly pypinyin's lazy_pinyin, from a
table saved with the model (tests/test_pinyin_speller.py: a loaded model's worker never imports
pypinyin)."""

import random

import pytest
from pypinyin import lazy_pinyin
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT

from understanding.pinyin_table import PinyinTable


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> PinyinTable:
    """Built, saved and loaded again, as training and a server do."""
    directory = tmp_path_factory.mktemp("pinyin")
    PinyinTable.from_pypinyin().save(directory)
    return PinyinTable.load(directory)


def differences(table: PinyinTable, texts: list[str]) -> list[tuple[str, list, list]]:
    found = []
    for text in texts:
        ours, theirs = list(table.sound(text)), lazy_pinyin(text)
        if ours != theirs:
            found.append((text, ours, theirs))
    return found


def test_every_phrase_and_character_reads_as_in_pypinyin(table) -> None:
    assert differences(table, list(PHRASES_DICT)) == []
    assert differences(table, [chr(code) for code in PINYIN_DICT]) == []


def test_random_text_reads_as_in_pypinyin(table) -> None:
    """Phrases, characters and other symbols run together: the phrase boundaries move, so the
    words cut are not the phrases put in."""
    random.seed(2026)
    phrases, chars = list(PHRASES_DICT), [chr(code) for code in PINYIN_DICT]
    others = list("，。？! a1 〇\u3000") + ["𠀀", "\U0002a6e0", "\u9fff", "😀", "[身份证号]"]
    texts = []
    for _ in range(20_000):
        parts = []
        for _ in range(random.randint(1, 8)):
            pick = random.random()
            pool = phrases if pick < 0.5 else chars if pick < 0.85 else others
            parts.append(random.choice(pool))
        texts.append("".join(parts))
    # phrases overlapping by a character (银行 + 行长 -> 银行长): where the cut is decided
    starting: dict[str, list[str]] = {}
    for phrase in phrases:
        starting.setdefault(phrase[0], []).append(phrase)
    for _ in range(20_000):
        text = random.choice(phrases)
        for _ in range(random.randint(1, 4)):
            text += random.choice(starting.get(text[-1], [random.choice(phrases)]))[1:]
        texts.append(text)
    texts += ["", "我忘记了学信网的登录密码", "重新注册对旧账号有什么影响", "银行行长长得很高"]
    assert differences(table, texts) == []
    # the cases that make it hard are there: polyphones read by their phrase
    assert table.sound("重新") == ("chong", "xin") and table.sound("重要") == ("zhong", "yao")


def test_the_table_is_small(table) -> None:
    assert len(table) < 2_000_000
