"""A message read in the context of what the assistant just asked: core/answers.py (is it a yes or
a no), understanding/answer_policy.py (after a yes/no question), actions/answers.py (read again as
that answer; two candidates with the same next step). Examples written for this test, apart from
the training data and both hold-out sets."""

import asyncio
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import ActionReadAnswer, first_steps, same_next_step
from actions.clarify import ActionClarify
from core.answers import yes_no_questions, yes_or_no
from tests.helpers import ROOT, load_yaml


@pytest.mark.parametrize(
    "text, answer",
    [
        ("没有啊，页面一直转圈圈", "no"),
        ("还没，短信验证码一直没来", "no"),
        ("照着做了，还是不行", "no"),
        ("不太行，提示信息不匹配", "no"),
        ("找回了找回了，多谢", "yes"),
        ("刚刚登上去了，谢啦", "yes"),
        ("是的，新密码已经设好了", "yes"),
        ("搞定啦", "yes"),
        ("没毛病，能用了", "yes"),  # begins like a no
        ("我先去吃个饭", None),  # not an answer
        ("好的我去试试", None),  # going to try is not "it worked"
        ("找回密码的页面打不开", "no"),  # 找回 names the page here, not the result
        ("对了，审核要多久", None),  # a new question
        ("不用了，谢谢", None),
        ("没事，我再试试", None),
        ("", None),
        ("没" + "有" * 100, None),  # too long to be an answer
    ],
)
def test_an_answer_to_a_yes_no_question_is_read_as_yes_or_no(text: str, answer: str) -> None:
    assert yes_or_no(text) == answer


def test_the_yes_no_questions_are_the_responses_that_offer_affirm() -> None:
    domain = load_yaml(ROOT / "domain.yml")
    assert yes_no_questions(domain["responses"]) == {
        "utter_forgot_username",
        "utter_forgot_password",
        "utter_forgot_both",
        "utter_conscription_password",
    }


def test_the_next_step_of_each_intent_comes_from_the_unconditional_rules() -> None:
    steps = first_steps()
    assert steps["request_human"] == steps["self_service_failed"] == "utter_handoff"
    assert same_next_step("self_service_failed", "request_human")
    assert not same_next_step("forgot_password", "forgot_username")
    # the ID messages all start the same form, but each fills its slot its own way
    assert not same_next_step("error_pending_review", "error_already_registered")
    assert not same_next_step("no_such_intent", "another")


def conversation(bot: str, text: str, ranking: list[dict[str, Any]]) -> Tracker:
    typed = {
        "event": "user",
        "text": text,
        "input_channel": "rest",
        "message_id": "m1",
        "metadata": {"client": "c1"},
        "parse_data": {"intent": {"name": "nlu_fallback", "confidence": 0.4}},
    }
    return Tracker(
        sender_id="answers",
        slots={},
        latest_message={
            "text": text,
            "intent": {"name": "nlu_fallback", "confidence": 0.4},
            "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.4}, *ranking],
            "entities": [],
        },
        events=[
            {"event": "action", "name": bot},
            {"event": "bot", "text": "…"},
            {"event": "action", "name": "action_listen"},
            typed,
        ],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def clarified(tracker: Tracker, action: Any = None) -> list[dict[str, Any]]:
    domain = load_yaml(ROOT / "domain.yml")
    action = action or ActionClarify()
    return asyncio.run(action.run(CollectingDispatcher(), tracker, domain))


def test_an_answer_is_read_again_as_deny_with_the_student_s_own_message() -> None:
    events = clarified(
        conversation("utter_forgot_password", "没有呢，短信一直收不到", []), ActionReadAnswer()
    )
    assert [e["event"] for e in events] == ["rewind", "action", "user"]
    again = events[-1]
    assert again["parse_data"]["intent"] == {"name": "deny", "confidence": 1.0}
    # the same message, as the student sent it
    assert again["text"] == "没有呢，短信一直收不到" and again["message_id"] == "m1"
    assert again["metadata"] == {"client": "c1"} and again["input_channel"] == "rest"


def policy_reads(bot: str, text: str, intent: str, confidence: float, form: str = "") -> bool:
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from understanding.answer_policy import AnswerInContextPolicy

    events = [ActionExecuted(bot), BotUttered("…"), ActionExecuted("action_listen")]
    if form:
        events.insert(0, ActiveLoop(form))
    parse = {"text": text, "intent": {"name": intent, "confidence": confidence}}
    events.append(UserUttered(text, parse["intent"], parse_data=parse))
    tracker = DialogueStateTracker.from_events("policy", events)
    return AnswerInContextPolicy.answers(tracker, Domain.load(str(ROOT / "domain.yml")))


@pytest.mark.parametrize(
    "bot, text, intent, confidence, read",
    [
        ("utter_forgot_password", "没，卡在滑块那一步", "nlu_fallback", 0.4, True),
        ("utter_forgot_username", "可以了，原来账号就是手机号", "forgot_username", 0.61, True),
        ("utter_forgot_both", "不成，一直在转", "greet", 0.95, True),  # small talk: any confidence
        (
            "utter_forgot_password",
            "不是，用户名也忘了",
            "forgot_both",
            0.93,
            False,
        ),  # a new question
        ("utter_forgot_password", "没，卡在滑块那一步", "deny", 0.9, False),  # already an answer
        ("utter_review_time", "没，卡在滑块那一步", "nlu_fallback", 0.4, False),  # nothing asked
        ("utter_forgot_password", "今天天气不错", "out_of_scope", 0.9, False),  # not an answer
    ],
)
def test_the_policy_reads_an_answer_only_after_a_yes_no_question(
    bot: str, text: str, intent: str, confidence: float, read: bool
) -> None:
    assert policy_reads(bot, text, intent, confidence) is read


def test_the_policy_leaves_a_form_s_questions_to_the_form() -> None:
    assert not policy_reads(
        "utter_forgot_password", "没，卡在滑块那一步", "nlu_fallback", 0.4, "duplicate_id_form"
    )


def test_two_candidates_with_the_same_next_step_are_not_offered_as_a_choice() -> None:
    ranking = [
        {"name": "self_service_failed", "confidence": 0.36},
        {"name": "request_human", "confidence": 0.33},
    ]
    events = clarified(conversation("utter_greet", "自己弄不好，给个能问的地方", ranking))
    assert events[-1]["parse_data"]["intent"]["name"] == "self_service_failed"
    assert [e["event"] for e in events] == ["rewind", "action", "user"]


def test_the_answer_before_a_message_read_again_is_the_question_it_answers() -> None:
    from core.answers import last_response

    events = [
        {"event": "action", "name": "utter_forgot_password"},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "没，卡住了"},
        {"event": "action", "name": "action_read_answer"},
        {"event": "rewind"},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "没，卡住了"},
    ]
    assert last_response(reversed(events)) == "utter_forgot_password"
    # an earlier message, not read again, ends the search: no response in between
    events[4:5] = []
    assert last_response(reversed(events)) is None
    # a question of an earlier session is not the one being answered
    earlier = [events[0], {"event": "session_started"}, {"event": "user", "text": "不行"}]
    assert last_response(reversed(earlier)) is None


def test_a_message_read_again_counts_once_in_a_ticket_s_steps() -> None:
    from core.db.queries import without_reverted

    steps = [
        ("user", "forgot_password"),
        ("action", "utter_forgot_password"),
        ("user", "forgot_both"),  # the classifier's first reading
        ("action", "action_read_answer"),
        ("rewind", None),
        ("action", "action_listen"),
        ("user", "deny"),
    ]
    assert without_reverted(steps, kind=lambda step: step[0]) == [
        ("user", "forgot_password"),
        ("action", "utter_forgot_password"),
        ("action", "action_listen"),
        ("user", "deny"),
    ]


# ---- the student's rating of the person who helped (a live takeover's hand-back) ------------


@pytest.mark.parametrize(
    "text, intent, helped",
    [
        ("1", "nlu_fallback", True),
        ("１", "", True),
        ("有帮助", "", True),
        ("有用，谢谢", "", True),
        ("解决了", "affirm", True),  # read as yes by the classifier and by the words
        ("2", "", False),
        ("２。", "", False),
        ("没帮助", "", False),
        ("没有，还是登不上", "deny", False),
        ("一直登不上", "nlu_fallback", None),  # not a "1"
        ("有用户名但是密码忘了", "forgot_password", None),  # not "有用"
        ("没用这个身份证注册过", "never_registered", None),  # not "没用"
        ("还是收不到验证码", "nlu_fallback", None),  # a no, but to no question: a new question
        ("1. 有帮助", "", True),
        ("我还想问一下用户名的事", "", None),
        ("", "", None),
    ],
)
def test_a_reply_to_did_the_person_help_is_read_as_a_rating(
    text: str, intent: str, helped: Any
) -> None:
    from core.answers import rating

    assert rating(text, intent) is helped


def handed_back(
    text: str, intent: str, confidence: float, rated: str | None = "wang", later: bool = False
) -> Any:
    from rasa.shared.core.events import (
        ActionExecuted,
        BotUttered,
        ConversationPaused,
        ConversationResumed,
        SessionStarted,
        SlotSet,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker

    note = {"takeover": "note", "ended": "agent", **({"rating_for": rated} if rated else {})}
    events = [
        ActionExecuted("utter_handoff"),
        ActionExecuted("action_listen"),
        ConversationPaused(),
        BotUttered("同学你好", metadata={"takeover": "agent", "agent": "wang"}),
        BotUttered("工作人员已结束这次人工服务……帮到你了吗？", metadata=note),
        ConversationResumed(),
    ]
    if later:  # the student answers after the session expired: a new one starts first
        events += [
            SlotSet("session_started_metadata", {"client": "widget"}),
            ActionExecuted("action_session_start"),
            SessionStarted(),
            ActionExecuted("action_listen"),
        ]
    parse = {"text": text, "intent": {"name": intent, "confidence": confidence}}
    events.append(UserUttered(text, parse["intent"], parse_data=parse))
    return DialogueStateTracker.from_events("rating", events)


@pytest.mark.parametrize(
    "text, intent, confidence, rates",
    [
        ("1", "nlu_fallback", 0.3, True),
        ("有帮助", "affirm", 0.97, True),
        ("没用", "deny", 0.9, True),
        ("2", "greet", 0.62, True),
        ("密码还是找不回来", "forgot_password", 0.95, False),  # a new question
        ("转人工", "request_human", 0.99, False),
        ("还是收不到验证码", "nlu_fallback", 0.4, False),  # unsure, but no rating
    ],
)
def test_the_policy_reads_a_rating_only_right_after_the_hand_back(
    text: str, intent: str, confidence: float, rates: bool
) -> None:
    from understanding.answer_policy import AnswerInContextPolicy

    assert AnswerInContextPolicy.rates(handed_back(text, intent, confidence)) is rates
    assert AnswerInContextPolicy.rates(handed_back(text, intent, confidence, later=True)) is rates
    assert not AnswerInContextPolicy.rates(handed_back(text, intent, confidence, rated=None))


def test_the_rating_is_recorded_for_the_agent_the_hand_back_named(sqlite_url, monkeypatch) -> None:
    from actions.agent_rating import ActionRecordAgentRating
    from core.db import queries

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    events = [event.as_dict() for event in handed_back("２", "nlu_fallback", 0.3).events]
    tracker = Tracker("s1", {}, {"text": "２"}, events, False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionRecordAgentRating().run(dispatcher, tracker, {}))
    assert dispatcher.messages == []  # thanked by the rule that follows
    from datetime import datetime, timedelta

    now = datetime.utcnow()
    assert queries.agent_ratings(now - timedelta(minutes=1), now + timedelta(minutes=1)) == [
        ("wang", 0, 1)
    ]
