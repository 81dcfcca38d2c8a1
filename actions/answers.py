"""Reading the student's latest message again, in the context of what the assistant just asked.

The classifier reads a message alone. Two cases need the conversation around it:
- **An answer to the assistant's own yes/no question.** The self-service answers end with
  "找回了吗？" and its buttons (/affirm, /self_service_failed); a typed "没有没有，我还没弄好"
  reached no intent, and "可以了，原来用户名是手机号" the wrong one, while 没有 alone works. The
  policy understanding/answer_policy.py notices such an answer (core/answers.py reads it) and
  runs action_read_answer.
- **Two candidates that lead to the same next step.** "问了也找不回来，给个联系方式" may be
  self_service_failed or request_human; both are answered by the same first action in the rules
  (data/rules/), so action_clarify takes that step instead of asking which one was meant.

Either way the message is read again as the intent that fits (`reinterpreted`), as Rasa's own
TwoStageFallbackAction does after a clarification: the turn is reverted and the same message,
text and metadata, is put back with that intent, so that the rules go on exactly as if the
student had pressed the button. Nothing the student wrote is changed or lost.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from core.answers import yes_or_no

RULES = Path(__file__).resolve().parent.parent / "data" / "rules"


@cache
def first_steps() -> dict[str, str]:
    """Intent -> the action that the unconditional rules take first after it (data/rules/): the
    next step the assistant takes for that intent, wherever the conversation is."""
    steps: dict[str, set[str]] = {}
    for path in sorted(RULES.glob("*.yml")):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8")).get("rules") or []:
            found = rule.get("steps") or []
            if rule.get("condition") or len(found) < 2 or "action" not in found[1]:
                continue
            first = found[0]
            intents = [s["intent"] for s in first.get("or", []) if "intent" in s]
            if "intent" in first:
                intents = [first["intent"]]
            for intent in intents:
                steps.setdefault(intent, set()).add(found[1]["action"])
    return {intent: next(iter(actions)) for intent, actions in steps.items() if len(actions) == 1}


def same_next_step(first: str, second: str) -> bool:
    """Whether both intents are answered by the same response first. Only a response counts: the
    ID-message intents all start duplicate_id_form, but each fills its slot differently."""
    steps = first_steps()
    step = steps.get(first) or ""
    return step.startswith("utter_") and step == steps.get(second)


def reinterpreted(tracker: Tracker, intent: str) -> list[EventType]:
    """The student's latest message put back as `intent` (see the module)."""
    typed: dict[str, Any] = next(
        (e for e in reversed(tracker.events) if e.get("event") == "user"), {}
    )
    parse_data = dict(tracker.latest_message)
    parse_data["intent"] = {"name": intent, "confidence": 1.0}
    parse_data["intent_ranking"] = [dict(parse_data["intent"])]
    again: EventType = {
        "event": "user",
        "timestamp": None,
        "text": typed.get("text"),
        "parse_data": parse_data,
        "input_channel": typed.get("input_channel"),
        "message_id": typed.get("message_id"),
        "metadata": typed.get("metadata") or {},
    }
    return [UserUtteranceReverted(), ActionExecuted("action_listen"), again]


class ActionReadAnswer(Action):
    """Reads the latest message again as the yes or no it gives to the question just asked."""

    def name(self) -> str:
        return "action_read_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        answer = yes_or_no(tracker.latest_message.get("text") or "")
        if answer is None:  # the policy read it as one; nothing to do if it no longer does
            return []
        return reinterpreted(tracker, "affirm" if answer == "yes" else "deny")
