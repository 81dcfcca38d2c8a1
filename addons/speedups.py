"""Measured fixes for Rasa 3.6 hot spots, applied when the Rasa server loads its tracker store.

- Rasa checks every action-server response with `jsonschema.validate(result, schema)`, which
  re-validates the (constant) schema against the draft 2020-12 meta-schema on every call. Profiled
  with py-spy under load (make bench), that was 31 % of the Rasa server's time. The same check
  with a validator built once for the schema: same errors (best_match), same exception, a few
  microseconds.
"""
import functools
from typing import Any, Dict, Text


@functools.lru_cache(maxsize=1)
def _action_response_validator() -> Any:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, as jsonschema.validate would on every call
    return cls(schema)


def _validate_action_result(self: Any, result: Dict[Text, Any]) -> bool:
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


def apply() -> None:
    from rasa.core.actions.action import RemoteAction

    RemoteAction._validate_action_result = _validate_action_result
