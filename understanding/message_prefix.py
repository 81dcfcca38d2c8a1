"""In the NLU pipeline right after the masker: the rest of the pipeline reads at most the first
NLU_MAX_CHARS characters (default 300) of a message, after a sentence said again word for word is
dropped (a paste repeated, or a message flooded with the same line, would otherwise fill the
prefix and drown the question asked once at the start).

The FAQ's questions are a sentence or two (the longest training example is under 60 characters),
while the cost of reading grows with the length: DIET's transformer is quadratic in the number of
tokens, and a 10,000-character message took 6.1 s and 1.8 GB with no limit (2-core machine). The
masker runs first, on the whole message, so an ID number cut in two by the limit is already a
placeholder. The conversation keeps what the student wrote (up to the channels' limit,
channels/limits.py).
"""

import re

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from core import settings
from understanding.text_rewriter import TextRewriter

# A sentence with its closing punctuation (Chinese or Latin), or a trailing piece without any.
SENTENCE = re.compile(r"[^。！？!?；;\n]*[。！？!?；;\n]+|[^。！？!?；;\n]+")


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class MessagePrefix(TextRewriter):
    """Cuts the text the pipeline reads to its first NLU_MAX_CHARS characters."""

    def rewrite(self, text: str) -> str:
        limit = settings.nlu_max_chars()
        if len(text) <= limit:
            return text
        kept, seen, length = [], set(), 0
        for sentence in SENTENCE.findall(text):
            key = sentence.strip()
            if key in seen:
                continue
            seen.add(key)
            kept.append(sentence)
            length += len(sentence)
            if length >= limit:
                break
        return "".join(kept)[:limit]
