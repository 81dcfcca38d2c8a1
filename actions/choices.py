"""Reading a typed numbered choice ("2", "２", "第二个", "选1") as the option it names.

The form questions list their options as "1. …", "2. …" so that they still work where buttons are
not shown; these helpers map such a reply back to the option.
"""

import re
import unicodedata
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_CHINESE_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CHOICE = re.compile(
    r"^(?:选|选择|我选|是|答案)?\s*(?:第)?\s*([1-9]|[一二两三四五])\s*(?:个|项|条|种|号)?"
    r"\s*(?:吧|呢|啊|呀)?$"
)


def choice_number(text: str | None) -> int | None:
    """The option number a short reply names, or None when it is not such a reply."""
    if not text:
        return None
    # NFKC turns full-width digits and punctuation into their ASCII forms.
    cleaned = unicodedata.normalize("NFKC", text).strip().strip("。.,，!！、)）")
    match = _CHOICE.match(cleaned)
    if not match:
        return None
    token = match.group(1)
    return int(token) if token.isdigit() else _CHINESE_DIGITS[token]


def pick(text: str | None, options: Sequence[T]) -> T | None:
    """The option a numbered reply names, in the order the question listed them."""
    number = choice_number(text)
    if number is None or not 1 <= number <= len(options):
        return None
    return options[number - 1]
