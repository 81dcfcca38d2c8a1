"""runtime/rasa_patches.py: applied where the Rasa server starts; the patched action-response
check accepts and rejects exactly as Rasa's; a Rasa upgrade that changes the patched code fails
here."""

import json
import random

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.events import Event
from rasa.utils.tensorflow.models import RasaModel

from runtime import rasa_patches
from tests.helpers import ROOT

ORIGINAL = rasa_patches.original(RemoteAction, "_validate_action_result")
ORIGINAL_KEYS = rasa_patches.original_get_possible_keys()
ORIGINAL_PREDICT = rasa_patches.original(RasaModel, "_rasa_predict")
ORIGINAL_RESOLVE = rasa_patches.original(Event, "resolve_by_type")
VALID = [
    {},
    {"events": [], "responses": []},
    {
        "events": [{"event": "slot", "name": "ticket_number", "value": "3"}],
        "responses": [{"response": "utter_ticket_created"}],
    },
]
INVALID = [{"events": "nope"}, {"responses": [1]}, {"events": [{"event": "slot"}]}, []]


@pytest.fixture(autouse=True)
def patched(monkeypatch) -> None:
    """Rasa patched as runtime.rasa_server patches it, and restored after each test."""
    monkeypatch.setattr(RemoteAction, "_validate_action_result", ORIGINAL)
    monkeypatch.setattr(RulePolicy, "_get_possible_keys", ORIGINAL_KEYS)
    monkeypatch.setattr(RasaModel, "_rasa_predict", ORIGINAL_PREDICT)
    monkeypatch.setattr(Event, "resolve_by_type", ORIGINAL_RESOLVE)
    assert rasa_patches.apply() is True


def test_the_patched_code_is_the_code_that_was_measured() -> None:
    """Fails after a Rasa upgrade that changes the patched method: measure and check it again."""
    assert rasa_patches.source_sha256(ORIGINAL) == rasa_patches.VALIDATE_ACTION_RESULT_SHA256
    # the hot spot the patch removes: the schema validated again on every call
    assert "validate(result, self.action_response_format_spec())" in rasa_patches.inspect.getsource(
        ORIGINAL
    )


def test_the_rule_matching_patched_is_the_code_that_was_measured() -> None:
    assert rasa_patches.source_sha256(ORIGINAL_KEYS) == rasa_patches.GET_POSSIBLE_KEYS_SHA256


def test_the_prediction_patched_is_the_code_that_was_measured() -> None:
    assert rasa_patches.source_sha256(ORIGINAL_PREDICT) == rasa_patches.RASA_PREDICT_SHA256
    # the hot spot the patch removes: a tf.function with an input signature, called each time
    source = rasa_patches.inspect.getsource(ORIGINAL_PREDICT)
    assert "input_signature=self._dynamic_signature(batch_in)" in source
    assert "self._tf_predict_step(batch_in)" in source


def test_diet_through_its_concrete_function_answers_as_rasa_does(model_path, monkeypatch) -> None:
    """Messages of every length, typed afresh: the same intents, ranking and confidences, to the
    last bit, as through Rasa's tf.function."""
    import asyncio

    from rasa.core.agent import Agent
    from tensorflow.types.experimental import ConcreteFunction

    texts = [
        "学信网的密码我想不起来了，怎么重新设置",
        "账号",
        "注册时提示该证件号已存在怎么处理啊",
        "我是去年毕业的研究生，用户名和手机号都换过了，现在登录不上也找不回，后天要交材料",
        "?",
        "待审核要等多久",
    ]

    def parsed() -> list[dict]:
        agent = Agent.load(str(model_path))
        return [asyncio.run(agent.parse_message(text)) for text in texts]

    monkeypatch.setattr(RasaModel, "_rasa_predict", ORIGINAL_PREDICT)
    rasa_s = parsed()
    assert rasa_patches.apply() is True
    ours = parsed()
    ranking = [[(i["name"], i["confidence"]) for i in p["intent_ranking"]] for p in ours]
    assert ranking == [[(i["name"], i["confidence"]) for i in p["intent_ranking"]] for p in rasa_s]
    assert [p["intent"] for p in ours] == [p["intent"] for p in rasa_s]
    assert len({p["intent"]["name"] for p in ours}) >= 3  # different answers, not one
    # and the concrete function is what answered
    agent = Agent.load(str(model_path))
    for text in texts[:2]:
        asyncio.run(agent.parse_message(text))
    nodes = agent.processor.graph_runner._instantiated_nodes.values()  # type: ignore[union-attr]
    diet = next(n._component for n in nodes if type(n._component).__name__ == "DIETClassifier")
    assert isinstance(diet.model._tf_predict_step, ConcreteFunction)


def test_the_event_lookup_patched_is_the_code_that_was_measured() -> None:
    assert rasa_patches.source_sha256(ORIGINAL_RESOLVE) == rasa_patches.RESOLVE_BY_TYPE_SHA256
    assert "all_subclasses(Event)" in rasa_patches.inspect.getsource(ORIGINAL_RESOLVE)


def test_event_classes_found_by_name_are_rasa_s_own() -> None:
    from rasa.shared.core.events import SlotSet, UserUttered
    from rasa.shared.utils.common import all_subclasses

    rasa_s = ORIGINAL_RESOLVE.__func__
    names = {cls.type_name for cls in all_subclasses(Event)}
    assert len(names) > 15
    for _ in range(2):  # found, then remembered
        for name in names:
            assert Event.resolve_by_type(name) is rasa_s(name)
    # what Rasa does with names it does not know: the default, None for "topic", or an error
    assert Event.resolve_by_type("nonsense", SlotSet) is SlotSet
    assert Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name 'nonsense'"):
        Event.resolve_by_type("nonsense")
    # an Event class defined later is found, as Rasa would find it
    Event.resolve_by_type("user")

    class Later(UserUttered):
        type_name = "later"

    assert Event.resolve_by_type("later") is Later is rasa_s("later")
    parse = {"intent": {"name": "forgot_password"}, "entities": []}
    # stored events read back through the patch are equal to Rasa's
    stored = [
        {"event": "user", "text": "密码忘了", "parse_data": parse},
        {"event": "slot", "name": "a", "value": 1},
        {"event": "later", "text": "hi", "parse_data": parse},
    ]
    assert [Event.from_parameters(e) for e in stored] == [
        rasa_s(e["event"])._from_parameters(e) for e in stored
    ]


def test_remembered_rule_matches_are_rasa_s_own(model_path) -> None:
    """The trained RulePolicy, its rules' states run together and cut at every length: the
    remembered answer is Rasa's, asked once and again."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))
    nodes = agent.processor.graph_runner._instantiated_nodes.values()  # type: ignore[union-attr]
    policy = next(node._component for node in nodes if isinstance(node._component, RulePolicy))
    rules = [json.loads(key) for key in policy.lookup["rules"]]
    random.seed(14)
    checked = 0
    for _ in range(150):
        states = random.choice(rules) + random.choice(rules) + random.choice(rules)
        for cut in range(len(states) + 1):
            run = states[cut:]
            for lookup in (policy.lookup["rules"], policy.lookup["rules_for_loop_unhappy_path"]):
                expected = ORIGINAL_KEYS(policy, lookup, run)
                assert RulePolicy._get_possible_keys(policy, lookup, run) == expected
                assert RulePolicy._get_possible_keys(policy, lookup, run) == expected
                checked += bool(expected)
    assert checked > 100  # rules did match, not only empty answers


def test_the_rasa_server_launcher_applies_the_patch(monkeypatch) -> None:
    from runtime import rasa_server

    monkeypatch.setattr(RemoteAction, "_validate_action_result", ORIGINAL)
    monkeypatch.setattr(RulePolicy, "_get_possible_keys", ORIGINAL_KEYS)
    monkeypatch.setattr(RasaModel, "_rasa_predict", ORIGINAL_PREDICT)
    monkeypatch.setattr(Event, "resolve_by_type", ORIGINAL_RESOLVE)
    monkeypatch.setattr("rasa.__main__.main", lambda: None)
    import rasa.core.run

    monkeypatch.setattr(rasa.core.run, "load_agent_on_start", rasa.core.run.load_agent_on_start)
    rasa_server.main()
    assert rasa.core.run.load_agent_on_start.trims_memory
    assert RemoteAction._validate_action_result is rasa_patches.validate_action_result
    assert RulePolicy.__dict__["_get_possible_keys"] is rasa_patches.get_possible_keys
    assert RasaModel.__dict__["_rasa_predict"] is rasa_patches.rasa_predict
    assert Event.__dict__["resolve_by_type"] is rasa_patches.RESOLVE_BY_TYPE


LOAD_AND_MEASURE = """
import asyncio, sys
from runtime.rasa_server import trimmed_after_loading

def own_mb():
    status = open("/proc/self/status").read()
    return int(status.split("RssAnon:")[1].split()[0]) / 1024

async def load():  # 300 MB in small blocks, an eighth of them kept, spread out
    blocks = [bytearray(1500) for _ in range(200_000)]
    kept = blocks[::8]
    del blocks
    return kept

before = own_mb()
loading = trimmed_after_loading(load) if sys.argv[1] == "trimmed" else load
kept = asyncio.run(loading())
print(len(kept), round(own_mb() - before))
"""


def test_a_worker_hands_back_free_memory_once_the_model_is_loaded() -> None:
    """A load that used 300 MB and kept an eighth of it, spread out: glibc keeps the freed
    memory unless asked to hand it back."""
    import subprocess
    import sys

    from runtime.rasa_server import trimmed_after_loading

    held = {}
    for way in ("plain", "trimmed"):
        out = subprocess.run(
            [sys.executable, "-c", LOAD_AND_MEASURE, way],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        kept, held[way] = (int(n) for n in out.stdout.split())
        assert kept == 25_000
    assert held["plain"] > 250 and held["trimmed"] < held["plain"] - 100, held
    assert trimmed_after_loading(trimmed_after_loading(nothing)).trims_memory


async def nothing() -> None:
    return None


def test_changed_rasa_code_is_left_unpatched(monkeypatch, caplog) -> None:
    def changed(self, result):  # what an upgrade might bring
        return True

    monkeypatch.setattr(RemoteAction, "_validate_action_result", changed)
    assert rasa_patches.apply() is False
    assert RemoteAction._validate_action_result is changed
    assert "left unpatched" in caplog.text


@pytest.mark.parametrize("result", VALID)
def test_valid_responses_pass(result) -> None:
    assert RemoteAction._validate_action_result(None, result) is True


@pytest.mark.parametrize("result", INVALID)
def test_invalid_responses_raise_what_rasa_raises(result) -> None:
    try:
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
        expected = None
    except jsonschema.ValidationError as error:
        expected = error.message
    assert expected is not None, "the example should be invalid for Rasa too"
    with pytest.raises(jsonschema.ValidationError) as raised:
        RemoteAction._validate_action_result(None, result)
    assert raised.value.message.startswith(expected)
    assert "Failed to validate Action server response" in raised.value.message


def test_a_run_without_cors_takes_the_origins_from_the_environment(monkeypatch) -> None:
    from runtime.rasa_server import with_cors_from_environment

    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    run = ["rasa", "run", "--port", "5005"]
    assert with_cors_from_environment(run) == [
        *run,
        "--cors",
        "https://a.example",
        "https://b.example",
    ]
    given = [*run, "--cors", "https://c.example"]
    assert with_cors_from_environment(given) == given  # the command line wins
    assert with_cors_from_environment(["rasa", "train"]) == ["rasa", "train"]
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert with_cors_from_environment(run) == run
