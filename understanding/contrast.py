"""A contrast that names the other topic first is read as what it says the question is.

"不是密码，是登录名记不得了" names 密码 only to set it aside; the classifier weighed both topics and
asked which one the student meant. This rewriter drops the set-aside part, "不是 X，(而)是" or "没说
X，说的是", when a clause follows it: the text read becomes "登录名记不得了". The tracker keeps
what the student wrote.

Left as it is: 不是 with nothing after it (不是的: a no), 不是 inside 是不是 (a question), and a
set-aside part longer than MAX_SET_ASIDE characters (a sentence, not a named topic). Placed after
the normaliser (half-width commas) and before the speller; training examples are read the same way.
"""

from __future__ import annotations

import re

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from understanding import cjk
from understanding.text_rewriter import TextRewriter

MAX_SET_ASIDE = 16  # characters of X in 不是 X，是 Y
SET_ASIDE = re.compile(
    r"(?<!是)(?:并不是|倒不是|不是|并非|没说)"  # not 是不是: that asks
    rf"(?P<aside>[^,;.!?。，；！？]{{0,{MAX_SET_ASIDE}}}?)"
    r"(?:[,;，；]\s*|而)"  # the clause ends
    r"(?:而是|其实是|说的是|就是|是(?![否不]))?"  # the connective (是否, 是不是: questions)
)

QUESTION = re.compile(r"是否|是不是")


def meant(text: str) -> str:
    """`text` without the parts it sets aside, when what follows has a word in it."""
    found = SET_ASIDE.search(text)
    while found:
        rest = text[found.end() :]
        if not any(cjk.is_ideograph(char) for char in rest):
            break  # nothing meant follows: 不是, 不是吧
        if QUESTION.match(rest):  # 不是本人操作，是否要…: a condition and a question, no contrast
            found = SET_ASIDE.search(text, found.end())
            continue
        text = text[: found.start()] + rest
        found = SET_ASIDE.search(text, found.start())
    return text


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class ContrastReader(TextRewriter):
    """Drops what a contrast sets aside (see the module); place it after the normaliser."""

    helper_modules = [cjk]

    def rewrite(self, text: str) -> str:
        return meant(text)
