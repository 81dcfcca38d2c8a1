"""Masking personal data that students type: ID-card numbers, mobile numbers, email addresses.

Used before anything is written: by the first NLU component (so the parsed text and every log
line built from it are masked) and by the tracker store (so stored user messages are masked).
"""
import datetime
import re
from typing import Text

ID_NUMBER = "[身份证号]"
MOBILE = "[手机号]"
EMAIL = "[邮箱]"

_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"
# Not preceded or followed by another digit: a longer number is not an ID number.
_ID18 = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
_ID15 = re.compile(r"(?<!\d)\d{15}(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def id_check_character(first17: Text) -> Text:
    """The ISO 7064 MOD 11-2 check character of an 18-digit ID number's first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def is_id_number(candidate: Text) -> bool:
    """An 18-digit number with a valid check character (or, mistyped, still with a valid birth
    date: it is personal data all the same), or the old 15-digit form with a valid birth date."""
    if len(candidate) == 18:
        if id_check_character(candidate[:17]) == candidate[17].upper():
            return True
        year = int(candidate[6:10])
        return 1900 <= year <= 2100 and _valid_date(year, int(candidate[10:12]), int(candidate[12:14]))
    if len(candidate) == 15 and candidate.isdigit():
        return _valid_date(1900 + int(candidate[6:8]), int(candidate[8:10]), int(candidate[10:12]))
    return False


def mask(text: Text) -> Text:
    """`text` with ID numbers, mobile numbers and email addresses replaced by placeholders."""
    if not text:
        return text
    text = _EMAIL.sub(EMAIL, text)
    text = _ID18.sub(lambda m: ID_NUMBER if is_id_number(m.group()) else m.group(), text)
    text = _ID15.sub(lambda m: ID_NUMBER if is_id_number(m.group()) else m.group(), text)
    return _MOBILE.sub(MOBILE, text)
