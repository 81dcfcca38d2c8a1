"""UnknownWordsFallback on its own: trained vocabulary, persistence, and what it overrides."""

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from understanding.unknown_words import UnknownWordsFallback


def message(tokens: list[str], intent: str = "") -> Message:
    msg = Message(data={TEXT: "".join(tokens)})
    offset, built = 0, []
    for text in tokens:
        built.append(Token(text, offset))
        offset += len(text)
    msg.set(TOKENS_NAMES[TEXT], built)
    if intent:
        msg.set(INTENT, intent)
    return msg


def predicted(tokens: list[str], intent: str = "forgot_password") -> Message:
    msg = message(tokens)
    msg.set(INTENT, {"name": intent, "confidence": 0.93}, add_to_output=True)
    msg.set(INTENT_RANKING_KEY, [{"name": intent, "confidence": 0.93}], add_to_output=True)
    return msg


@pytest.fixture
def trained(tmp_path: Path) -> UnknownWordsFallback:
    (tmp_path / "storage").mkdir()
    storage = LocalModelStorage(tmp_path / "storage")
    resource = Resource("unknown_words")
    context = ExecutionContext(GraphSchema({}), "test")
    component = UnknownWordsFallback.create({}, storage, resource, context)
    data = TrainingData(
        [message(["忘记", "密码", "了"], "forgot_password"), message(["Hello", " ", "！"], "greet")]
    )
    component.train(data)
    return UnknownWordsFallback.load({}, storage, resource, context)


def test_vocabulary_survives_persistence_without_whitespace_or_punctuation(trained) -> None:
    assert trained.vocabulary == {"忘记", "密码", "了", "hello", "忘", "记", "密", "码"}


@pytest.mark.parametrize(
    "tokens", [["asdkjh"], ["1234567"], ["😀😀"], [], [" ", "！", "?"], ["<", "script", ">"]]
)
def test_message_without_known_word_becomes_nlu_fallback(trained, tokens) -> None:
    msg = trained.process([predicted(tokens)])[0]
    assert msg.get(INTENT) == {"name": "nlu_fallback", "confidence": 1.0}
    ranking = msg.get(INTENT_RANKING_KEY)
    assert ranking[0]["name"] == "nlu_fallback" and ranking[1]["name"] == "forgot_password"


@pytest.mark.parametrize(
    "tokens", [["密码", "忘", "啦"], ["HELLO"], ["ｈｅｌｌｏ"], ["asd", "了"], ["密马"]]
)  # a typo keeps a known character
def test_message_with_a_known_word_keeps_its_prediction(trained, tokens) -> None:
    msg = trained.process([predicted(tokens)])[0]
    assert msg.get(INTENT)["name"] == "forgot_password"
