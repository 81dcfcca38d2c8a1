"""ChineseTextNormalizer on its own, and in the trained pipeline."""

import unicodedata

import pytest
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from core import settings
from understanding.normalizer import ChineseTextNormalizer, normalize


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("忘記密碼", "忘记密码"),
        ("證件號碼已被註冊", "证件号码已被注册"),
        ("ＩＤ號碼忘了", "id号码忘了"),
        ("１２３", "123"),
        ("Forgot  PASSWORD 怎么办", "forgot password怎么办"),
        ("用 户 名　忘 了", "用户名忘了"),  # ideographic space too
        ("  \t\n ", ""),
        ("密码忘了\ud800", "密码忘了"),  # a lone surrogate, as a JSON escape can give
        ("\udc80學信網\ud83d", "学信网"),
        ("\u200b密码\ufeff", "密码"),
        ("证件号码重复待审核，不能再次注册此证件号码", "证件号码重复待审核,不能再次注册此证件号码"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize(raw, expected) -> None:
    assert normalize(raw) == expected


def test_traditional_full_width_and_simplified_forms_become_identical() -> None:
    assert normalize("忘記密碼，ＩＤ號碼") == normalize("忘记密码,id号码")


def test_component_rewrites_messages_and_training_data() -> None:
    component = ChineseTextNormalizer.create({}, None, None, None)
    message = Message(data={TEXT: "帳號密碼都忘記了"})
    component.process([message])
    assert message.get(TEXT) == "帐号密码都忘记了"
    data = TrainingData([Message(data={TEXT: "用戶名", "intent": "forgot_username"})])
    component.process_training_data(data)
    assert data.training_examples[0].get(TEXT) == "用户名"


def test_the_ideograph_check_and_the_regex_ranges_agree() -> None:
    """understanding/cjk.py spells the ranges twice (comparisons for speed, a regex class)."""
    import re

    from understanding import cjk

    ranges = re.compile(f"[{cjk.IDEOGRAPHS}]")
    for code in range(0x10000):
        assert cjk.is_ideograph(chr(code)) == (ranges.fullmatch(chr(code)) is not None), hex(code)


def test_the_trained_pipeline_reads_past_a_lone_surrogate(model_path) -> None:
    """Half a surrogate pair, escaped alone in JSON, reaches the pipeline as a lone surrogate;
    OpenCC raised on it, and the student got the apology instead of the answer."""
    import asyncio

    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))
    parsed = asyncio.run(agent.parse_message("学信网密码忘记了\ud800怎么找回"))
    assert parsed["intent"]["name"] == "forgot_password"


@pytest.mark.parametrize("char", ["\ufdfa", "\u3300", "\ufb03", "\u2474"])
def test_characters_that_nfkc_multiplies_cannot_pass_the_read_limit(char: str) -> None:
    """U+FDFA is 18 characters once normalised; the pipeline still reads NLU_MAX_CHARS at most."""
    assert len(unicodedata.normalize("NFKC", char)) > 1
    component = ChineseTextNormalizer.create({}, None, None, None)  # type: ignore[arg-type]
    limit = settings.nlu_max_chars()
    assert len(component.rewrite(char * limit)) == limit
    assert component.rewrite("忘記密碼" + char) == normalize("忘記密碼" + char)  # short: unchanged
