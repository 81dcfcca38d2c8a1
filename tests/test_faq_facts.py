"""A text states only the FAQ's links, numbers, addresses and time: the check canned replies
pass when an admin saves one (core/faq_facts.py)."""

from core.faq_facts import unsupported
from tests.helpers import EMAIL, HOTLINE, PASSWORD_PAGE, PASSWORD_PHONE


def test_the_faq_s_own_facts_pass_however_they_are_typed() -> None:
    assert unsupported(f"找回密码：{PASSWORD_PAGE}，电话 {PASSWORD_PHONE}，邮箱 {EMAIL}") == []
    assert unsupported("热线 ０１０－６７４１０３８８，三个工作日内处理") == []  # full-width
    assert unsupported(f"热线 {HOTLINE.replace('-', ' ')[:7]} {HOTLINE[7:]}") == []  # spaced


def test_a_number_link_address_or_time_the_faq_does_not_give_is_named() -> None:
    found = unsupported(
        "打 010-12345678 或 138 0013 8000，看 https://example.com/help，写信 help@example.com，"
        "24小时内回复，3天内处理，工作时间周一至周五"
    )
    assert "电话 010-12345678 不在 FAQ 里" in found
    assert "号码 138 0013 8000 不是 FAQ 给的电话" in found
    assert "链接 https://example.com/help 不在 FAQ 里" in found
    assert "邮箱 help@example.com 不在 FAQ 里" in found
    assert "“24小时”：FAQ 只承诺“三个工作日”" in found and "“3天”：FAQ 只承诺“三个工作日”" in found
    assert "“工作时间”：FAQ 没有说服务时间" in found and "“周一”：FAQ 没有说服务时间" in found


def test_a_part_of_a_fact_a_spelled_out_duration_or_a_time_of_day_is_named() -> None:
    assert unsupported("写信到 kefu@chsi.com") == ["邮箱 kefu@chsi.com 不在 FAQ 里"]
    part = PASSWORD_PAGE.split("!")[0]
    assert unsupported(f"打开 {part}") == [f"链接 {part} 不在 FAQ 里"]
    for said in ("5个工作日", "两个小时", "半小时", "一周", "一个月"):
        assert unsupported(f"大约{said}内处理") == [f"“{said}”：FAQ 只承诺“三个工作日”"], said
    assert unsupported("工作日 9:00-17:00 有人") != []


def test_what_is_not_a_fact_passes() -> None:
    assert unsupported(f"2024-2025学年的同学，请打开{PASSWORD_PAGE}。") == []  # a URL, then text
    assert unsupported("请提供学号（例如 2021123456 之外的信息）") != []  # ten digits: a number
