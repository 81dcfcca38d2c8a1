"""Measured fixes for Rasa 3.6 hot spots, applied by runtime/rasa_server.py before Rasa starts.

- Rasa checks every action-server response with `jsonschema.validate(result, schema)`, which
  re-validates the (constant) schema against the draft 2020-12 meta-schema on every call. Profiled
  with py-spy under load (make bench), that was 31 % of the Rasa server's time. The same check
  with a validator built once for the schema: same errors (best_match), same exception, a few
  microseconds.

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


def apply() -> bool:
    """Patches Rasa in this process; False (with a warning) when Rasa's code is not the one
    measured."""
    from rasa.core.actions.action import RemoteAction

    current = RemoteAction._validate_action_result
    if current is validate_action_result:
        return True
    if source_sha256(current) != VALIDATE_ACTION_RESULT_SHA256:
        logger.warning(
            "Rasa's RemoteAction._validate_action_result is not the code runtime/rasa_patches.py "
            "was measured against; left unpatched."
        )
        return False
    setattr(RemoteAction, "_validate_action_result", validate_action_result)  # noqa: B010
    return True
