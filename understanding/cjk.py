"""Which characters are Chinese, in one place for every component that asks."""

import re

# CJK Unified Ideographs, their Extension A and the Compatibility Ideographs: the characters of
# Chinese words. (U+4DC0-U+4DFF between them holds the Yijing hexagram symbols, not words.)
IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# CJK punctuation (U+3000-U+303F, the ideographic space among them) and full-width forms.
PUNCTUATION_AND_FULL_WIDTH = "\u3000-\u303f\uff00-\uffef"

_IDEOGRAPH = re.compile(f"[{IDEOGRAPHS}]")


def is_ideograph(character: str) -> bool:
    """True for one Chinese character (simplified, traditional or compatibility form)."""
    return _IDEOGRAPH.fullmatch(character) is not None
