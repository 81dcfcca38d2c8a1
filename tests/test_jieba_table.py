"""understanding/jieba_table.py: jieba with its frequencies from the table tokenizes as jieba with
its own dictionary, user dictionaries included (tests/test_pinyin_speller.py: a loaded model's
worker uses the table)."""

import random
from pathlib import Path

import jieba
import pytest

from tests.helpers import ROOT, nlu_examples
from understanding import jieba_table
from understanding.jieba_table import Frequencies

DICTIONARIES = sorted((ROOT / "data" / "dictionary").glob("*"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[jieba.Tokenizer, jieba.Tokenizer]:
    """Jieba as it reads its own dictionary, and jieba reading the saved table; both then load
    the project's user dictionaries, as the trained pipeline does (twice: speller, tokenizer)."""
    directory = tmp_path_factory.mktemp("jieba")
    jieba_table.save(directory, *jieba_table.build())
    own = jieba.Tokenizer()
    own.initialize()
    tabled = jieba.Tokenizer()
    saved = jieba.dt
    try:
        jieba.dt = tabled  # install() sets up the default tokenizer
        assert jieba_table.install(directory) is True
        assert jieba_table.install(directory) is False  # once only
    finally:
        jieba.dt = saved
    for tokenizer in (own, tabled):
        for _ in range(2):
            for path in DICTIONARIES:
                tokenizer.load_userdict(str(path))
    return own, tabled


def test_frequencies_and_total_are_jieba_s(pair) -> None:
    own, tabled = pair
    assert isinstance(tabled.FREQ, Frequencies) and isinstance(own.FREQ, dict)
    assert tabled.total == own.total
    words = list(own.FREQ)
    random.seed(7)
    sample = random.sample(words, 50_000) + [w for w in words if len(w) >= 4][:5000]
    for word in sample:
        assert word in tabled.FREQ and tabled.FREQ[word] == own.FREQ[word]
        assert tabled.FREQ.get(word) == own.FREQ.get(word)
    for word in ["学信网", "待审核", "证件号码", "qq", "不存在的词语组合", "x", ""]:
        assert (word in tabled.FREQ) == (word in own.FREQ)
        assert tabled.FREQ.get(word, -1) == own.FREQ.get(word, -1)
    with pytest.raises(KeyError):
        tabled.FREQ["不存在的词语组合"]


def test_text_is_cut_as_jieba_cuts_it(pair) -> None:
    """The project's own sentences, and characters and words thrown together."""
    own, tabled = pair
    nlu = nlu_examples(sorted((ROOT / "data" / "nlu").glob("*.yml")))
    texts = [text for examples in nlu.values() for text in examples]
    assert len(texts) > 500
    random.seed(11)
    words = [w for w in own.FREQ if own.FREQ[w] > 0]
    chars = [chr(random.randint(0x4E00, 0x9FFF)) for _ in range(3000)]
    for _ in range(3000):
        pieces = random.choices(words, k=random.randint(1, 6)) + random.choices(chars, k=3)
        random.shuffle(pieces)
        texts.append("".join(pieces) + random.choice(["", "，", " ok 123", "？"]))
    for text in texts:
        assert list(tabled.tokenize(text)) == list(own.tokenize(text)), text
        assert tabled.lcut(text, HMM=False) == own.lcut(text, HMM=False), text


def test_the_table_is_small(tmp_path: Path) -> None:
    table, _ = jieba_table.build()
    assert len(table) < 8_000_000
