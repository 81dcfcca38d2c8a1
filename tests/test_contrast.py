"""understanding/contrast.py: a contrast that names the other topic first is read as what it says
the question is. Written for this test, apart from the training data and both hold-out sets."""

import pytest

from understanding.contrast import MAX_SET_ASIDE, meant
from understanding.normalizer import normalize


@pytest.mark.parametrize(
    "typed, read",
    [
        ("不是用户名的事，是我密码输了好几次都不对", "我密码输了好几次都不对"),
        ("我问的不是待审核，而是已被注册怎么办", "我问的已被注册怎么办"),
        ("并不是我忘了密码，其实是账号被别人占了", "账号被别人占了"),
        ("没说用户名，说的是密码", "密码"),
        ("不是密码而是账号想不起来", "账号想不起来"),
        ("不是，我以前没有注册过", "我以前没有注册过"),  # a no, then what is meant
        ("不是在校生，不是，是毕业生", "毕业生"),  # set aside twice
    ],
)
def test_what_a_contrast_sets_aside_is_dropped(typed: str, read: str) -> None:
    assert meant(normalize(typed)) == normalize(read)


@pytest.mark.parametrize(
    "text",
    [
        "不是",
        "不是的",
        "不是吧!",  # nothing meant follows
        "是不是要重新注册一个",  # 是不是 asks
        "这个账号不是我注册的",  # no clause follows
        "如果不是本人操作，是否要重新注册",  # a condition, then a question
        "客服没说，是不是还要等",
        "不是" + "很" * (MAX_SET_ASIDE + 1) + "清楚,怎么找回密码",  # a sentence, not a topic
        "",
    ],
)
def test_other_negations_are_left_alone(text: str) -> None:
    assert meant(normalize(text)) == normalize(text)
