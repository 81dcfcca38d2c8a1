"""understanding/human_request.py: an explicit request for a person is `request_human`, whatever
else the message says; a question about a person, a person in a story or a negated request is not.
Written for this test, apart from the training data and the hold-out set."""

import pytest

from understanding.human_request import asks_for_a_person
from understanding.normalizer import ChineseTextNormalizer

NORMALISE = ChineseTextNormalizer.create({}, None, None, None)  # type: ignore[arg-type]

REQUESTS = [
    "问了半天一点用都没有，烦死了，给我转人工",
    "你这个助手太笨了，我要找真人",
    "别绕了，直接联系你们的客服",
    "说了三遍你都听不懂，叫个工作人员来",
    "还要我填这么多，算了，换人工吧",
    "人工呢？？",
    "客服在吗",
    "能不能跟真人说两句",
    "有没有人工啊，我赶时间",
    "轉人工客服",  # traditional characters, read after the normaliser
    "人工客服！！",
    "我想联系一下学信网的客服，明天就截止了",
    "没空陪机器人聊，找管理员",
]

NOT_REQUESTS = [
    "你是真人还是机器人",
    "回答我的是人工客服吗",
    "客服说让我自己在网上找回密码",
    "证件号码显示在等客服审核，要多久",
    "提交以后是人工审核吗",
    "我已经联系了客服但是没人回",  # what was tried: the classifier decides
    "我已经联系客服了，客服说要等",
    "跟客服说过了，还是没用",
    "客服来电话说要补材料",  # the person called, the student did not ask
    "提交以后需要人工复核吗",  # a step of the review
    "不用转人工，我自己再试试",
    "别找客服了，告诉我怎么找回密码就行",
    "我不想要人工，你直接告诉我",
    "我电话[手机号]，你记一下",
    "学信网的用户名忘了",
]


@pytest.mark.parametrize("text", REQUESTS)
def test_an_explicit_request_for_a_person_is_found(text: str) -> None:
    assert asks_for_a_person(NORMALISE.rewrite(text))


@pytest.mark.parametrize("text", NOT_REQUESTS)
def test_a_person_mentioned_without_asking_for_one_is_left_to_the_classifier(text: str) -> None:
    assert not asks_for_a_person(NORMALISE.rewrite(text))
