"""Which characters are Chinese, in one place for every component that asks."""

# CJK Unified Ideographs, their Extension A and the Compatibility Ideographs: the characters of
# Chinese words. (U+4DC0-U+4DFF between them holds the Yijing hexagram symbols, not words.)
_IDEOGRAPH_RANGES = (("\u3400", "\u4dbf"), ("\u4e00", "\u9fff"), ("\uf900", "\ufaff"))
IDEOGRAPHS = "".join(f"{first}-{last}" for first, last in _IDEOGRAPH_RANGES)  # for a regex class
# CJK punctuation (U+3000-U+303F, the ideographic space among them) and full-width forms.
PUNCTUATION_AND_FULL_WIDTH = "\u3000-\u303f\uff00-\uffef"


def is_ideograph(character: str) -> bool:
    """True for one Chinese character (simplified, traditional or compatibility form).

    Plain comparisons, not a regex: the speller and the unknown-word check ask for every character
    of every message."""
    return (
        "\u4e00" <= character <= "\u9fff"
        or "\u3400" <= character <= "\u4dbf"
        or "\uf900" <= character <= "\ufaff"
    )
