"""An NLU component that lets an explicit request for a person win, whatever else the message says.

A student who writes "问了半天也没用，烦死了，给我转人工" has asked for a person, even though most
of the message is a complaint, and the classifier, weighing the complaint, may pick another intent
or none. Inside a form that meant the form's question again. This component, placed after the
classifiers, reads the normalised text for a request: a verb of asking (要, 找, 转, 联系…) right
before a person (人工, 真人, 客服, 工作人员…), a person called for (人工呢, 客服在吗), or the bare
request (人工, 转人工). When it finds one that is not negated (不用转人工, 别找客服), the intent
becomes `request_human`, and the rules hand off from any form step (data/rules/).

What it does not take for a request, by design: a question about a person (你是真人吗: a bot
challenge), a person as the subject (客服说…, 等客服审核: a story or the review time), a person
mentioned after the fact (联系了客服: what the student tried). The classifier still decides those.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from understanding.fingerprint import source_fingerprint

INTENT_NAME = "request_human"
PERSON = r"(?:人工客服|人工服务|人工|真人客服|真人|活人|客服人员|客服|工作人员|管理员)"
ASKING = r"(?:要|找|转|接|联系|叫|喊|请|需要|想找|想要|想联系|给我|给个|来个|换|切)"
BETWEEN = r"(?:一下|一个|个|下|到|成|给|你们的?|学信网的?){0,2}"
REQUESTS = (
    # a verb of asking right before a person: 转人工, 找客服, 联系一下学信网的客服, 给我个真人
    re.compile(ASKING + BETWEEN + PERSON),
    # a person called for: 人工呢, 客服在吗, 真人出来
    re.compile(r"(?:人工|真人|客服)(?:呢|在吗|在不在|出来|来)"),
    # speaking with a person: 跟真人说, 和人工聊
    re.compile(r"(?:跟|和|同)(?:真人|人工|客服|工作人员)(?:说|聊|讲|沟通|对话|谈)"),
    # is there a person to talk to: 有没有人工, 有人工服务吗
    re.compile(r"有(?:没有)?(?:人工|真人客服)"),
    # the request alone: 人工, 人工客服, 转人工, 真人客服 (and punctuation)
    re.compile(r"^(?:转)?(?:人工|人工客服|人工服务|真人客服)[!?.。！？~～]*$"),
)
# A request said not to be one: 不用转人工, 别找客服, 不需要人工, 没必要找真人.
NEGATION = re.compile(r"(?:不|别|甭|没必要|无需|不需要|不用|用不着)(?:想|用|要|必)?(?:再|去)?$")
NEGATION_REACH = 4  # characters before the request that may negate it
# Personal data the masker replaced ([手机号]…) is not read as a request either.
PLACEHOLDER = re.compile(r"\[[^\]]{1,8}\]")
# What the question is about does not matter here: 人工审核 is a step of the review, not a person.
NOT_A_PERSON = re.compile(r"人工(?:审核|核验|核查|核对|复核|处理|智能)|客服(?:审核|核验|复核|来电)")
# A person already reached (联系客服了, 跟客服说过, 和客服沟通过…): what the student tried, a story.
DONE = re.compile(r"^(?:[^,.!?，。！？]{0,6})?(?:了|过)")


def asks_for_a_person(text: str) -> bool:
    """Whether `text` (normalised) asks for a person, and not in a negated way."""
    text = NOT_A_PERSON.sub("  ", PLACEHOLDER.sub(" ", text))
    for pattern in REQUESTS:
        for found in pattern.finditer(text):
            before = text[max(0, found.start() - NEGATION_REACH) : found.start()]
            if NEGATION.search(before) or DONE.match(text[found.end() :]):
                continue
            return True
    return False


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class HumanRequestClassifier(GraphComponent):
    """Sets `request_human` on a message that asks for a person; place it after the classifiers
    and the fallbacks."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        return source_fingerprint(sys.modules[__name__])

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> HumanRequestClassifier:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or not asks_for_a_person(text):
                continue
            chosen = message.get(INTENT) or {}
            if chosen.get("name") == INTENT_NAME:
                continue
            request = {"name": INTENT_NAME, "confidence": 1.0}
            ranking = [
                r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != INTENT_NAME
            ]
            message.set(INTENT, request, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [dict(request)] + ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
