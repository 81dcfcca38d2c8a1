"""First in the NLU pipeline: personal data never reaches the model, the parse result or a log.

ID-card numbers, mobile numbers and email addresses in the message become placeholders
(core.privacy), which the model learns as such: "我的身份证号是[身份证号]" is a message about
sharing an ID number, and the assistant answers that it should not be shared here.
"""

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

import core.privacy
from understanding.text_rewriter import TextRewriter


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class PersonalDataMasker(TextRewriter):
    """Replaces personal data in the message text with placeholders."""

    helper_modules = [core.privacy]

    def rewrite(self, text: str) -> str:
        return core.privacy.mask(text)
