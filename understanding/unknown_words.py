"""An NLU component that refuses to guess on a message with no word it was trained on.

DIET gives some intent a high confidence even for text unlike anything it saw ("asdkjh",
"1234567", emoji, markup), so the FallbackClassifier's threshold does not catch it. This component
remembers the words (and Chinese characters) of the training examples and, at the end of the
pipeline, turns a message that contains none of them (an empty one included) into `nlu_fallback`,
so that the dialogue asks the student to rephrase instead of answering a question they did not ask.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from understanding import cjk
from understanding.fingerprint import source_fingerprint
from understanding.stored_component import StoredComponent

VOCABULARY_FILE = "vocabulary.json"


def words(message: Message) -> Iterable[str]:
    """What counts as a known word: each token that has a letter or digit in it, and each
    Chinese character of those tokens on its own (a typo such as 你号 or 谢射 changes how jieba
    splits the text, but keeps characters the model knows)."""
    for token in message.get(TOKENS_NAMES[TEXT], []) or []:
        text = unicodedata.normalize("NFKC", token.text).strip().lower()
        if text and any(unicodedata.category(ch)[0] in "LN" for ch in text):
            yield text
            yield from (ch for ch in text if cjk.is_ideograph(ch) and len(text) > 1)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class UnknownWordsFallback(StoredComponent):
    """Predicts nlu_fallback for messages with no known word; place it after the classifiers."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The module's helpers and the character table decide the output too."""
        return source_fingerprint(sys.modules[__name__], cjk)

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        vocabulary: set[str] | None = None,
    ) -> None:
        super().__init__(config, model_storage, resource)
        self.vocabulary: set[str] = vocabulary or set()

    def learn(self, training_data: TrainingData) -> None:
        self.vocabulary = {w for example in training_data.intent_examples for w in words(example)}

    def save(self, directory: Path) -> None:
        (directory / VOCABULARY_FILE).write_text(
            json.dumps(sorted(self.vocabulary), ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def restored(cls, directory: Path) -> dict[str, Any]:
        vocabulary = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
        return {"vocabulary": set(vocabulary)}

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            if any(word in self.vocabulary for word in words(message)):
                continue
            fallback = {"name": DEFAULT_NLU_FALLBACK_INTENT_NAME, "confidence": 1.0}
            message.set(INTENT, fallback, add_to_output=True)
            ranking = [
                r
                for r in message.get(INTENT_RANKING_KEY) or []
                if r.get("name") != DEFAULT_NLU_FALLBACK_INTENT_NAME
            ]
            message.set(INTENT_RANKING_KEY, [dict(fallback)] + ranking, add_to_output=True)
        return messages
