"""Masking personal data that students type: ID-card numbers, mobile numbers, email addresses.

Used before anything is written: by the first NLU component (so the parsed text and every log
line built from it are masked) and by the tracker store (so stored user messages are masked).

Students type numbers in many forms: full-width digits (１３８…), groups split by spaces, dots or
dashes (110105-19491231-002X, 138 1234 5678), zero-width characters pasted inside, a 0086 or +86
prefix, mobiles spelled in Chinese numerals (一三八一二三四五六七八), emails with a full-width
＠ or ．, or a Chinese name before the @. Detection therefore runs on a *readable* copy of the text
(NFKC, invisible characters dropped, Chinese numerals read as digits in a second pass) in which
separators between digit groups are allowed, and each match is mapped back to the characters the
student typed. Only the matched characters change: the rest of the text stays as written.
"""

import datetime
import functools
import re
import unicodedata
from collections.abc import Iterator

ID_NUMBER = "[身份证号]"
MOBILE = "[手机号]"
EMAIL = "[邮箱]"

_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"

# Characters with no visible width that a paste can carry into the middle of a number.
_INVISIBLE = frozenset(
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
)
# Read as digits in the second pass: how mobiles are spelled out (幺 is "one" read aloud).
_CHINESE_DIGITS = dict(zip("零〇○一幺二两三四五六七八九", "00011223456789", strict=True))
# What students put between digit groups: spaces, dashes of every width, dots, slashes.
_SEP = r"[\s\-\u2010-\u2015\u2212_.·•/]{0,3}"
_ID18 = re.compile(rf"(?<!\d)\d(?:{_SEP}\d){{16}}{_SEP}[\dXx](?!\d)")
_ID15 = re.compile(rf"(?<!\d)\d(?:{_SEP}\d){{14}}(?!\d)")
_MOBILE = re.compile(rf"(?<![\d+])(?:\(?(?:\+|00)?86\)?{_SEP})?1{_SEP}[3-9](?:{_SEP}\d){{9}}(?!\d)")
# The local part may hold non-ASCII letters (a Chinese name); the words that usually stand just
# before an address (邮箱是…, 发到…) are not taken into it. The top-level domain is ASCII letters,
# so the Chinese text right after an address stays.
_EMAIL = re.compile(
    r"(?:[.%+\-]|[^\W是为的箱址号在用给到和或件郵信])"
    r"{1,64}@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,24}"
)


def id_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of an 18-digit ID number's first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=False)) % 11]


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def is_id_number(candidate: str) -> bool:
    """An 18-digit number with a valid check character (or, mistyped, still with a valid birth
    date: it is personal data all the same), or the old 15-digit form with a valid birth date."""
    if len(candidate) == 18:
        if id_check_character(candidate[:17]) == candidate[17].upper():
            return True
        year = int(candidate[6:10])
        return 1900 <= year <= 2100 and _valid_date(
            year, int(candidate[10:12]), int(candidate[12:14])
        )
    if len(candidate) == 15 and candidate.isdigit():
        return _valid_date(1900 + int(candidate[6:8]), int(candidate[8:10]), int(candidate[10:12]))
    return False


def _readable(text: str, chinese_digits: bool) -> tuple[str, list[int]]:
    """The text as detection reads it, and for each of its characters the index it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char in _INVISIBLE:
            continue
        if chinese_digits and char in _CHINESE_DIGITS:
            readable = _CHINESE_DIGITS[char]
        elif char == "。":  # qq。com: an ideographic full stop typed inside an address
            readable = "."
        elif char.isascii():
            readable = char
        else:
            readable = unicodedata.normalize("NFKC", char)
        chars.append(readable)
        origin.extend([index] * len(readable))
    return "".join(chars), origin


def _digits(matched: str) -> str:
    return "".join(c for c in matched if c.isdigit() or c in "Xx")


def _found(readable: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, placeholder) of every piece of personal data in the readable text."""
    for match in _EMAIL.finditer(readable):
        yield match.start(), match.end(), EMAIL
    # Mobiles first: where a mobile and an ID cover the same characters (0086 + a mobile is 15
    # digits, which can pass for an old ID), the first found is kept.
    for match in _MOBILE.finditer(readable):
        yield match.start(), match.end(), MOBILE
    for pattern in (_ID18, _ID15):
        for match in pattern.finditer(readable):
            if is_id_number(_digits(match.group())):
                yield match.start(), match.end(), ID_NUMBER


def _spans(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping spans of `text` (indices into what the student typed) to replace."""
    spans: dict[int, tuple[int, str]] = {}
    passes = (False, True) if any(c in _CHINESE_DIGITS for c in text) else (False,)
    for chinese_digits in passes:
        readable, origin = _readable(text, chinese_digits)
        for start, end, placeholder in _found(readable):
            first, last = origin[start], origin[end - 1] + 1
            if first not in spans or spans[first][0] < last:
                spans[first] = (last, placeholder)
    chosen: list[tuple[int, int, str]] = []
    for first in sorted(spans):
        last, placeholder = spans[first]
        if chosen and first < chosen[-1][1]:  # overlaps the one before: keep the longer
            if last > chosen[-1][1]:
                chosen[-1] = (chosen[-1][0], last, chosen[-1][2])
            continue
        chosen.append((first, last, placeholder))
    return chosen


@functools.lru_cache(maxsize=256)
def mask(text: str) -> str:
    """`text` with ID numbers, mobile numbers and email addresses replaced by placeholders.

    Remembered for the last few texts: one message is masked by the NLU pipeline, the tracker
    store and its channel in turn (about 7 ms for 2,000 characters), and the work is done once."""
    if not text:
        return text
    pieces: list[str] = []
    position = 0
    for first, last, placeholder in _spans(text):
        pieces += [text[position:first], placeholder]
        position = last
    pieces.append(text[position:])
    return "".join(pieces)


def contains_personal_data(text: str) -> bool:
    """Whether `text` holds an ID number, a mobile number or an email address, in any form."""
    return mask(text) != text
