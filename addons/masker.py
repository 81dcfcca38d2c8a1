"""First in the NLU pipeline: personal data never reaches the model, the parse result or a log.

ID-card numbers, mobile numbers and email addresses in the message become placeholders
(addons.privacy), which the model learns as such: "我的身份证号是[身份证号]" is a message about
sharing an ID number, and the assistant answers that it should not be shared here.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

import addons.privacy
from addons.privacy import mask


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class PersonalDataMasker(GraphComponent):
    """Replaces personal data in the message text with placeholders."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Retrain when the masking rules (addons/privacy.py) change."""
        return hashlib.sha256(Path(addons.privacy.__file__).read_bytes()).hexdigest()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PersonalDataMasker:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                message.set(TEXT, mask(text))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
