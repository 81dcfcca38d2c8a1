"""An NLU component that refuses to guess on a message with no word it was trained on.

DIET gives some intent a high confidence even for text unlike anything it saw ("asdkjh",
"1234567", emoji, markup), so the FallbackClassifier's threshold does not catch it. This component
remembers the words (and Chinese characters) of the training examples and, at the end of the
pipeline, turns a message that contains none of them (an empty one included) into `nlu_fallback`, so that the dialogue asks the
student to rephrase instead of answering a question they did not ask.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
import json
import unicodedata
from typing import Any, Dict, Iterable, List, Optional, Set, Text, Type

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

VOCABULARY_FILE = "vocabulary.json"


def _is_cjk(ch: Text) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def words(message: Message) -> Iterable[Text]:
    """What counts as a known word: each token that has a letter or digit in it, and each
    Chinese character of those tokens on its own (a typo such as 你号 or 谢射 changes how jieba
    splits the text, but keeps characters the model knows)."""
    for token in message.get(TOKENS_NAMES[TEXT], []) or []:
        text = unicodedata.normalize("NFKC", token.text).strip().lower()
        if text and any(unicodedata.category(ch)[0] in "LN" for ch in text):
            yield text
            yield from (ch for ch in text if _is_cjk(ch) and len(text) > 1)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class UnknownWordsFallback(GraphComponent):
    """Predicts nlu_fallback for messages with no known word; place it after the classifiers."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Rasa fingerprints only the class's source; the module's helpers count too."""
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

    def __init__(
        self,
        model_storage: ModelStorage,
        resource: Resource,
        vocabulary: Optional[Set[Text]] = None,
    ) -> None:
        self._model_storage = model_storage
        self._resource = resource
        self.vocabulary: Set[Text] = vocabulary or set()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> UnknownWordsFallback:
        return cls(model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        self.vocabulary = {w for example in training_data.intent_examples for w in words(example)}
        with self._model_storage.write_to(self._resource) as directory:
            (directory / VOCABULARY_FILE).write_text(
                json.dumps(sorted(self.vocabulary), ensure_ascii=False), encoding="utf-8"
            )
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> UnknownWordsFallback:
        with model_storage.read_from(resource) as directory:
            vocabulary = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
        return cls(model_storage, resource, set(vocabulary))

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if any(word in self.vocabulary for word in words(message)):
                continue
            fallback = {"name": DEFAULT_NLU_FALLBACK_INTENT_NAME, "confidence": 1.0}
            message.set(INTENT, fallback, add_to_output=True)
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or []
                       if r.get("name") != DEFAULT_NLU_FALLBACK_INTENT_NAME]
            message.set(INTENT_RANKING_KEY, [dict(fallback)] + ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
