"""understanding/question_focus.py: a long story that ends with a question is read with the
question weighed twice. Written for this test, apart from the training data and the hold-outs."""

import pytest

from evaluation.holdout import TRAINING_DIR, holdout, read_examples, training
from understanding.normalizer import normalize
from understanding.question_focus import MAX_QUESTION, question_part, weighed


@pytest.mark.parametrize(
    "story, question",
    [
        (
            "开学第一周老师让我们登学信网看学籍，我记得高三注册过，可是一直没有用过，"
            "刚才登录提示密码错误，请问学信网的密码要去哪里改",
            "请问学信网的密码要去哪里改",
        ),
        (
            "材料是周一交上去的，页面到现在还显示审核中，学院催了两次了，"
            "我也不知道该找谁，想问问身份核验一般多久能审完",
            "想问问身份核验一般多久能审完",
        ),
        (  # no lead word: the last clause that asks
            "我今年刚入学，班主任让登录学信网，我注册的时候提示证件号码已被注册，"
            "家里人说没帮我注册过，被别人注册的账号怎么处理",
            "被别人注册的账号怎么处理",
        ),
    ],
)
def test_the_question_a_story_ends_with_is_said_once_more(story: str, question: str) -> None:
    text = normalize(story)
    assert question_part(text) == normalize(question)
    assert weighed(text) == f"{text}。{normalize(question)}"


@pytest.mark.parametrize(
    "text",
    [
        "密码忘了怎么办",  # no story
        "我的密码忘了，试了找回也不行，请问怎么办",  # three clauses, short
        # the question names nothing of its own: its topic is the story's
        "我今天去注册，输完证件号码以后提示证件号码已被注册，我以前肯定没注册过，"
        "同学也都注册成功了，这是什么情况啊",
        # no clause asks
        "辅导员让我们今天登录学信网，我试了三次都进不去，手机号换过了，验证码也收不到，真的很着急",
    ],
)
def test_what_is_no_story_ending_in_a_question_is_left_as_it_is(text: str) -> None:
    assert weighed(normalize(text)) == normalize(text)


def test_a_question_longer_than_a_clause_is_not_added() -> None:
    long_question = "请问" + "学信网账号密码" * (MAX_QUESTION // 7 + 1) + "怎么办"
    story = "老师让我们登录学信网，我注册过一次，后来没有用过，手机号也换了，" + long_question
    assert weighed(story) == story


def test_the_training_data_and_the_first_hold_out_read_as_before() -> None:
    """The rewriter changes what students write at length, not what the classifier learns from
    (the training examples are a sentence or two), nor the first hold-out's short questions."""
    written = [  # not data/nlu/reviewed.yml: students' own messages, labelled in the console
        e
        for path in sorted(TRAINING_DIR.glob("*.yml"))
        if path.name != "reviewed.yml"
        for e in read_examples(path)
    ]
    assert len(written) >= 0.9 * len(training())
    for example in written + holdout():
        assert weighed(example.text) == example.text, example.text
