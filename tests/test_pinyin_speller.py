"""understanding/pinyin_speller.py: pinyin input typos corrected to the training data's words, on
its own and in the trained pipeline. (Examples here are not the hold-out's.)"""

import asyncio
import subprocess
import sys

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from tests.helpers import ROOT
from understanding.pinyin_speller import PinyinSpellingCorrector

TRAINING = [
    "我忘记密码了",
    "密码不对",
    "学信网怎么注册账号",
    "我已经毕业了",
    "再见啦",
    "多谢你的帮助",
    "用户名找不回来",
]


@pytest.fixture(scope="module")
def speller(tmp_path_factory) -> PinyinSpellingCorrector:
    storage = LocalModelStorage(tmp_path_factory.mktemp("speller"))
    resource = Resource("speller")
    config = {"dictionary_path": str(ROOT / "data" / "dictionary")}
    context = ExecutionContext(GraphSchema({}), "test")
    component = PinyinSpellingCorrector.create(config, storage, resource, context)
    component.train(TrainingData([Message(data={TEXT: t, "intent": "x"}) for t in TRAINING]))
    return PinyinSpellingCorrector.load(config, storage, resource, context)


def corrected(speller: PinyinSpellingCorrector, text: str) -> str:
    message = Message(data={TEXT: text})
    speller.process([message])
    return message.get(TEXT)


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("忘了蜜马", "忘了密码"),
        ("怎么注测", "怎么注册"),
        ("我已经必业", "我已经毕业"),
        ("用户明忘了", "用户名忘了"),
        ("多些多些", "多谢多谢"),
        ("帐号", "账号"),
    ],
)
def test_sound_alike_typos_become_the_trained_word(speller, typed: str, meant: str) -> None:
    assert corrected(speller, typed) == meant


@pytest.mark.parametrize(
    "text",
    [
        "我忘记密码了",  # known words stay
        "白白浪费了时间",  # 白白 is a commoner word than 拜拜: not a typo
        "今天食堂吃什么",  # nothing sounds like a trained word
        "id号码 [身份证号] abc",  # placeholders, Latin letters and digits untouched
        "",
    ],
)
def test_other_text_is_left_alone(speller, text: str) -> None:
    assert corrected(speller, text) == text


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("wo wangji mima le", "我忘记密码了"),  # syllables and words apart
        ("mimabudui", "密码不对"),  # no spaces at all
        ("xue xin wang zen me zhu ce", "学信网怎么注册"),  # every syllable apart
        ("yonghuming zhao bu hui lai", "用户名找不回来"),
        ("我的mima忘了", "我的密码忘了"),  # inside a sentence of characters
    ],
)
def test_pinyin_typed_without_characters_becomes_the_trained_words(
    speller, typed: str, meant: str
) -> None:
    assert corrected(speller, typed) == meant


@pytest.mark.parametrize(
    "text",
    [
        "are you a bot",  # English: "bot" is no pinyin, so the whole run stays
        "hello",
        "ok",
        "wo",  # one syllable is not a question typed in pinyin
        "chang e",  # pinyin, but no word of the training data: left as typed
        "https://account.chsi.com.cn/account/password!retrive",
        "m" * 500,  # a long run costs nothing and stays
    ],
)
def test_latin_text_that_is_not_pinyin_of_the_training_words_stays(speller, text: str) -> None:
    assert corrected(speller, text) == text


def test_trained_pipeline_reads_pinyin_as_the_words(model_path) -> None:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))
    for typed, intent in [
        ("wo de yonghuming xiang bu qilai le", "forgot_username"),
        ("zhuce tishi shenfenzheng yi bei zhuce", "error_already_registered"),
        ("qing bang wo zhuan ren gong", "request_human"),
    ]:
        parsed = asyncio.run(agent.parse_message(typed))
        assert parsed["intent"]["name"] == intent, (typed, parsed["intent"])
        assert not any("a" <= char <= "z" for char in parsed["text"])  # read as characters


def test_trained_pipeline_reads_a_typo_as_the_word(model_path) -> None:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))
    typo = asyncio.run(agent.parse_message("学信网的密马忘记了怎么办"))
    right = asyncio.run(agent.parse_message("学信网的密码忘记了怎么办"))
    assert typo["intent"]["name"] == right["intent"]["name"] == "forgot_password"
    assert typo["text"] == "学信网的密马忘记了怎么办"  # what the student wrote is kept


def test_a_correction_never_cuts_through_a_trained_word(tmp_path) -> None:
    """在回 sounds like 再会, but 回 begins 回复: a training sentence must stay as it is."""
    storage = LocalModelStorage(tmp_path)
    resource = Resource("speller-guard")
    config = {"dictionary_path": str(ROOT / "data" / "dictionary")}
    context = ExecutionContext(GraphSchema({}), "test")
    component = PinyinSpellingCorrector.create(config, storage, resource, context)
    sentences = ["是机器人在回复吗", "再会啦", "好的再会"]
    component.train(TrainingData([Message(data={TEXT: t, "intent": "x"}) for t in sentences]))
    speller = PinyinSpellingCorrector.load(config, storage, resource, context)
    message = Message(data={TEXT: "是机器人在回复吗"})
    speller.process([message])
    assert message.get(TEXT) == "是机器人在回复吗"
    typo = Message(data={TEXT: "那就在会啦"})  # a real typo of 再会 still gets corrected
    speller.process([typo])
    assert typo.get(TEXT) == "那就再会啦"


def test_a_worker_reads_the_model_s_tables_not_pypinyin_or_jieba_s_dictionary(model_path) -> None:
    """The speller's tables keep pypinyin (55 MB) out of every worker and jieba's own dictionary
    (75 MB) out of memory; the typo is still read as the word. Loaded as a worker loads it, with
    the project's patches (5 s sooner than Rasa's own load)."""
    script = (
        "import asyncio, sys, jieba\n"
        "from runtime import rasa_patches\n"
        "assert rasa_patches.apply()\n"
        "from rasa.core.agent import Agent\n"
        f"agent = Agent.load({str(model_path)!r})\n"
        "parsed = asyncio.run(agent.parse_message('学信网的密马忘记了怎么办'))\n"
        "print(parsed['intent']['name'], 'pypinyin' in sys.modules, type(jieba.dt.FREQ).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["forgot_password", "False", "Frequencies"]
