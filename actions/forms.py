"""Slot extraction for the two forms: a typed "1" or "2" answers the question being asked.

Intents fill these slots through the domain's from_intent mappings; the methods here add the
numbered replies, which carry no intent of their own.
"""

from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.choices import pick

# The registration entity's values (data/entity_patterns.jsonl) as answers to registered_before.
REGISTRATION_VALUES: dict[str, bool] = {"before": True, "never": False}

# The order of each question's options in domain.yml (utter_ask_<slot>).
ID_ERROR_OPTIONS: list[str] = ["pending_review", "already_registered"]
REGISTERED_BEFORE_OPTIONS: list[bool] = [True, False]
STUDENT_STATUS_OPTIONS: list[str] = ["current", "graduate"]


def _numbered_answer(tracker: Tracker, slot: str, options: list[Any]) -> dict[str, Any]:
    """{slot: option} when the student answered the question for `slot` with its number."""
    if tracker.get_slot("requested_slot") != slot:
        return {}
    value: Any | None = pick(tracker.latest_message.get("text"), options)
    return {} if value is None else {slot: value}


class ValidateDuplicateIdForm(FormValidationAction):
    """Which message the student saw, and whether they registered with this ID before."""

    def name(self) -> str:
        return "validate_duplicate_id_form"

    async def extract_id_error(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _numbered_answer(tracker, "id_error", ID_ERROR_OPTIONS)

    async def extract_registered_before(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # "没注册过" said in passing ("我毕业了，也没注册过") answers it whatever is being asked.
        said = [
            REGISTRATION_VALUES[value]
            for value in tracker.get_latest_entity_values("registration")
            if value in REGISTRATION_VALUES
        ]
        if said:
            return {"registered_before": said[-1]}
        return _numbered_answer(tracker, "registered_before", REGISTERED_BEFORE_OPTIONS)


class ValidateStudentStatusForm(FormValidationAction):
    """Current student or graduate: route 3 asks each for different items."""

    def name(self) -> str:
        return "validate_student_status_form"

    async def extract_student_status(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _numbered_answer(tracker, "student_status", STUDENT_STATUS_OPTIONS)
