"""The FAQ's facts, and a check that a text states no other: its links, phone numbers and email
addresses must be the FAQ's, and it promises no time but the FAQ's "三个工作日" (no opening
hours). The assistant's own answers are checked with these patterns (tests/test_data.py); the
support team's canned replies with `unsupported()` when an admin saves one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

FAQ_FILE = Path(__file__).resolve().parent.parent / "docs" / "source" / "faq-attachment-2.md"
URL = re.compile(r"https?://[^\s\u4e00-\u9fff）)，,。“”<>\\\]\[]+")  # (a comma: NFKC folds "，")
PHONE = re.compile(r"\b0\d{2,3}-\d{7,8}\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A number however it is written (spaces, dashes): a phone number the FAQ does not give. Ten
# digits or more (an area code and a number, a mobile): "2024-2025学年" is no phone number.
DIGITS = re.compile(r"\d[\d\s-]{8,}\d")
PHONE_DIGITS = 10
# Durations and days: the FAQ promises only "三个工作日".
TIME_PROMISE = re.compile(
    r"(?:\d+|[一二两三四五六七八九十百半几]+)\s*个?\s*(?:小时|分钟|钟头|工作日|天|日|周|星期|礼拜|月)(?!志)"
)
FAQ_TIME = "三个工作日"
# Opening hours, in words or as times of day ("9:00-17:00").
OPENING_HOURS = ("工作时间", "周一", "周末", "节假日", "上班时间", "营业时间")
TIME_OF_DAY = re.compile(r"\d{1,2}\s*[:：点]\s*\d{0,2}\s*[-–~～至到]\s*\d{1,2}\s*[:：点]")


@functools.lru_cache(maxsize=1)
def faq_text() -> str:
    return FAQ_FILE.read_text(encoding="utf-8")


def unsupported(text: str) -> list[str]:
    """What `text` states that the FAQ does not, one line each (empty: nothing). Links and
    addresses must be the FAQ's exactly, not a part of one."""
    faq, text = faq_text(), unicodedata.normalize("NFKC", text)
    problems = []
    for pattern, what in ((URL, "链接"), (EMAIL, "邮箱"), (PHONE, "电话")):
        known = {fact.rstrip(".") for fact in pattern.findall(faq)}
        unknown = [fact.rstrip(".") for fact in pattern.findall(text)]
        problems += [f"{what} {fact} 不在 FAQ 里" for fact in unknown if fact not in known]
    phones = {re.sub(r"\D", "", phone) for phone in PHONE.findall(faq)}
    bare = EMAIL.sub(" ", URL.sub(" ", text))
    for number in DIGITS.findall(bare):
        digits = re.sub(r"\D", "", number)
        if len(digits) >= PHONE_DIGITS and digits not in phones and not PHONE.search(number):
            problems.append(f"号码 {number.strip()} 不是 FAQ 给的电话")
    for promise in TIME_PROMISE.finditer(text.replace(FAQ_TIME, "")):
        problems.append(f"“{promise.group()}”：FAQ 只承诺“{FAQ_TIME}”")
    problems += [f"“{word}”：FAQ 没有说服务时间" for word in OPENING_HOURS if word in text]
    problems += [f"“{hours.group()}”：FAQ 没有说服务时间" for hours in TIME_OF_DAY.finditer(text)]
    return problems
