"""First in the NLU pipeline: one spelling for what students type in many.

Traditional characters become simplified (OpenCC t2s), full-width letters, digits and punctuation
become half-width (NFKC), Latin letters are case-folded, and whitespace is collapsed: removed
between Chinese characters (where it is never meaningful and where JiebaTokenizer would otherwise
emit space tokens, rasa#7910) and kept as one space between Latin words. 忘記密碼 and ＩＤ號碼 are
then read exactly as 忘记密码 and id号码.

Only the text the pipeline reads is changed: the tracker keeps what the student wrote.

NFKC can make one character many (U+FDFA becomes 18): the prefix cut before this component
(understanding/message_prefix.py) counts characters as typed, so the normalised text is cut to
NLU_MAX_CHARS again. 300 × U+FDFA had become 5,400 characters for DIET to read (seconds a message).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from core import settings
from understanding import cjk
from understanding.text_rewriter import TextRewriter

_CJK = cjk.IDEOGRAPHS + cjk.PUNCTUATION_AND_FULL_WIDTH
_SPACE_NEXT_TO_CJK = re.compile(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+")
_SPACES = re.compile(r"\s+")
# Zero-width and BOM characters that survive NFKC and carry no meaning in a message; and lone
# surrogates (a JSON "\ud800" escape on its own), which no text encoder accepts: OpenCC raised on
# them and the student got the apology instead of an answer.
_INVISIBLE = dict.fromkeys([*map(ord, "\u200b\u200c\u200d\u2060\ufeff"), *range(0xD800, 0xE000)])


@functools.lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # imported lazily: loading its dictionaries is not free

    return opencc.OpenCC("t2s")


def normalize(text: str | None) -> str:
    """The normalised form of `text` (see the module docstring)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = _t2s().convert(text).casefold()
    text = _SPACE_NEXT_TO_CJK.sub("", text)
    return _SPACES.sub(" ", text).strip()


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class ChineseTextNormalizer(TextRewriter):
    """Normalises the message text before tokenisation; place it first in the pipeline."""

    helper_modules = [cjk]

    @staticmethod
    def required_packages() -> list[str]:
        return ["opencc"]

    def rewrite(self, text: str) -> str:
        return normalize(text)[: settings.nlu_max_chars()]
