"""A dialogue policy that reads the student's message against the yes/no question just asked.

After "找回了吗？" (any response whose buttons offer /affirm), a message that answers it, read by
core/answers.py, is taken as that answer even when the classifier placed it elsewhere: "没，卡在
那个滑块验证那里" (nlu_fallback), "可以了，原来用户名是手机号" (forgot_username, 0.61), "不成，老
是转圈" (greet). The policy then predicts action_read_answer, which puts the message back as affirm
or deny (actions/answers.py), and the rules go on as after the buttons.

It speaks only when all of these hold: the assistant is waiting for the student (the last action
is action_listen), no form is active (a form reads its own answers), the response before the
message asked yes or no, the message reads as yes or no, and the classifier's intent is not
already an answer or a request (ANSWERS) and is either small talk, not understood, or below
MIN_CONFIDENCE: a confident new question ("不是密码，用户名也忘了" read as forgot_both) stays a
new question. Its priority is above RulePolicy's, so that it wins a tie with a rule.

The same holds for the other question the assistant asks in its own name: after a live takeover,
the hand-back note asks whether the person helped (core/answers.py: rating). A reply that reads
as a rating ("1", "２", "有帮助", "没用"), with the classifier's intent an answer, small talk or
unsure, is recorded by action_record_agent_rating; anything else is a new question as usual.
"""

from __future__ import annotations

from typing import Any

from rasa.core.policies.policy import Policy, PolicyPrediction, confidence_scores_for
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from core.answers import last_response, rated_agent, rating, yes_no_questions, yes_or_no

ACTION = "action_read_answer"
RATING_ACTION = "action_record_agent_rating"
# Intents that already answer, or ask for something the rules serve as such.
ANSWERS = {"affirm", "deny", "self_service_failed", "request_human", "start_over"}
# Intents that an answer is often mistaken for: taken over whatever their confidence.
SMALL_TALK = {"nlu_fallback", "greet", "thank", "goodbye", "bot_challenge", "out_of_scope"}
MIN_CONFIDENCE = 0.8
PRIORITY = 7  # RulePolicy's is 6


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class AnswerInContextPolicy(Policy):
    """Predicts action_read_answer for an answer to the yes/no question just asked."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"priority": PRIORITY}

    def train(
        self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any
    ) -> Resource:
        return self._resource  # nothing to learn: the questions are read from the domain

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        if ACTION in domain.action_names_or_texts and self.answers(tracker, domain):
            return self._prediction(confidence_scores_for(ACTION, 1.0, domain))
        if RATING_ACTION in domain.action_names_or_texts and self.rates(tracker):
            return self._prediction(confidence_scores_for(RATING_ACTION, 1.0, domain))
        return self._prediction(self._default_predictions(domain))

    @staticmethod
    def answers(tracker: DialogueStateTracker, domain: Domain) -> bool:
        """Whether the latest message answers the yes/no question just asked (see the module)."""
        waiting = message_waited_for(tracker)
        if waiting is None:
            return False
        text, name, confidence = waiting
        if name in ANSWERS or (name not in SMALL_TALK and confidence >= MIN_CONFIDENCE):
            return False
        asked = last_response(event.as_dict() for event in reversed(tracker.events))
        if asked not in yes_no_questions(domain.responses):
            return False
        return yes_or_no(text) is not None

    @staticmethod
    def rates(tracker: DialogueStateTracker) -> bool:
        """Whether the latest message rates the person who just handed the conversation back."""
        waiting = message_waited_for(tracker)
        if waiting is None:
            return False
        text, name, confidence = waiting
        unsure = name in SMALL_TALK or name in ("affirm", "deny") or confidence < MIN_CONFIDENCE
        if not unsure or rated_agent(event.as_dict() for event in reversed(tracker.events)) is None:
            return False
        return rating(text, name) is not None


def message_waited_for(tracker: DialogueStateTracker) -> tuple[str, str, float] | None:
    """(text, intent, confidence) of the student's latest message when the assistant was waiting
    for it (it listened, no form asks), else None."""
    if tracker.latest_action_name != ACTION_LISTEN_NAME or tracker.active_loop_name:
        return None
    message = tracker.latest_message
    if message is None or not message.text:
        return None
    intent = message.intent or {}
    text = message.parse_data.get("text") or message.text
    return text, str(intent.get("name") or ""), float(intent.get("confidence") or 0.0)
