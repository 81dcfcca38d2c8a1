"""Hold-out examples that are training sentences once the pipeline has read them.

The NLU pipeline rewrites every message before the model sees it (understanding/: masker,
normaliser, pinyin speller). A hold-out example that becomes a training sentence after that
rewriting (密碼想不起來了 → 密码想不起来了; 用护名忘了 → 用户名忘了) measures memory, not
understanding. Both sides are
compared as the pipeline reads them, with punctuation and spaces dropped; near-duplicates are
pairs whose character-level similarity (difflib's ratio) is at least NEAR_RATIO.

    .venv/bin/python -m evaluation.leaks      lists them, exits 1 when there is any
"""

import difflib
import re
import sys
from collections.abc import Callable
from functools import lru_cache

from evaluation.holdout import ROOT, Example, holdout, long_stories, second_holdout, training

NEAR_RATIO = 0.9
PUNCTUATION = re.compile(r"[\W_]+")


@lru_cache(maxsize=1)
def pipeline_reading() -> Callable[[str], str]:
    """The masker, normaliser, dialect and contrast readers and pinyin speller as the trained
    pipeline applies them, the speller indexed on the training data exactly as its train() does."""
    from core.privacy import mask
    from understanding.contrast import meant
    from understanding.dialect import mandarin
    from understanding.normalizer import normalize
    from understanding.pinyin_speller import (
        _jieba,
        common_characters,
        correct,
        index_words,
        training_words,
    )
    from understanding.pinyin_table import PinyinTable
    from understanding.romanised import convert

    dictionary = str(ROOT / "data" / "dictionary")

    def rewritten(text: str) -> str:
        return meant(mandarin(normalize(mask(text))))

    texts = [rewritten(e.text) for e in training()]
    words = training_words(texts, dictionary)
    table = PinyinTable.from_pypinyin()
    index = index_words(words, table)
    characters = common_characters(texts, table)
    known = set(index.values()) | set(words)
    frequency = _jieba(dictionary).dt.FREQ

    def read(text: str) -> str:
        typed = convert(rewritten(text), index, characters)
        return PUNCTUATION.sub("", correct(typed, index, known, frequency, table))

    return read


def leaks(near_ratio: float = NEAR_RATIO) -> list[tuple[Example, str, float]]:
    """(hold-out example, the training sentence it matches, similarity) for every leak."""
    read = pipeline_reading()
    trained: dict[str, str] = {}
    for example in training():
        trained.setdefault(read(example.text), example.text)
    found = []
    for example in holdout() + second_holdout() + long_stories():
        seen = read(example.text)
        if seen in trained:
            found.append((example, trained[seen], 1.0))
            continue
        matcher = difflib.SequenceMatcher(a=seen, autojunk=False)
        for reading, original in trained.items():
            matcher.set_seq2(reading)
            if (
                matcher.real_quick_ratio() >= near_ratio
                and matcher.quick_ratio() >= near_ratio
                and matcher.ratio() >= near_ratio
            ):
                found.append((example, original, matcher.ratio()))
                break
    return found


def main() -> int:
    found = leaks()
    for example, original, ratio in found:
        print(
            f"{example.subset:<12} {example.intent:<24} {example.text}  ≈  {original}  "
            f"({ratio:.2f})"
        )
    print(
        f"{len(found)} of {len(holdout()) + len(second_holdout())} hold-out examples match a "
        "training sentence "
        f"as the pipeline reads them"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
