"""Regional words read as the Mandarin the training data is written in.

Students write as they speak: 咋整 and 俺 in the north, 啷个 and 莫得 in Sichuan, 唔记得 and 点算
in Cantonese. Some of these worked by luck (a character the classifier also saw elsewhere), others
did not. This rewriter replaces each word of WORDS with its Mandarin form before the speller and
the tokenizer read the text, so that a dialect question is read as the same question, by design.
The table holds words, not single characters that mean other things elsewhere (系 is 是 in
Cantonese but begins 系统); the longest word at each place wins. The tracker keeps what the
student wrote. Placed after the normaliser (simplified characters, lower case).
"""

from __future__ import annotations

import re

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from understanding.text_rewriter import TextRewriter

WORDS = {
    # how, what to do
    "咋整": "怎么办",
    "咋办": "怎么办",
    "咋弄": "怎么弄",
    "咋个": "怎么",
    "咋": "怎么",
    "啷个": "怎么",
    "点算": "怎么办",
    "点办": "怎么办",
    "点样": "怎么样",
    # what, where, who
    "啥子": "什么",
    "啥": "什么",
    "么子": "什么",
    "乜嘢": "什么",
    "边度": "哪里",
    "佢": "他",
    # I, my
    "俺": "我",
    "偶滴": "我的",
    "我滴": "我的",
    "嘅": "的",
    # forgot, not, have not
    "忘球了": "忘了",
    "忘逑了": "忘了",
    "唔记得": "不记得",
    "冇记住": "没记住",
    "唔知": "不知道",
    "唔该": "谢谢",
    "多谢晒": "多谢",
    "莫得": "没有",
    "冇": "没有",
    "搞唔掂": "搞不定",
    "搞掂": "搞定",
    # done, by, find
    "咗": "了",
    "俾人": "被人",
    "揾": "找",
}
# 点算, 点办, 点样 only where a clause begins or after a pronoun: 网点办理, 快点办 and 重点算法
# are Mandarin.
_POINT = "(?:(?<![\u4e00-\u9fff])|(?<=[我你佢咁咋要]))"
_WORD = re.compile(
    "|".join(
        (_POINT + re.escape(word)) if word.startswith("点") else re.escape(word)
        for word in sorted(WORDS, key=len, reverse=True)
    )
)


def mandarin(text: str) -> str:
    """`text` with each regional word of WORDS in its Mandarin form."""
    return _WORD.sub(lambda found: WORDS[found.group(0)], text)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class DialectReader(TextRewriter):
    """Reads regional words as Mandarin (see the module); place it after the normaliser."""

    def rewrite(self, text: str) -> str:
        return mandarin(text)
