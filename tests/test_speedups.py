"""addons/speedups.py: the patched action-response check accepts and rejects exactly as Rasa's."""
import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

import addons.tracker_store  # noqa: F401  (applies the speedups, as in the Rasa server)

VALID = [{}, {"events": [], "responses": []},
         {"events": [{"event": "slot", "name": "ticket_number", "value": "3"}],
          "responses": [{"response": "utter_ticket_created"}]}]
INVALID = [{"events": "nope"}, {"responses": [1]}, {"events": [{"event": "slot"}]}, []]


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
