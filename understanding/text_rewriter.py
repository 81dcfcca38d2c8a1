"""Base for the components that rewrite the message text before tokenisation."""

from __future__ import annotations

import sys
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from understanding.fingerprint import source_fingerprint


class TextRewriter(GraphComponent):
    """Rewrites TEXT of training examples and incoming messages with `rewrite`."""

    # Modules whose code decides the rewriting, besides the subclass's own (see fingerprint_addon).
    helper_modules: list[Any] = []

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Rasa fingerprints only the class's own source; the modules it relies on count too."""
        return source_fingerprint(
            sys.modules[cls.__module__], sys.modules[__name__], *cls.helper_modules
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextRewriter:
        return cls()

    def rewrite(self, text: str) -> str:
        raise NotImplementedError

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                message.set(TEXT, self.rewrite(text))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
