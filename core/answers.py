"""Whether a short message answers a yes/no question with yes or no: "没有没有，我还没弄好" is a
no, "弄好了，按你说的改成功了" a yes, "好的我去试试" neither.

The assistant's self-service answers end with "找回了吗？". The classifier reads a message alone,
so a typed answer to that question could reach no intent, or another one ("可以了，原来用户名是手机
号" read as forgot_username). The policy that reads a message in the context of the question just
asked (understanding/answer_policy.py) and the action that reads it again (actions/answers.py) use
this one reading. It reads the text as the NLU pipeline has rewritten it (simplified characters,
dialect words in Mandarin, what a contrast sets aside dropped).
"""

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

# The intents that say an answer helped: action_record_feedback counts them as 有帮助, and the
# review list (stores/review.py) takes any other answer to "did it work?" as 没帮助.
HELPFUL_INTENTS = frozenset({"affirm"})

# Failure said anywhere in the answer: it did not work.
NO_ANYWHERE = re.compile(
    r"没找回|找不回|没成功|不成功|没弄好|没改好|没用|不行|登不上|登不进|进不去|打不开|对不上|失败|还是不|收不到|没收到"
)
# A no at the start: 没有，…; 还没呢…; 不是…
# (没事, 不用了, 不客气: not a no to "did it work?")
NO_FIRST = re.compile(
    r"^(?:没有|没(?!事|关系|问题|毛病)|还没|不是|并没有|不(?!用了|客气|要紧)|否|no\b|nope\b)"
)
# 没问题, 没事了: a yes that begins like a no.
NO_PROBLEM = re.compile(r"^(?:没问题|没事了|没毛病)")
# Success said anywhere: it worked.
YES_ANYWHERE = re.compile(
    r"找回来了|找回了|找到了|成功了|可以了|好使了|搞定|登上去了|登进去了|登上了|进去了|解决了|改好了|弄好了"
)
# A yes at the start: 是的…, 对对…, 嗯嗯…
# (对了 starts a new question, 对不上 is a no; 找回… may name the page, not the result)
YES_FIRST = re.compile(r"^(?:是的|对(?!了|不)|嗯嗯|yes\b|ok\b)")
MAX_ANSWER_CHARS = 60  # longer, it is a new question or a story, not an answer


def yes_or_no(text: str) -> str | None:
    """Yes or no ("yes", "no"), or None when `text` does not read as an answer to one."""
    text = unicodedata.normalize("NFKC", text or "").strip().lower()
    if not text or len(text) > MAX_ANSWER_CHARS:
        return None
    if NO_PROBLEM.match(text):
        return "yes"
    if NO_ANYWHERE.search(text) or NO_FIRST.match(text):
        return "no"
    if YES_ANYWHERE.search(text) or YES_FIRST.match(text):
        return "yes"
    return None


def yes_no_questions(responses: dict[str, Any]) -> set[str]:
    """The responses that ask a yes/no question: those whose buttons offer /affirm."""
    questions = set()
    for name, variants in (responses or {}).items():
        for variant in variants or []:
            payloads = {b.get("payload") for b in variant.get("buttons") or []}
            if "/affirm" in payloads:
                questions.add(name)
    return questions


def last_response(newest_first: Iterable[dict[str, Any]]) -> str | None:
    """The last utter_ action before the latest user message; events as dicts, newest first (a
    generator stops reading at the answer). A message read again (a "rewind", then the same
    message with its new intent: actions/answers.py) counts once: the reverted turn is skipped."""
    seen_user, reverted = False, 0
    for event in newest_first:
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            return None  # a question of an earlier session is not the one being answered
        if kind == "rewind":
            reverted += 1
        elif kind == "user":
            if reverted:
                reverted -= 1
            elif seen_user:
                return None
            else:
                seen_user = True
        elif seen_user and not reverted and kind == "action":
            name = event.get("name") or ""
            if name.startswith("utter_"):
                return name
    return None


# After a live takeover the hand-back note asks whether the person helped ("回复 1 有帮助，回复 2
# 没帮助"; channels/takeover_endpoint.py): the reply, typed or tapped, is read here.
RATED = "rating_for"  # the note's metadata key: the agent the question is about
# The digit or the words alone, or followed by punctuation: "一直登不上", "有用户名但…" and
# "没用这个身份证注册过" are not ratings.
RATING_END = r"(?:[\s.,，。!！、:：~～]|了|的|啊|呀|哦|谢谢|$)"
HELPED_WORDS = re.compile(rf"^(?:[1一]|有帮助|有用|帮到了|很有帮助|满意){RATING_END}")
NOT_HELPED_WORDS = re.compile(rf"^(?:[2二两]|没帮助|没有帮助|没用|没帮到|不满意){RATING_END}")
# Between the hand-back note and the student's reply, only the resumption and a new session's
# start may lie (the student may answer after the 60 minutes that end a session).
BETWEEN_ACTIONS = frozenset({"action_listen", "action_session_start"})


def rating(text: str, intent: str = "") -> bool | None:
    """Whether a reply to "did the person help?" says yes (True), no (False), or neither: the
    choice or the words themselves, or, when the classifier read the reply as a yes or a no
    (affirm, deny), that answer ("解决了"); a new question ("还是收不到验证码") is no rating."""
    text = unicodedata.normalize("NFKC", text or "").strip().lower()
    if not text or len(text) > MAX_ANSWER_CHARS:
        return None
    if NOT_HELPED_WORDS.match(text):
        return False
    if HELPED_WORDS.match(text):
        return True
    if intent in ("affirm", "deny"):
        said = yes_or_no(text)
        return said == "yes" if said is not None else intent == "affirm"
    return None


def rated_agent(newest_first: Iterable[dict[str, Any]]) -> str | None:
    """The agent whose help the latest message answers about: the hand-back note's, when only
    a session's start lies between the note and that message (events as dicts, newest first)."""
    seen_user = False
    for event in newest_first:
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                return None
            seen_user = True
        elif kind == "bot" and seen_user:
            agent = (event.get("metadata") or {}).get(RATED)
            return str(agent)[:64] if agent else None
        elif kind in ("restart", "rewind") or (
            kind == "action" and event.get("name") not in BETWEEN_ACTIONS
        ):
            return None  # anything else between (a resumption, a session's start) is passed
    return None
