"""Rule-based entities with spaCy: the facts the flows need, read from free text.

A blank spaCy `zh` pipeline (character segmentation: no model to download) with an EntityRuler.
The patterns live in a data file (data/entity_patterns.jsonl: label, pattern, id); each match
becomes a Rasa entity whose value is the pattern's id (student_status=graduate,
registration=never, id_error=already_registered…), so that "我毕业了，也没注册过" fills two slots.
The patterns are copied into the model when it is trained, so a served model does not read data/.
Place it after ChineseTextNormalizer: patterns are written in simplified, lower-case form.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from understanding.stored_component import StoredComponent

PATTERNS_FILE = "patterns.jsonl"


def read_patterns(path: Path) -> list[dict[str, Any]]:
    """Patterns from a JSON-lines file; blank lines are skipped, a malformed line is an error."""
    patterns = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        pattern = json.loads(line)
        if not {"label", "pattern", "id"} <= pattern.keys():
            raise ValueError(f"{path}:{number}: a pattern needs label, pattern and id")
        patterns.append(pattern)
    return patterns


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class SpacyPatternEntityExtractor(StoredComponent):
    """Adds entities matched by spaCy's EntityRuler to each message."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"patterns_path": "data/entity_patterns.jsonl"}

    @staticmethod
    def required_packages() -> list[str]:
        return ["spacy"]

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrain when the patterns change, not only when the config does."""
        path = Path(config.get("patterns_path") or cls.get_default_config()["patterns_path"])
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        patterns: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(config, model_storage, resource)
        self.patterns = patterns or []
        self._nlp = self._build(self.patterns)

    @staticmethod
    def _build(patterns: list[dict[str, Any]]) -> Any:
        import spacy
        from spacy.pipeline import EntityRuler

        nlp = spacy.blank("zh")  # segmenter "char": nothing to download
        ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
        assert isinstance(ruler, EntityRuler)
        ruler.add_patterns(patterns)
        return nlp

    def learn(self, training_data: TrainingData) -> None:
        self.patterns = read_patterns(Path(self._config["patterns_path"]))
        self._nlp = self._build(self.patterns)

    def save(self, directory: Path) -> None:
        (directory / PATTERNS_FILE).write_text(
            "\n".join(json.dumps(p, ensure_ascii=False) for p in self.patterns),
            encoding="utf-8",
        )

    @classmethod
    def restored(cls, directory: Path) -> dict[str, Any]:
        return {"patterns": read_patterns(directory / PATTERNS_FILE)}

    def extract(self, text: str) -> list[dict[str, Any]]:
        """Entities in `text`, one per longest non-overlapping match."""
        doc = self._nlp(text)
        return [
            {
                "entity": span.label_,
                "value": span.ent_id_ or span.text,
                "start": span.start_char,
                "end": span.end_char,
                "text": span.text,
                "confidence_entity": 1.0,
                "extractor": self.__class__.__name__,
            }
            for span in doc.ents
        ]

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            found = self.extract(text)
            if found:
                message.set(ENTITIES, (message.get(ENTITIES) or []) + found, add_to_output=True)
        return messages
