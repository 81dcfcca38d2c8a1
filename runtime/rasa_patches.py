"""Measured fixes for Rasa 3.6 hot spots, applied by runtime/rasa_server.py before Rasa starts.

- Rasa checks every action-server response with `jsonschema.validate(result, schema)`, which
  re-validates the (constant) schema against the draft 2020-12 meta-schema on every call. Profiled
  with py-spy under load (make bench), that was 31 % of the Rasa server's time. The same check
  with a validator built once for the schema: same errors (best_match), same exception. That
  check still tried each event against all 23 branches of the event schema's `oneOf`, making an
  error for each branch that does not match: 0.4 ms for a response of two events. Each branch
  requires its own `event` name, so an event that has a name matches no branch but that name's:
  a response is valid when each event, by its name, passes that one branch and the checks every
  event has. Anything else (an unknown name, a failing branch, a strange shape) goes to the full
  check, for Rasa's own verdict and error.

- RulePolicy checks every rule against the conversation's last states at each prediction
  (`_get_possible_keys`: about 5 % of a worker's time under load, py-spy). Its answer depends only
  on the last states as far back as the longest rule reaches, and conversations keep reaching the
  same few; so the answer is remembered per distinct run of those states (repr, up to
  MAX_REMEMBERED_RULE_MATCHES runs, then forgotten and filled again).

- DIET's prediction runs through a `tf.function` with a fixed input signature. On every call
  TensorFlow matches the inputs against that signature again (`canonicalize_function_inputs`):
  about two thirds of the call's time, 6 % of a worker's (py-spy, one student at a time). With a
  fixed signature the function has exactly one concrete function, so the second prediction on
  swaps it in and later ones call it directly: the same graph, the same outputs, about 1 ms less
  per message.

- Rasa finds an event's class by its name (`Event.resolve_by_type`) by listing every subclass of
  Event afresh, each checked with `inspect.isabstract`: about 50 µs, for every event read from
  the database or the action server, so 2 ms of a turn that reads 40 stored events. The answer is
  remembered per name, and forgotten whenever a new Event class is defined.

- Rasa runs its NLU and policy graphs through dask (`DaskGraphRunner.run`), and on every run
  first works out which nodes the targets need, by a walk that visits a node once per path to it,
  and formats its inputs (the tracker) into a debug message whether or not debug is logged. With
  the graph's own nodes run in place, in an order worked out once per set of targets, that was
  9 % of a worker's time with one student at a time (py-spy). Each node is called with its
  dependencies' outputs exactly as dask calls it; inference runs no hooks.

- Rasa opens a new aiohttp session, and so a new TCP connection, for every call to the action
  server (`EndpointConfig.session`, used as `async with endpoint.session() as session`). A form
  turn makes two such calls. Each worker now keeps one session per event loop and lends it out:
  the same headers, auth and timeout, its connections kept for KEEPALIVE_SECONDS, below the
  action server's (Sanic's) 5 s, so that the client, not the server, closes an idle connection
  and a request never goes out on a connection the server is closing. Closed when the server
  stops (runtime/rasa_server.py).

- Rasa builds a loaded DIET model's weights by training it for one step on one example
  (`RasaModel.load`: `model.fit`), then reads the trained weights over them. That step is traced
  into a TensorFlow graph first, with autograph: about 6 s of the 11 s a worker took to load this
  project's model, idle, and more on a busy machine, paid again by every worker that starts or
  takes over. The same step is now run eagerly (Rasa's own `run_eagerly` option, for that step
  only): the same variables exist, the same weights are read over them, the prediction graph is
  traced as before, and the answers are the same to the last bit. Measured with `Agent.load` in
  a fresh process each time, twice each, in turns: 5.0–5.3 s instead of 10.1–10.4 s, and the
  process 700 MB resident after it instead of 814 MB (522 MB before). Only DIET itself is loaded
  this way (the model checked); a model loaded for fine-tuning (`rasa train --finetune`), TED and
  the response selector's models go through Rasa's own code.

Each patch names the sha256 of the Rasa source it replaces. When a Rasa upgrade changes that
source, the patch is not applied (a warning says so) and tests/test_rasa_patches.py fails, so that
the patch is measured and checked again rather than silently replacing new code.
"""

import asyncio
import functools
import hashlib
import inspect
import logging
import weakref
from typing import Any

logger = logging.getLogger(__name__)

# sha256 of the source of RemoteAction._validate_action_result in Rasa 3.6.21.
VALIDATE_ACTION_RESULT_SHA256 = "f8cdb4be6812396167ced74161b2ccd65c5ea676ad86d7d359d8c322d9d8dc42"
# sha256 of the source of RulePolicy._get_possible_keys in Rasa 3.6.21.
GET_POSSIBLE_KEYS_SHA256 = "2915fd81711e194c6d667728e00bd0e51e9c1c2791a0be14c55f0ef9938f9936"
MAX_REMEMBERED_RULE_MATCHES = 4096
# sha256 of the source of Event.resolve_by_type in Rasa 3.6.21.
RESOLVE_BY_TYPE_SHA256 = "b5cf570fa7f286c7059ec73d8880528d03a78b28cf4e80285a46079c0fa65968"
# sha256 of the source of RasaModel._rasa_predict in Rasa 3.6.21.
RASA_PREDICT_SHA256 = "7f745b0f9cb647c9df9e5b04b318a7b93709daf9460bad4373970c6cf9f04d8f"
# sha256 of the source of DaskGraphRunner.run in Rasa 3.6.21.
GRAPH_RUN_SHA256 = "45f0f52f574f3aa9546a552bf671183e171092c18b66e97f5771a7fa295de37e"
# sha256 of the source of RasaModel.load in Rasa 3.6.21.
MODEL_LOAD_SHA256 = "84fd81c0fdd01a8048de2d9b5b3022bdbf1e155f7b4d67737eb51ecb0787d292"
# sha256 of the source of EndpointConfig.session in Rasa 3.6.21.
ENDPOINT_SESSION_SHA256 = "e55aa13d9d4fb4bc440ac33b870a97ee162b76dda7ccb6bf68433567475fdffb"
# How long an idle connection to the action server is kept: below Sanic's KEEP_ALIVE_TIMEOUT (5 s).
KEEPALIVE_SECONDS = 2.0


def source_sha256(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def _action_response_validator() -> Any:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, as jsonschema.validate would on every call
    return cls(schema)


@functools.lru_cache(maxsize=1)
def _validators_by_event_name() -> tuple[Any, dict[str, Any]]:
    """The action response schema with its events only checked to be a list; and per event
    name, the one branch of the event schema's `oneOf` that names it, with what every event is
    checked for."""
    from rasa.shared.utils.schemas.events import EVENT_SCHEMA

    whole = _action_response_validator()
    schema = whole.schema
    outer = {**schema, "properties": {**schema["properties"], "events": {"type": "array"}}}
    every_event = {key: value for key, value in EVENT_SCHEMA.items() if key != "oneOf"}
    by_name = {
        branch["properties"]["event"]["const"]: type(whole)({"allOf": [every_event, branch]})
        for branch in EVENT_SCHEMA["oneOf"]
    }
    return type(whole)(outer), by_name


def valid_by_event_name(result: Any) -> bool:
    """True only when the full check would pass the result: each event checked against the one
    branch its name can match. False: not known, ask the full check."""
    outer, by_name = _validators_by_event_name()
    if not isinstance(result, dict) or not outer.is_valid(result):
        return False
    for event in result.get("events", ()):
        name = event.get("event") if isinstance(event, dict) else None
        if not isinstance(name, str) or name not in by_name or not by_name[name].is_valid(event):
            return False
    return True


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result with the validator built once, and valid responses
    recognised by their events' names."""
    from jsonschema import ValidationError, exceptions
    from rasa.shared.constants import DOCS_BASE_URL

    if valid_by_event_name(result):
        return True

    error = exceptions.best_match(_action_response_validator().iter_errors(result))
    if error is None:
        return True
    assert isinstance(error, ValidationError)
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from the"
        f" Action endpoint is valid. For more information about the format visit"
        f" {DOCS_BASE_URL}/custom-actions"
    )
    raise error


# Rasa's code that each patch replaced, by "Class.method".
ORIGINALS: dict[str, Any] = {}


def get_possible_keys(self: Any, lookup: dict[str, str], states: list[Any]) -> set[str]:
    """RulePolicy._get_possible_keys, remembered per run of the states a rule can reach."""
    longest_rules = self.__dict__.setdefault("_longest_rule", {})
    if id(lookup) not in longest_rules:
        longest_rules[id(lookup)] = max(
            (len(self._rule_key_to_state(key)) for key in lookup), default=0
        )
    longest = longest_rules[id(lookup)]
    remembered = self.__dict__.setdefault("_remembered_rule_matches", {})
    key = (id(lookup), repr(states[-longest:] if longest else []))
    if key not in remembered:
        if len(remembered) >= MAX_REMEMBERED_RULE_MATCHES:
            remembered.clear()
        original = ORIGINALS["RulePolicy._get_possible_keys"]
        remembered[key] = frozenset(original(self, lookup, states))
    return set(remembered[key])


def rasa_predict(self: Any, batch_in: Any) -> Any:
    """RasaModel._rasa_predict calling its prediction graph's concrete function directly.

    Rasa's first call builds `_tf_predict_step`, a tf.function with an input signature; from the
    next call on it is replaced by its one concrete function, which Rasa's code then calls."""
    step = self._tf_predict_step
    if step is not None and hasattr(step, "get_concrete_function"):
        self._tf_predict_step = step.get_concrete_function()
    return ORIGINALS["RasaModel._rasa_predict"](self, batch_in)


def load_model(
    cls: Any,
    model_file_name: str,
    model_data_example: Any,
    predict_data_example: Any = None,
    finetune_mode: bool = False,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """RasaModel.load with its one training step (which only builds the weights) run eagerly,
    for DIET; any other model, or one loaded for fine-tuning, through Rasa's own code."""
    import tensorflow as tf
    from rasa.nlu.classifiers.diet_classifier import DIET
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator

    # DIET itself only (the model checked bit for bit), not to be trained on afterwards; TED and
    # the response selector's subclasses, whose eager step may build fewer branches, go to Rasa
    if cls is not DIET or finetune_mode:
        rasa_s = ORIGINALS["RasaModel.load"].__func__
        return rasa_s(
            cls,
            model_file_name,
            model_data_example,
            predict_data_example,
            finetune_mode,
            *args,
            **kwargs,
        )
    model = cls(*args, **kwargs)
    config = kwargs.get("config", {})
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)), run_eagerly=True
    )
    model.fit(RasaBatchDataGenerator(model_data_example, batch_size=1), verbose=False)
    model.run_eagerly = config.get(RUN_EAGERLY)  # predictions: as Rasa compiles it
    model.load_weights(model_file_name)
    if predict_data_example:  # traces the prediction graph now, as Rasa does
        model.run_inference(predict_data_example)
    return model


# the object set on RasaModel (the same one each time, so that applying twice is a no-op)
LOAD_MODEL = classmethod(load_model)


# Event classes found by name, until a new Event class is defined (see forget_event_classes).
EVENT_CLASSES: dict[str, Any] = {}
_NOT_FOUND = object()


def resolve_by_type(type_name: str, default: Any = None) -> Any:
    """Event.resolve_by_type, remembered per name; unknown names go to Rasa's code every time."""
    found = EVENT_CLASSES.get(type_name)
    if found is None:
        rasa_s = ORIGINALS["Event.resolve_by_type"].__func__
        found = rasa_s(type_name, _NOT_FOUND)
        if found is _NOT_FOUND or found is None:
            return rasa_s(type_name, default)  # Rasa's answer: the default, None or an error
        EVENT_CLASSES[type_name] = found
    return found


def forget_event_classes(cls: Any, **kwargs: Any) -> None:
    """Event.__init_subclass__: a new Event class may answer to a name first."""
    from rasa.shared.core.events import Event

    EVENT_CLASSES.clear()
    super(Event, cls).__init_subclass__(**kwargs)


# the objects set on Event (the same ones each time, so that applying twice is a no-op)
RESOLVE_BY_TYPE = staticmethod(resolve_by_type)
FORGET_EVENT_CLASSES = classmethod(forget_event_classes)


def execution_order(schema: Any, targets: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The nodes the targets need, each after the nodes it needs, with the names of those."""
    order: list[tuple[str, tuple[str, ...]]] = []
    placed: set[str] = set()
    stack: list[tuple[str, bool]] = [(target, False) for target in reversed(targets)]
    while stack:  # depth first, without recursion: a node is placed after all it needs
        name, needs_placed = stack.pop()
        if name in placed or name not in schema.nodes:  # done, or an input placeholder
            continue
        needs = tuple(schema.nodes[name].needs.values())
        if needs_placed:
            placed.add(name)
            order.append((name, needs))
        else:
            stack.append((name, True))
            stack.extend((need, False) for need in reversed(needs) if need not in placed)
    return order


def run_graph(
    self: Any, inputs: dict[str, Any] | None = None, targets: list[str] | None = None
) -> dict[str, Any]:
    """DaskGraphRunner.run: the same nodes called with the same arguments, in place."""
    from rasa.engine.exceptions import GraphRunError

    run_targets = targets if targets else self._graph_schema.target_names
    plans = self.__dict__.setdefault("_execution_orders", {})
    order = plans.get(tuple(run_targets))
    if order is None:
        order = plans[tuple(run_targets)] = execution_order(self._graph_schema, run_targets)
    # as dask holds them: an input as (name, value), a node's output as the node returns it
    results: dict[str, Any] = {}
    for input_name, input_value in (inputs or {}).items():
        if isinstance(input_value, str) and (
            input_value in results or any(input_value == name for name, _ in order)
        ):
            raise GraphRunError(
                f"Input value '{input_value}' clashes with a node name. Make sure that none of "
                f"the input names passed to the `run` method are the same as node names in the "
                f"graph schema."
            )
        results[input_name] = (input_name, input_value)
    nodes = self._instantiated_nodes
    try:
        for name, needs in order:
            # a name that is neither a node nor an input is passed as the name, as dask does
            results[name] = nodes[name](*(results.get(need, need) for need in needs))
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e
    return dict(results[target] for target in run_targets)


class Lent:
    """A pooled session lent for one `async with`: entering gives the session, leaving keeps it
    open for the next call."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def __aenter__(self) -> Any:
        return self.session

    async def __aexit__(self, *exc_info: Any) -> None:
        return None


# the pooled sessions of each event loop (a worker has one), to close when the server stops
POOLED: "weakref.WeakKeyDictionary[Any, list[Any]]" = weakref.WeakKeyDictionary()


def pooled_session(self: Any) -> Lent:
    """EndpointConfig.session: this endpoint's session on the running loop, made as Rasa makes
    it (headers, auth, timeout) with a connector that keeps idle connections KEEPALIVE_SECONDS."""
    import aiohttp
    from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT

    loop = asyncio.get_running_loop()
    sessions = self.__dict__.get("_pooled_sessions")
    if sessions is None:
        sessions = self.__dict__["_pooled_sessions"] = weakref.WeakKeyDictionary()
    session = sessions.get(loop)
    if session is None or session.closed:
        basic = self.basic_auth
        session = aiohttp.ClientSession(
            headers=self.headers,
            auth=aiohttp.BasicAuth(basic["username"], basic["password"]) if basic else None,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
        )
        sessions[loop] = session
        POOLED.setdefault(loop, []).append(session)
    return Lent(session)


async def close_pooled_sessions() -> None:
    """Closes the pooled sessions of the running loop (at server stop)."""
    for session in POOLED.pop(asyncio.get_running_loop(), []):
        await session.close()


def original(owner: Any, name: str) -> Any:
    """Rasa's own owner.name, patched or not."""
    return ORIGINALS.get(f"{owner.__name__}.{name}", owner.__dict__[name])


def original_get_possible_keys() -> Any:
    """Rasa's own RulePolicy._get_possible_keys, patched or not."""
    from rasa.core.policies.rule_policy import RulePolicy

    return original(RulePolicy, "_get_possible_keys")


def _patch(owner: Any, name: str, sha256: str, replacement: Any) -> bool:
    current = owner.__dict__[name]
    if current is replacement:
        return True
    if source_sha256(current) != sha256:
        logger.warning(
            "Rasa's %s.%s is not the code runtime/rasa_patches.py was measured against; left "
            "unpatched.",
            owner.__name__,
            name,
        )
        return False
    ORIGINALS[f"{owner.__name__}.{name}"] = current
    setattr(owner, name, replacement)
    return True


def patch_model_load() -> bool:
    """Only the model load patched (the tests that load the model in their own process)."""
    from rasa.utils.tensorflow.models import RasaModel

    return _patch(RasaModel, "load", MODEL_LOAD_SHA256, LOAD_MODEL)


def apply() -> bool:
    """Patches Rasa in this process; False (with a warning) when some of Rasa's code is not the
    one measured (that part is left unpatched)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.core.events import Event
    from rasa.utils.endpoints import EndpointConfig
    from rasa.utils.tensorflow.models import RasaModel

    Event.__init_subclass__ = FORGET_EVENT_CLASSES
    return all(
        [
            _patch(
                RemoteAction,
                "_validate_action_result",
                VALIDATE_ACTION_RESULT_SHA256,
                validate_action_result,
            ),
            _patch(RulePolicy, "_get_possible_keys", GET_POSSIBLE_KEYS_SHA256, get_possible_keys),
            _patch(RasaModel, "_rasa_predict", RASA_PREDICT_SHA256, rasa_predict),
            patch_model_load(),
            _patch(Event, "resolve_by_type", RESOLVE_BY_TYPE_SHA256, RESOLVE_BY_TYPE),
            _patch(EndpointConfig, "session", ENDPOINT_SESSION_SHA256, pooled_session),
            _patch(DaskGraphRunner, "run", GRAPH_RUN_SHA256, run_graph),
        ]
    )
