"""runtime/rasa_patches.py: applied where the Rasa server starts; the patched action-response
check accepts and rejects exactly as Rasa's; a Rasa upgrade that changes the patched code fails
here."""

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.core.policies.rule_policy import RulePolicy
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.core.events import Event
from rasa.utils.endpoints import EndpointConfig
from rasa.utils.tensorflow.models import RasaModel

from runtime import rasa_patches
from tests.helpers import HOLDOUT, ROOT, nlu_examples

ORIGINAL = rasa_patches.original(RemoteAction, "_validate_action_result")
ORIGINAL_KEYS = rasa_patches.original_get_possible_keys()
ORIGINAL_PREDICT = rasa_patches.original(RasaModel, "_rasa_predict")
ORIGINAL_RESOLVE = rasa_patches.original(Event, "resolve_by_type")
ORIGINAL_SESSION = rasa_patches.original(EndpointConfig, "session")
ORIGINAL_RUN = rasa_patches.original(DaskGraphRunner, "run")
ORIGINAL_LOAD = rasa_patches.original(RasaModel, "load")
VALID = [
    {},
    {"events": [], "responses": []},
    {
        "events": [{"event": "slot", "name": "ticket_number", "value": "3"}],
        "responses": [{"response": "utter_ticket_created"}],
    },
]
INVALID = [{"events": "nope"}, {"responses": [1]}, {"events": [{"event": "slot"}]}, []]


def unpatched(monkeypatch) -> None:
    """Rasa's own code back in every place a patch goes, until the test ends."""
    for owner, name, rasa_s in [
        (RemoteAction, "_validate_action_result", ORIGINAL),
        (RulePolicy, "_get_possible_keys", ORIGINAL_KEYS),
        (RasaModel, "_rasa_predict", ORIGINAL_PREDICT),
        (Event, "resolve_by_type", ORIGINAL_RESOLVE),
        (EndpointConfig, "session", ORIGINAL_SESSION),
        (DaskGraphRunner, "run", ORIGINAL_RUN),
        (RasaModel, "load", ORIGINAL_LOAD),
    ]:
        monkeypatch.setattr(owner, name, rasa_s)


def patched_as_the_server_is(monkeypatch) -> None:
    """Rasa patched as runtime.rasa_server patches it, until `monkeypatch` undoes it."""
    unpatched(monkeypatch)
    assert rasa_patches.apply() is True


@pytest.fixture(autouse=True)
def patched(monkeypatch) -> None:
    """Each test runs with Rasa patched as the server patches it, restored after it."""
    patched_as_the_server_is(monkeypatch)


@pytest.fixture(scope="module")
def served_agent(model_path) -> Any:
    """The model loaded once as a worker loads it (every patch applied), for the tests that only
    read it: five loads fewer. What they leave in it (remembered rule matches, execution orders,
    DIET's concrete prediction step) is each checked against Rasa's own code, computed afresh."""
    from rasa.core.agent import Agent

    with pytest.MonkeyPatch.context() as monkeypatch:
        patched_as_the_server_is(monkeypatch)
        return Agent.load(str(model_path))


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


def test_diet_through_its_concrete_function_answers_as_rasa_does(
    model_path, served_agent, monkeypatch
) -> None:
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

    def parsed(agent: Any) -> list[dict]:
        return [asyncio.run(agent.parse_message(text)) for text in texts]

    monkeypatch.setattr(RasaModel, "_rasa_predict", ORIGINAL_PREDICT)
    rasa_s = parsed(Agent.load(str(model_path)))
    assert rasa_patches.apply() is True
    ours = parsed(served_agent)
    ranking = [[(i["name"], i["confidence"]) for i in p["intent_ranking"]] for p in ours]
    assert ranking == [[(i["name"], i["confidence"]) for i in p["intent_ranking"]] for p in rasa_s]
    assert [p["intent"] for p in ours] == [p["intent"] for p in rasa_s]
    assert len({p["intent"]["name"] for p in ours}) >= 3  # different answers, not one
    # and the concrete function is what answered
    nodes = served_agent.processor.graph_runner._instantiated_nodes.values()
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


def test_remembered_rule_matches_are_rasa_s_own(served_agent) -> None:
    """The trained RulePolicy, its rules' states run together and cut at every length: the
    remembered answer is Rasa's, asked once and again."""
    nodes = served_agent.processor.graph_runner._instantiated_nodes.values()
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

    unpatched(monkeypatch)
    monkeypatch.setattr("rasa.__main__.main", lambda: None)
    import rasa.core.run

    monkeypatch.setattr(rasa.core.run, "load_agent_on_start", rasa.core.run.load_agent_on_start)
    monkeypatch.setattr(rasa.core.run, "close_resources", rasa.core.run.close_resources)
    rasa_server.main()
    assert rasa.core.run.load_agent_on_start.trims_memory
    assert rasa.core.run.close_resources.closes_pooled_sessions
    assert EndpointConfig.__dict__["session"] is rasa_patches.pooled_session
    assert DaskGraphRunner.__dict__["run"] is rasa_patches.run_graph
    assert RemoteAction._validate_action_result is rasa_patches.validate_action_result
    assert RulePolicy.__dict__["_get_possible_keys"] is rasa_patches.get_possible_keys
    assert RasaModel.__dict__["_rasa_predict"] is rasa_patches.rasa_predict
    assert RasaModel.__dict__["load"] is rasa_patches.LOAD_MODEL
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


@pytest.mark.processes
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


def test_the_session_patched_is_the_code_that_was_measured() -> None:
    """The pooled session is lent through `async with`, as every caller of Rasa's uses it."""
    import rasa.core.agent

    assert rasa_patches.source_sha256(ORIGINAL_SESSION) == rasa_patches.ENDPOINT_SESSION_SHA256
    assert "async with self.session() as session:" in rasa_patches.inspect.getsource(
        EndpointConfig.request
    )
    assert "async with model_server.session() as session:" in rasa_patches.inspect.getsource(
        rasa.core.agent
    )


@contextlib.contextmanager
def endpoint_server(close_after: float | None = None) -> Iterator[tuple[str, list[dict]]]:
    """An aiohttp server in a thread of its own, answering JSON; yields its URL and what it saw
    of each request (which connection it came on, its headers and query). With `close_after`,
    it closes each connection that many seconds after answering on it, as a server that stops
    or times out an idle connection does."""
    from aiohttp import web

    seen: list[dict] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    connections: list[Any] = []  # held, so that each is told apart by identity

    def connection(transport: Any) -> int:
        if not any(transport is known for known in connections):
            connections.append(transport)
        return next(i for i, known in enumerate(connections) if known is transport)

    async def webhook(request: web.Request) -> web.Response:
        seen.append(
            {
                "connection": connection(request.transport),
                "headers": dict(request.headers),
                "query": dict(request.query),
                "body": await request.json(),
            }
        )
        if close_after is not None and request.transport is not None:
            loop.call_later(close_after, request.transport.close)
        return web.json_response({"events": [], "responses": []})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    port = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}/webhook", seen
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def calls(endpoint: EndpointConfig, count: int, pause: float = 0.0) -> list[Any]:
    """`count` requests through Rasa's EndpointConfig.request on one loop, `pause` s apart; the
    pooled sessions closed at the end as the server's stop closes them."""

    async def run() -> list[Any]:
        answers = []
        for i in range(count):
            answers.append(await endpoint.request(json={"next_action": f"call {i}"}))
            await asyncio.sleep(pause)
        await rasa_patches.close_pooled_sessions()
        return answers

    return asyncio.run(run())


def test_calls_to_the_action_server_share_one_connection() -> None:
    with endpoint_server() as (url, seen):
        endpoint = EndpointConfig(
            url, headers={"X-Team": "chsi"}, basic_auth={"username": "u", "password": "p"}
        )
        assert calls(endpoint, 3) == [{"events": [], "responses": []}] * 3
        endpoint.token = "secret"
        calls(endpoint, 2)
    assert [s["body"]["next_action"] for s in seen] == [f"call {i}" for i in (0, 1, 2, 0, 1)]
    # one connection for the three calls; a new loop (asyncio.run), a new session and connection
    assert [s["connection"] for s in seen] == [0, 0, 0, 1, 1]
    assert seen[3]["query"] == {"token": "secret"} and seen[0]["query"] == {}
    for s in seen:  # what Rasa's own session sends: its headers, its basic auth
        assert s["headers"]["X-Team"] == "chsi"
        assert s["headers"]["Authorization"] == aiohttp.BasicAuth("u", "p").encode()
        assert s["headers"]["Content-Type"] == "application/json"


def test_the_pooled_session_is_made_as_rasa_makes_its_own() -> None:
    endpoint = EndpointConfig(
        "http://127.0.0.1:1/webhook",
        headers={"A": "b"},
        basic_auth={"username": "u", "password": "p"},
    )

    async def both() -> tuple[Any, Any]:
        rasa_s = ORIGINAL_SESSION(endpoint)
        async with rasa_s, endpoint.session() as ours:
            pair = (rasa_s, ours)
            assert endpoint.session().session is ours  # the same one lent again
        assert not ours.closed  # kept for the next call
        await rasa_patches.close_pooled_sessions()
        assert ours.closed
        return pair

    rasa_s, ours = asyncio.run(both())
    assert ours.headers == rasa_s.headers
    assert ours._default_auth == rasa_s._default_auth
    assert ours.timeout == rasa_s.timeout
    assert ours.connector is None  # closed with the session


def test_an_idle_connection_is_closed_by_the_client_before_the_server(monkeypatch) -> None:
    """Kept shorter than the server keeps it: no request goes out on a connection the server is
    closing; and a connection the server did close (a restart) is not reused."""
    assert rasa_patches.KEEPALIVE_SECONDS < 5  # Sanic's KEEP_ALIVE_TIMEOUT, the action server's
    monkeypatch.setattr(rasa_patches, "KEEPALIVE_SECONDS", 0.2)
    with endpoint_server() as (url, seen):
        assert len(calls(EndpointConfig(url), 2, pause=0.5)) == 2
    assert [s["connection"] for s in seen] == [0, 1]
    monkeypatch.setattr(rasa_patches, "KEEPALIVE_SECONDS", 30)
    with endpoint_server(close_after=0.1) as (url, seen):
        assert len(calls(EndpointConfig(url), 2, pause=0.5)) == 2
    assert [s["connection"] for s in seen] == [0, 1]


def test_the_graph_run_patched_is_the_code_that_was_measured() -> None:
    assert rasa_patches.source_sha256(ORIGINAL_RUN) == rasa_patches.GRAPH_RUN_SHA256
    source = rasa_patches.inspect.getsource(ORIGINAL_RUN)
    # the hot spots the patch removes: the walk of the schema, dask, the formatted debug message
    assert "minimal_graph_schema(run_targets)" in source and "dask.get(" in source
    assert 'f"Running graph with inputs: {inputs}' in source


def story_trackers(agent: Any) -> list[Any]:
    """The tracker before each action of every test story, as the server holds it."""
    from rasa.core.test import _create_data_generator
    from rasa.shared.core.trackers import DialogueStateTracker

    trackers = []
    for story in _create_data_generator(
        "tests/stories", agent, use_conversation_test_files=True
    ).generate_story_trackers():
        trackers += [
            DialogueStateTracker.from_events(t.sender_id, list(t.events), agent.domain.slots)
            for t, _ in story.generate_all_prior_trackers()
            if t.events
        ]
    return trackers


def graph_outputs(
    agent: Any, texts: list[str], trackers: Sequence[Any] = (), targets: Sequence[str] = ()
) -> tuple:
    """The NLU graph's output for each text (as JSON) and each target's for each tracker."""
    from rasa.core.channels.channel import UserMessage
    from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER

    runner, nlu = agent.processor.graph_runner, agent.processor.model_metadata.nlu_target
    parsed = [
        runner.run({PLACEHOLDER_MESSAGE: [UserMessage(t)], PLACEHOLDER_TRACKER: None}, [nlu])[nlu][
            0
        ].as_dict(only_output_properties=True)
        for t in texts
    ]
    predicted = [runner.run({PLACEHOLDER_TRACKER: t}, list(targets)) for t in trackers]
    return [json.dumps(p, sort_keys=True, default=str) for p in parsed], predicted


def test_the_graph_run_in_place_answers_as_dask_does(served_agent, monkeypatch) -> None:
    """The trained NLU graph on every hold-out message and the policy graph at every turn of the
    test stories: the same outputs, through dask and in place."""
    agent = served_agent
    processor = agent.processor
    assert processor is not None and processor.model_metadata.core_target
    core = processor.model_metadata.core_target
    texts = [text for group in nlu_examples(HOLDOUT).values() for text in group]
    trackers = story_trackers(agent)

    def outputs(run: Any) -> tuple[list[str], list[Any]]:
        monkeypatch.setattr(DaskGraphRunner, "run", run)
        parsed, predicted = graph_outputs(agent, texts, trackers, [core])
        return parsed, [p[core] for p in predicted]

    dask_s, in_place = outputs(ORIGINAL_RUN), outputs(rasa_patches.run_graph)
    assert len(texts) > 400 and len(trackers) > 150
    assert in_place[0] == dask_s[0]
    assert in_place[1] == dask_s[1]
    # different answers, not one: many intents, many actions
    assert len({json.loads(p)["intent"]["name"] for p in in_place[0]}) > 10
    best = {max(range(len(p.probabilities)), key=p.probabilities.__getitem__) for p in in_place[1]}
    assert len(best) > 10


def test_the_model_load_patched_is_the_code_that_was_measured() -> None:
    assert rasa_patches.source_sha256(ORIGINAL_LOAD) == rasa_patches.MODEL_LOAD_SHA256
    # what the patch changes: the one training step that builds the weights, traced
    source = rasa_patches.inspect.getsource(ORIGINAL_LOAD)
    assert "model.fit(data_generator, verbose=False)" in source
    assert "model.load_weights(model_file_name)" in source


def test_a_model_loaded_without_tracing_its_training_step_is_rasa_s_to_the_last_bit(
    model_path, served_agent, monkeypatch
) -> None:
    """DIET's every variable and the NLU graph on every hold-out message: the same, loaded by
    Rasa's code and by the patch (the policies read no TensorFlow model: config.yml)."""
    import numpy as np
    from rasa.core.agent import Agent

    def loaded(load: Any) -> Any:
        monkeypatch.setattr(RasaModel, "load", load)
        return Agent.load(str(model_path))

    rasa_s, ours = loaded(ORIGINAL_LOAD), served_agent  # loaded with rasa_patches.LOAD_MODEL

    def diet(agent: Any) -> Any:
        nodes = agent.processor.graph_runner._instantiated_nodes.values()
        found = next(n._component for n in nodes if type(n._component).__name__ == "DIETClassifier")
        assert isinstance(found.model, RasaModel)  # the project's one TensorFlow model
        return found.model

    theirs, mine = diet(rasa_s), diet(ours)
    # each went the way it should: Rasa's traced its training step, the patch did not; both
    # predict through a traced graph (not eagerly), as Rasa compiles them
    assert theirs.train_tf_function is not None and mine.train_tf_function is None
    assert mine._run_eagerly == theirs._run_eagerly is False
    assert mine._tf_predict_step is not None and theirs._tf_predict_step is not None
    assert len(theirs.variables) > 20
    assert [v.name for v in mine.variables] == [v.name for v in theirs.variables]
    pairs = zip(mine.variables, theirs.variables, strict=True)
    assert [v.name for v, w in pairs if not np.array_equal(v.numpy(), w.numpy())] == []
    texts = [text for group in nlu_examples(HOLDOUT).values() for text in group]
    expected, _ = graph_outputs(rasa_s, texts)
    assert graph_outputs(ours, texts)[0] == expected
    assert len(texts) > 400 and len({json.loads(p)["intent"]["name"] for p in expected}) > 10


def test_the_graph_runs_each_node_after_what_it_needs(served_agent, monkeypatch) -> None:
    from rasa.engine.exceptions import GraphRunError

    agent = served_agent
    assert agent.processor is not None
    runner = agent.processor.graph_runner
    schema = runner._graph_schema
    for targets in ([agent.processor.model_metadata.nlu_target], schema.target_names):
        order = rasa_patches.execution_order(schema, targets)
        names = [name for name, _ in order]
        assert set(names) == set(schema.minimal_graph_schema(targets).nodes)  # Rasa's own walk
        assert len(names) == len(set(names))
        for position, (name, needs) in enumerate(order):
            assert needs == tuple(schema.nodes[name].needs.values())
            assert all(need not in names[position:] for need in needs)
    # as Rasa's: an input that names a node is refused, a node's RuntimeError is a GraphRunError
    nlu = agent.processor.model_metadata.nlu_target
    with pytest.raises(GraphRunError, match="clashes with a node name"):
        rasa_patches.run_graph(runner, {"__message__": nlu}, [nlu])

    def failing(*inputs: Any) -> None:
        raise RuntimeError("a node failed")

    monkeypatch.setitem(runner._instantiated_nodes, nlu, failing)
    with pytest.raises(GraphRunError) as raised:
        rasa_patches.run_graph(runner, {"__message__": []}, [nlu])
    assert str(raised.value.__cause__) == "a node failed"


def rasa_events() -> list[dict]:
    """Events as Rasa itself writes them, one of each kind the action server may send."""
    from rasa.shared.core import events as e

    made = [
        e.UserUttered("忘记密码", {"name": "forgot_password", "confidence": 0.9}, [], None),
        e.UserUttered(None, {"name": "greet", "confidence": 1.0}, [{"entity": "a", "value": 1}]),
        e.ActionExecuted("utter_greet", policy="RulePolicy", confidence=1.0),
        e.SlotSet("student_status", "graduate"),
        e.SlotSet("requested_slot", None),
        e.EntitiesAdded([{"entity": "level", "value": "本科", "start": 0, "end": 2}]),
        e.BotUttered("你好", {"buttons": []}),
        e.SessionStarted(),
        e.ActiveLoop("duplicate_id_form"),
        e.ActiveLoop(None),
        e.FollowupAction("action_listen"),
        e.Restarted(),
        e.AllSlotsReset(),
        e.ConversationPaused(),
        e.ConversationResumed(),
        e.ActionReverted(),
        e.UserUtteranceReverted(),
        e.ActionExecutionRejected("validate_duplicate_id_form"),
        e.LoopInterrupted(True),
        e.AgentUttered("hi"),
        e.ReminderCancelled(name="r"),
    ]
    return [event.as_dict() for event in made]


def mutations(event: dict) -> list[dict]:
    """An event spoilt in the ways a faulty or hostile action server might spoil it."""
    spoilt = [
        {k: v for k, v in event.items() if k != "event"},
        {**event, "event": "no_such_event"},
        {**event, "event": 3},
        {**event, "event": ["slot"]},
        {**event, "event": None},
        {**event, "timestamp": "yesterday"},
        {**event, "metadata": []},
        {**event, "extra": {"x": 1}},
    ]
    spoilt += [{k: v for k, v in event.items() if k != key} for key in event if key != "event"]
    spoilt += [{**event, key: [1, "2"]} for key in event if key != "event"]
    return spoilt


def test_responses_recognised_by_event_name_are_those_rasa_s_check_passes() -> None:
    """The shortcut says valid exactly when the full schema does: on every kind of event Rasa
    writes, on each of them spoilt, and on 3,000 random responses made of those."""
    full = rasa_patches._action_response_validator()
    events = rasa_events()
    candidates: list[Any] = [*VALID, *INVALID, None, "events", {"events": None}]
    candidates += [{"events": [event]} for event in events]
    candidates += [{"events": [spoilt]} for event in events for spoilt in mutations(event)]
    candidates += [{"events": [1]}, {"events": [[]]}, {"events": [{}]}, {"responses": {}}]
    pool = events + [s for event in events for s in mutations(event)]
    rng = random.Random(2026)
    for _ in range(3000):
        response: dict[str, Any] = {"events": rng.sample(pool, rng.randint(0, 4))}
        if rng.random() < 0.3:
            response["responses"] = rng.choice([[{"text": "好的"}], [{"text": 3}], [], "x"])
        candidates.append(response)
    verdicts = [(rasa_patches.valid_by_event_name(c), full.is_valid(c)) for c in candidates]
    assert [fast for fast, _ in verdicts] == [whole for _, whole in verdicts]
    assert 500 < sum(whole for _, whole in verdicts) < len(verdicts) - 500  # both kinds, many


def test_the_event_schema_names_one_branch_per_event() -> None:
    """What the shortcut stands on: the response's events are Rasa's event schema, every branch
    of its oneOf requires its own event name, and every event must have a name."""
    from rasa.shared.utils.schemas.events import EVENT_SCHEMA, EVENTS_SCHEMA

    assert RemoteAction.action_response_format_spec()["properties"]["events"] is EVENTS_SCHEMA
    assert EVENTS_SCHEMA["items"] is EVENT_SCHEMA and "event" in EVENT_SCHEMA["required"]
    names = [branch["properties"]["event"]["const"] for branch in EVENT_SCHEMA["oneOf"]]
    assert len(names) == len(set(names)) == len(EVENT_SCHEMA["oneOf"])
