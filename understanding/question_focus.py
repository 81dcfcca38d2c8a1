"""A long story with the question at its end is read with that question weighed twice.

A new student explains who told them to log in, when they registered, what they tried, and only
then asks: "辅导员今天在群里通知要登录学信网核对学籍，我大一的时候注册过一次，…，请问密码忘
了该怎么办".
Every clause of the story names something the classifier knows (学籍, 注册, 登不上), and the
question is one clause among six: the classifier spread its weight over several topics and asked
which one was meant. This rewriter finds the question, the last clause that asks (a lead word
such as 请问 or 想问, or a question word such as 怎么 or 多久), and adds it once more at the end
of the text, so that it counts twice in what the classifier reads while the story still counts.

Only for messages that tell a story (at least MIN_CLAUSES clauses and MIN_CHARS characters)
whose question names something of its own (MIN_QUESTION_IDEOGRAPHS characters besides the
question words: "这是什么情况" takes its topic from the story, and is left alone). The question
added is at most MAX_QUESTION characters; the pipeline has already cut the text to its first
NLU_MAX_CHARS (understanding/message_prefix.py). Training examples are a sentence or two and are
left as they are. The tracker keeps what the student wrote. Placed after the contrast reader.
"""

from __future__ import annotations

import re

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from understanding import cjk
from understanding.text_rewriter import TextRewriter

MIN_CLAUSES = 4
MIN_CHARS = 45
MAX_QUESTION = 30
MIN_QUESTION_IDEOGRAPHS = 2

CLAUSE = re.compile(r"[^,;.!?，；。！？\n]+")
# Words that make a clause a question. A lead (请问, 想问) starts the question where it stands.
LEAD = re.compile(r"请问|想问一下|想问问|想问|问一下|想知道|我想了解")
ASKS = re.compile(
    r"怎么|怎样|咋|如何|什么|哪|多久|多长时间|几天|能不能|可不可以|能否|是否|是不是|吗|呢|么"
)
# Question and function words that name no topic of their own.
NAMES_NOTHING = re.compile(
    r"请问|想问一下|想问问|想问|问一下|想知道|我想了解|怎么办|怎么|怎样|如何|什么|情况|"
    r"哪里|哪些|哪个|能不能|可不可以|能否|是否|是不是|这种|这个|那个|一下|一般|"
    r"应该|需要|具体|现在|我|你|了|吗|呢|啊|的|该|要|是|这|那"
)


def question_part(text: str) -> str | None:
    """The question a story ends with, from its lead word or its clause; None when `text` is
    no story or its question names nothing of its own."""
    clauses = list(CLAUSE.finditer(text))
    if len(clauses) < MIN_CLAUSES or len(text) < MIN_CHARS:
        return None
    for clause in reversed(clauses[1:]):  # the first clause is no story's ending
        words = clause.group()
        if not ASKS.search(words) and not LEAD.search(words):
            continue
        lead = LEAD.search(words)
        question = words[lead.start() :] if lead else words
        question = question.strip()
        topic = NAMES_NOTHING.sub("", question)
        if len(question) > MAX_QUESTION:
            return None
        if sum(cjk.is_ideograph(char) for char in topic) < MIN_QUESTION_IDEOGRAPHS:
            return None
        return question
    return None


def weighed(text: str) -> str:
    """`text`, with the question it ends with said once more (see the module)."""
    question = question_part(text)
    return f"{text}。{question}" if question else text


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class QuestionFocus(TextRewriter):
    """Weighs a long story's question twice (see the module); place it after the contrast
    reader."""

    helper_modules = [cjk]

    def rewrite(self, text: str) -> str:
        return weighed(text)
