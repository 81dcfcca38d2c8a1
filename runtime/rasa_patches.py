"""Measured fixes for Rasa 3.6 hot spots, applied by runtime/rasa_server.py before Rasa starts.

- Rasa checks every action-server response with `jsonschema.validate(result, schema)`, which
  re-validates the (constant) schema against the draft 2020-12 meta-schema on every call. Profiled
  with py-spy under load (make bench), that was 31 % of the Rasa server's time. The same check
  with a validator built once for the schema: same errors (best_match), same exception, a few
  microseconds.

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

Each patch names the sha256 of the Rasa source it replaces. When a Rasa upgrade changes that
source, the patch is not applied (a warning says so) and tests/test_rasa_patches.py fails, so that
the patch is measured and checked again rather than silently replacing new code.
"""

import functools
import hashlib
import inspect
import logging
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


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result with the validator built once."""
    from jsonschema import ValidationError, exceptions
    from rasa.shared.constants import DOCS_BASE_URL

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


def apply() -> bool:
    """Patches Rasa in this process; False (with a warning) when some of Rasa's code is not the
    one measured (that part is left unpatched)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.shared.core.events import Event
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
            _patch(Event, "resolve_by_type", RESOLVE_BY_TYPE_SHA256, RESOLVE_BY_TYPE),
        ]
    )
