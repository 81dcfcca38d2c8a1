"""understanding/message_prefix.py: the pipeline reads a bounded prefix, without repeated
sentences."""

import pytest

from understanding.message_prefix import MessagePrefix


def test_a_short_message_is_read_whole() -> None:
    assert MessagePrefix().rewrite("我忘记密码了，怎么办？") == "我忘记密码了，怎么办？"


def test_a_long_message_is_read_up_to_the_limit(monkeypatch) -> None:
    monkeypatch.setenv("NLU_MAX_CHARS", "50")
    assert MessagePrefix().rewrite("忘" * 100_000) == "忘" * 50


def test_a_repeated_sentence_does_not_drown_the_question() -> None:
    text = "注册时提示证件号码已被注册，怎么办？" + "真的很急！" * 2000 + "谢谢。"
    read = MessagePrefix().rewrite(text)
    assert read == "注册时提示证件号码已被注册，怎么办？真的很急！谢谢。"


def test_the_limit_must_be_sensible(monkeypatch) -> None:
    monkeypatch.setenv("NLU_MAX_CHARS", "5")
    with pytest.raises(ValueError, match="NLU_MAX_CHARS"):
        MessagePrefix().rewrite("x" * 100)
