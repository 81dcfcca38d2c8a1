"""First in the NLU pipeline: one spelling for what students type in many.

Traditional characters become simplified (OpenCC t2s), full-width letters, digits and punctuation
become half-width (NFKC), Latin letters are case-folded, and whitespace is collapsed: removed
between Chinese characters (where it is never meaningful and where JiebaTokenizer would otherwise
emit space tokens, rasa#7910) and kept as one space between Latin words. 忘記密碼 and ＩＤ號碼 are
then read exactly as 忘记密码 and id号码.

Only the text the pipeline reads is changed: the tracker keeps what the student wrote.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
import functools
import re
import unicodedata
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_NEXT_TO_CJK = re.compile(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+")
_SPACES = re.compile(r"\s+")
# Zero-width and BOM characters that survive NFKC and carry no meaning in a message.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


@functools.lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # imported lazily: loading its dictionaries is not free

    return opencc.OpenCC("t2s")


def normalize(text: Optional[Text]) -> Text:
    """The normalised form of `text` (see the module docstring)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = _t2s().convert(text).casefold()
    text = _SPACE_NEXT_TO_CJK.sub("", text)
    return _SPACES.sub(" ", text).strip()


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class ChineseTextNormalizer(GraphComponent):
    """Normalises the message text before tokenisation; place it first in the pipeline."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Rasa fingerprints only the class's source; the module's helpers count too."""
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

    @staticmethod
    def required_packages() -> List[Text]:
        return ["opencc"]

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseTextNormalizer:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text is not None:
                message.set(TEXT, normalize(text))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
