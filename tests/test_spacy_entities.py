"""SpacyPatternEntityExtractor on its own (patterns file, persistence), and in the trained model."""

import asyncio
import json
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from tests.helpers import ROOT
from understanding.spacy_entities import SpacyPatternEntityExtractor, read_patterns

PATTERNS = ROOT / "data" / "entity_patterns.jsonl"


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> SpacyPatternEntityExtractor:
    """Trained on the project's patterns, persisted, and loaded back as a served model would be."""
    storage_dir = tmp_path_factory.mktemp("storage")
    storage = LocalModelStorage(storage_dir)
    resource = Resource("entities")
    context = ExecutionContext(GraphSchema({}), "test")
    config = {"patterns_path": str(PATTERNS)}
    SpacyPatternEntityExtractor.create(config, storage, resource, context).train(TrainingData())
    return SpacyPatternEntityExtractor.load(config, storage, resource, context)


def found(extractor, text: str) -> dict:
    return {e["entity"]: e["value"] for e in extractor.extract(text)}


@pytest.mark.parametrize(
    "text, entities",
    [
        ("我毕业了,也没注册过", {"student_status": "graduate", "registration": "never"}),
        ("我是在校生,以前注册过", {"student_status": "current", "registration": "before"}),
        ("还没毕业,本科", {"student_status": "current", "education_level": "bachelor"}),
        ("提示证件号码重复待审核,不能再次注册此证件号码", {"id_error": "pending_review"}),
        (
            "它说证件号码已被注册,我从来没注册过",
            {"id_error": "already_registered", "registration": "never"},
        ),
        ("我在征兵网做过兵役登记", {"conscription": "yes"}),
        ("硕士已经毕业三年", {"education_level": "master", "student_status": "graduate"}),
        ("忘记密码了", {}),
    ],
)
def test_patterns_find_the_facts(extractor, text, entities) -> None:
    assert found(extractor, text) == entities


def test_longest_match_wins_over_a_shorter_overlapping_one(extractor) -> None:
    # "没注册过" contains "注册过": the student said never, not before.
    assert found(extractor, "没注册过") == {"registration": "never"}
    assert found(extractor, "还没毕业") == {"student_status": "current"}


def test_process_adds_entities_with_offsets_and_keeps_existing_ones(extractor) -> None:
    message = Message(data={TEXT: "我毕业了", ENTITIES: [{"entity": "x", "value": "y"}]})
    extractor.process([message])
    entities = message.get(ENTITIES)
    assert entities[0] == {"entity": "x", "value": "y"}
    status = entities[1]
    assert (status["entity"], status["value"], status["start"], status["end"]) == (
        "student_status",
        "graduate",
        1,
        4,
    )
    assert status["extractor"] == "SpacyPatternEntityExtractor"


def test_every_pattern_is_well_formed_and_unique() -> None:
    patterns = read_patterns(PATTERNS)
    assert len({p["pattern"] for p in patterns}) == len(patterns)
    assert {p["label"] for p in patterns} == {
        "student_status",
        "registration",
        "id_error",
        "education_level",
        "conscription",
    }


def test_malformed_pattern_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text(json.dumps({"label": "x", "pattern": "y"}) + "\n")
    with pytest.raises(ValueError, match="p.jsonl:1"):
        read_patterns(bad)


def test_trained_pipeline_normalises_and_extracts(model_path) -> None:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))

    async def parse(text: str) -> dict:
        return await agent.parse_message(text)

    traditional = asyncio.run(parse("忘記密碼了怎麼辦"))
    simplified = asyncio.run(parse("忘记密码了怎么办"))
    assert traditional["intent"]["name"] == simplified["intent"]["name"] == "forgot_password"
    assert traditional["intent"]["confidence"] == pytest.approx(simplified["intent"]["confidence"])
    both = asyncio.run(parse("我畢業了，也沒註冊過"))
    assert {e["entity"]: e["value"] for e in both["entities"]} == {
        "student_status": "graduate",
        "registration": "never",
    }
