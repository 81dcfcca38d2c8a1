"""Unit tests for every custom action: the events they return and what they send."""
import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, AllSlotsReset, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.clarify import ActionClarify, intent_titles
from actions.conversation import ActionStartOver
from actions.forms import ValidateDuplicateIdForm, ValidateStudentStatusForm

SLOTS = ["id_error", "registered_before", "student_status", "topic", "requested_slot"]
DOMAIN: Dict[str, Any] = {
    "slots": {name: {"type": "any", "mappings": [{"type": "custom"}]} for name in SLOTS},
    "forms": {
        "duplicate_id_form": {"required_slots": ["id_error", "registered_before"]},
        "student_status_form": {"required_slots": ["student_status"]},
    },
}


def tracker(text: str, intent: str, form: Optional[str], requested: Optional[str],
            entities: Optional[List[Dict[str, Any]]] = None, **slots: Any) -> Tracker:
    values = {name: None for name in SLOTS}
    values.update(slots, requested_slot=requested)
    return Tracker(
        sender_id="unit",
        slots=values,
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.4},
                        "entities": entities or []},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={"name": form} if form else {},
        latest_action_name="action_listen",
    )


def run(action, t: Tracker) -> (List[Dict[str, Any]], CollectingDispatcher):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, DOMAIN))
    return events, dispatcher


@pytest.mark.parametrize("text, value", [("1", "pending_review"), ("2", "already_registered"),
                                         ("第二个", "already_registered")])
def test_duplicate_form_reads_numbered_answer_to_which_message(text: str, value: str) -> None:
    events, dispatcher = run(ValidateDuplicateIdForm(),
                             tracker(text, "nlu_fallback", "duplicate_id_form", "id_error"))
    assert SlotSet("id_error", value) in events
    assert dispatcher.messages == []


@pytest.mark.parametrize("text, value", [("1", True), ("2", False)])
def test_duplicate_form_reads_numbered_answer_to_registered_before(text: str, value: bool) -> None:
    events, dispatcher = run(
        ValidateDuplicateIdForm(),
        tracker(text, "nlu_fallback", "duplicate_id_form", "registered_before",
                id_error="already_registered"))
    assert SlotSet("registered_before", value) in events
    assert not any(e.get("name") == "id_error" for e in events)
    assert dispatcher.messages == []


@pytest.mark.parametrize("value, expected", [("never", False), ("before", True)])
def test_duplicate_form_reads_registration_said_in_passing(value: str, expected: bool) -> None:
    # "我毕业了，也没注册过" while the form asks which message: both facts are kept.
    entities = [{"entity": "student_status", "value": "graduate"},
                {"entity": "registration", "value": value}]
    events, dispatcher = run(ValidateDuplicateIdForm(),
                             tracker("我毕业了，也没注册过", "graduate", "duplicate_id_form",
                                     "id_error", entities))
    assert SlotSet("registered_before", expected) in events
    assert dispatcher.messages == []


def test_duplicate_form_ignores_a_number_out_of_range_or_for_another_question() -> None:
    events, _ = run(ValidateDuplicateIdForm(),
                    tracker("3", "nlu_fallback", "duplicate_id_form", "id_error"))
    assert [e for e in events if e.get("name") in ("id_error", "registered_before")] == []
    # "2" while the student-status form asks must not fill the duplicate-ID form's slots.
    events, _ = run(ValidateDuplicateIdForm(),
                    tracker("2", "nlu_fallback", "duplicate_id_form", "student_status"))
    assert [e for e in events if e.get("name") in ("id_error", "registered_before")] == []


def test_duplicate_form_keeps_a_slot_filled_by_intent() -> None:
    t = tracker("证件号码已被注册", "error_already_registered", "duplicate_id_form",
                "registered_before", id_error="already_registered")
    events, _ = run(ValidateDuplicateIdForm(), t)
    assert not any(e.get("name") == "id_error" and e.get("value") != "already_registered"
                   for e in events)


@pytest.mark.parametrize("text, value", [("1", "current"), ("2", "graduate"), ("２", "graduate")])
def test_student_status_form_reads_numbered_answer(text: str, value: str) -> None:
    events, dispatcher = run(ValidateStudentStatusForm(),
                             tracker(text, "nlu_fallback", "student_status_form", "student_status"))
    assert SlotSet("student_status", value) in events
    assert dispatcher.messages == []


def test_start_over_resets_every_slot_and_closes_the_form_without_a_message() -> None:
    t = tracker("重新开始", "start_over", "duplicate_id_form", "registered_before",
                id_error="pending_review", student_status="graduate", topic="duplicate_id")
    events, dispatcher = run(ActionStartOver(), t)
    assert events == [AllSlotsReset(), ActiveLoop(None)]
    # The reply comes from utter_start_over in the rule, not from the action.
    assert dispatcher.messages == []


def test_action_names_match_the_domain(domain) -> None:
    names = {ActionClarify().name(), ActionStartOver().name(), ValidateDuplicateIdForm().name(),
             ValidateStudentStatusForm().name()}
    assert names == set(domain["actions"])


def clarify_tracker(confidence: float, ranking: List[Dict[str, Any]]) -> Tracker:
    t = tracker("用户名还是密码", "nlu_fallback", None, None)
    t.latest_message["intent"] = {"name": "nlu_fallback", "confidence": confidence}
    t.latest_message["intent_ranking"] = [{"name": "nlu_fallback", "confidence": confidence}] + ranking
    return t


def test_clarify_offers_the_two_close_topics_with_their_titles() -> None:
    ranking = [{"name": "forgot_password", "confidence": 0.38},
               {"name": "forgot_username", "confidence": 0.33},
               {"name": "greet", "confidence": 0.1}]
    events, dispatcher = run(ActionClarify(), clarify_tracker(0.4, ranking))
    assert events == [SlotSet("clarifying", True),
                      SlotSet("clarify_first", "forgot_password"),
                      SlotSet("clarify_first_title", intent_titles()["forgot_password"]),
                      SlotSet("clarify_second", "forgot_username"),
                      SlotSet("clarify_second_title", intent_titles()["forgot_username"])]
    # The question itself is utter_did_you_mean, sent by the rule.
    assert dispatcher.messages == []


@pytest.mark.parametrize("confidence, ranking", [
    # far apart
    (0.4, [{"name": "forgot_password", "confidence": 0.7}, {"name": "forgot_username", "confidence": 0.1}]),
    # a candidate the assistant does not offer (small talk)
    (0.4, [{"name": "affirm", "confidence": 0.35}, {"name": "forgot_username", "confidence": 0.33}]),
    # both too weak
    (0.4, [{"name": "forgot_password", "confidence": 0.1}, {"name": "forgot_username", "confidence": 0.09}]),
    # no known word at all (UnknownWordsFallback): no candidate is worth offering
    (1.0, [{"name": "forgot_password", "confidence": 0.38}, {"name": "forgot_username", "confidence": 0.33}]),
    # nothing ranked
    (0.4, []),
])
def test_clarify_falls_back_to_rephrase_otherwise(confidence, ranking) -> None:
    events, dispatcher = run(ActionClarify(), clarify_tracker(confidence, ranking))
    assert events == [SlotSet("clarifying", False)]
    assert dispatcher.messages == []


def test_every_offered_title_names_a_domain_intent(domain) -> None:
    assert set(intent_titles()) <= set(domain["intents"])
    assert all(isinstance(t, str) and t.strip() for t in intent_titles().values())
