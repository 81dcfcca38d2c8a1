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
URL = re.compile(r"https?://[^\s）)，,。“”<>\\\]\[]+")  # (a comma, once NFKC folds "，")
PHONE = re.compile(r"\b0\d{2,3}-\d{7,8}\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A number however it is written (spaces, dashes): a phone number the FAQ does not give.
DIGITS = re.compile(r"\d[\d\s-]{5,}\d")
# Durations and days: the FAQ promises only "三个工作日".
TIME_PROMISE = re.compile(r"\d+\s*(小时|分钟)|[0-9一二两三四五六七八九十]+个?(天|日)(?!志)")
FAQ_TIME = "三个工作日"
OPENING_HOURS = ("工作时间", "周一", "周末", "节假日")


@functools.lru_cache(maxsize=1)
def faq_text() -> str:
    return FAQ_FILE.read_text(encoding="utf-8")


def unsupported(text: str) -> list[str]:
    """What `text` states that the FAQ does not, one line each (empty: nothing)."""
    faq, text = faq_text(), unicodedata.normalize("NFKC", text)
    problems = []
    for pattern, what in ((URL, "链接"), (EMAIL, "邮箱"), (PHONE, "电话")):
        problems += [
            f"{what} {fact} 不在 FAQ 里" for fact in pattern.findall(text) if fact not in faq
        ]
    phones = {re.sub(r"\D", "", phone) for phone in PHONE.findall(faq)}
    bare = EMAIL.sub(" ", URL.sub(" ", text))
    for number in DIGITS.findall(bare):
        if re.sub(r"\D", "", number) not in phones and not PHONE.fullmatch(number.strip()):
            problems.append(f"号码 {number.strip()} 不是 FAQ 给的电话")
    for promise in TIME_PROMISE.finditer(text.replace(FAQ_TIME, "")):
        problems.append(f"“{promise.group()}”：FAQ 只承诺“{FAQ_TIME}”")
    problems += [f"“{word}”：FAQ 没有说服务时间" for word in OPENING_HOURS if word in text]
    return problems
