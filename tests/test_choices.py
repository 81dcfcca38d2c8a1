"""Typed numbered replies ("2", "２", "第二个") map to the option they name."""

import pytest

from actions.choices import choice_number, pick


@pytest.mark.parametrize(
    "text, number",
    [
        ("1", 1),
        ("2", 2),
        ("２", 2),
        (" 2 ", 2),
        ("2。", 2),
        ("选2", 2),
        ("第二个", 2),
        ("第1个", 1),
        ("二", 2),
        ("我选1", 1),
        ("1.", 1),
        ("第一条", 1),
        ("两", 2),
    ],
)
def test_numbered_replies_are_read(text: str, number: int) -> None:
    assert choice_number(text) == number


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "12", "2023", "110101199003078515", "忘记密码", "2个账号", "abc", "一二"],
)
def test_other_text_is_not_a_choice(text) -> None:
    assert choice_number(text) is None


def test_pick_maps_to_options_in_order_and_rejects_out_of_range() -> None:
    options = ["pending_review", "already_registered"]
    assert pick("1", options) == "pending_review"
    assert pick("第二个", options) == "already_registered"
    assert pick("3", options) is None
    assert pick("好的", options) is None
