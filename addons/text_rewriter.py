"""Base for the components that rewrite the message text before tokenisation."""
from __future__ import annotations

import hashlib
import inspect
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData


class TextRewriter(GraphComponent):
    """Rewrites TEXT of training examples and incoming messages with `rewrite`."""

    # Modules whose code decides the rewriting, besides the subclass's own (see fingerprint_addon).
    helper_modules: List[Any] = []

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Rasa fingerprints only the class's own source; the modules it relies on count too."""
        modules = [sys.modules[cls.__module__], sys.modules[__name__], *cls.helper_modules]
        digest = hashlib.sha256()
        for module in modules:
            digest.update(Path(inspect.getfile(module)).read_bytes())
        return digest.hexdigest()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextRewriter:
        return cls()

    def rewrite(self, text: Text) -> Text:
        raise NotImplementedError

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                message.set(TEXT, self.rewrite(text))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
