"""Base for the components that learn something in training and keep it in the model.

Rasa's shape for such a component is the same every time: `create` makes an empty one, `train`
writes what it learned to the model's storage, `load` reads it back. The subclasses here say only
what differs: `learn` (from the training data, into `self`), `save` (to a folder) and `restored`
(from that folder: the keyword arguments `__init__` takes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.training_data.training_data import TrainingData

Component = TypeVar("Component", bound="StoredComponent")


class StoredComponent(GraphComponent):
    """A component built from `config` and, once trained or loaded, what it learned."""

    def __init__(
        self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource
    ) -> None:
        self._config, self._model_storage, self._resource = config, model_storage, resource

    @classmethod
    def create(
        cls: type[Component],
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> Component:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        self.learn(training_data)
        with self._model_storage.write_to(self._resource) as directory:
            self.save(directory)
        return self._resource

    @classmethod
    def load(
        cls: type[Component],
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> Component:
        with model_storage.read_from(resource) as directory:
            learned = cls.restored(directory)
        return cls(config, model_storage, resource, **learned)

    def learn(self, training_data: TrainingData) -> None:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def restored(cls, directory: Path) -> dict[str, Any]:
        raise NotImplementedError

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
