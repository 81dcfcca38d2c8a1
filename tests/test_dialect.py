"""understanding/dialect.py: regional words read as the Mandarin of the training data. Written for
this test, apart from the training data and both hold-out sets."""

import pytest

from understanding.dialect import WORDS, mandarin
from understanding.normalizer import normalize


@pytest.mark.parametrize(
    "typed, read",
    [
        ("俺的账号叫啥来着", "我的账号叫什么来着"),  # northern
        ("密码弄丢了咋整嘛", "密码弄丢了怎么办嘛"),
        ("啷个找回用户名", "怎么找回用户名"),  # Sichuan
        ("莫得收到验证码", "没有收到验证码"),
        ("我唔记得个密码，点算好", "我不记得个密码,怎么办好"),  # Cantonese
        ("身份证號俾人註冊咗", "身份证号被人注册了"),  # traditional, after the normaliser
        ("揾唔到客服", "找唔到客服"),  # 唔 alone is left: it is also an interjection
    ],
)
def test_regional_words_are_read_as_mandarin(typed: str, read: str) -> None:
    assert mandarin(normalize(typed)) == read


@pytest.mark.parametrize(
    "text", ["系统提示已被注册", "学信网密码忘了怎么办", "唔，好的", "去网点办理", "要快点办", ""]
)
def test_mandarin_and_ambiguous_characters_are_left_alone(text: str) -> None:
    assert mandarin(normalize(text)) == normalize(text)


def test_every_regional_word_is_read_as_something_else() -> None:
    assert all(word != meaning and meaning for word, meaning in WORDS.items())
