"""Masking personal data that students type: ID-card numbers, mobile numbers, email addresses.

Used before anything is written: by the first NLU component (so the parsed text and every log
line built from it are masked) and by the tracker store (so stored user messages are masked).

Students type numbers in many forms: full-width digits (１３８…), groups split by spaces, dots,
dashes or commas (110105-19491231-002X, 138 1234 5678, 139，8765，4321, 139、8765、4321), wide runs
of spaces, zero-width characters or bidi controls pasted inside, keycap digits (1️⃣), a 0086 or +86
prefix, mobiles spelled in Chinese numerals, plain or capital (一三八…, 壹叁捌…), × for the X of an
ID; emails with a full-width ＠ or ．, spaces around the @ or # instead of it, a Chinese name before
the @ or a Chinese domain after it, or a provider said without its .com (zhaoliu@qq). Detection
therefore runs on a *readable* copy of the text (NFKC, invisible and direction characters dropped,
whitespace runs read as one space, Chinese numerals read as digits in a second pass) in which
separators between digit groups are allowed, and each match is mapped back to the characters the
student typed. Only the matched characters change: the rest of the text stays as written.
"""

import datetime
import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterator

ID_NUMBER = "[身份证号]"
MOBILE = "[手机号]"
EMAIL = "[邮箱]"

_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"

# Characters with no visible width that a paste can carry into the middle of a number: zero-width
# and joiners, direction marks, overrides and isolates, variation selectors, the keycap sign (1️⃣
# is 1, U+FE0F, U+20E3), tags.
_INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u180b\u180c\u180d\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u2060\u2061\u2062\u2063\u2064\u20e3\ufeff"
    + "".join(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xFE00, 0xFE10)]))
    + "".join(map(chr, range(0xE0000, 0xE0080)))
)
# Read as digits in the second pass: how mobiles are spelled out (幺 is "one" read aloud), and the
# capital numerals of banks and forms.
_CHINESE_DIGITS = {
    **dict(zip("零〇○一幺二两三四五六七八九", "00011223456789", strict=True)),
    **dict(zip("壹贰貳叁參肆伍陆陸柒捌玖", "122334566789", strict=True)),
}
# Read as the X that ends an ID number.
_LIKE_X = {"×": "X", "✕": "X", "х": "x", "Х": "X"}
# What students put between digit groups: spaces, dashes of every width, dots, slashes, commas.
_SEP = r"[\s\-\u2010-\u2015\u2212_.·•/,、]{0,3}"
_ID18 = re.compile(rf"(?<!\d)\d(?:{_SEP}\d){{16}}{_SEP}[\dXx](?!\d)")
_ID15 = re.compile(rf"(?<!\d)\d(?:{_SEP}\d){{14}}(?!\d)")
_MOBILE = re.compile(rf"(?<![\d+])(?:\(?(?:\+|00)?86\)?{_SEP})?1{_SEP}[3-9](?:{_SEP}\d){{9}}(?!\d)")
# The local part may hold non-ASCII letters (a Chinese name); the words that usually stand just
# before an address (邮箱是…, 发到…) are not taken into it. The top-level domain is ASCII letters
# (so the Chinese text right after an address stays) or a Chinese one (中国, 公司). A student may
# put spaces around the @, type # for it, or name a provider without its .com.
_LOCAL = r"(?:[.%+\-]|[^\W是为的箱址号在用给到和或件郵信])"
_DOMAIN = r"[\w\-]+(?:\.[\w\-]+)*\.(?:[A-Za-z]{2,24}|[\u4e00-\u9fff]{2,4})"
_PROVIDER = (
    r"(?:qq|163|126|139|188|sina|sohu|foxmail|yeah|aliyun|gmail|hotmail|outlook|icloud)"
    r"(?![A-Za-z0-9])"
)
_EMAIL = re.compile(rf"{_LOCAL}{{1,64}}[ ]{{0,3}}[@#][ ]{{0,3}}(?:{_DOMAIN}|{_PROVIDER})")


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
        elif char in _LIKE_X:
            readable = _LIKE_X[char]
        elif char.isascii():
            readable = char
        else:
            readable = unicodedata.normalize("NFKC", char)
        if readable.isspace():
            if chars and chars[-1] == " ":
                continue  # a run of spaces of any width reads as one
            readable = " "
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


# Fewer characters than this left of an identifier once its personal data is masked: the
# identifier is that personal data (a mobile used as a sender id), not a random id that happens
# to hold a run of digits.
MIN_ID_REST = 8


def is_mostly_personal_data(identifier: str) -> bool:
    """Whether `identifier` (a sender id a client chose) is essentially a mobile, ID number or
    email: such an id would be the stored conversation id, in plain text."""
    masked_id = mask(identifier)
    if masked_id == identifier:
        return False
    rest = masked_id
    for placeholder in (ID_NUMBER, MOBILE, EMAIL):
        rest = rest.replace(placeholder, "")
    return len(rest) < MIN_ID_REST


def stored_message_id(message_id: str | None) -> str | None:
    """What is stored of a message id a client sent: a digest (the id may be anything a client
    chose, a phone number included), the same for the same id, so duplicates still match. Its
    "#" is a character no channel accepts in an id (core/parsing.py), so none can pass for one."""
    if message_id is None:
        return None
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return "#" + digest[:32]


def masked_values(value: object, depth: int = 0) -> object:
    """`value` (JSON-like metadata) with every string masked, keys included; nesting is bounded
    by the channels (channels/limits.py), and cut here past 32 levels."""
    if depth > 32:
        return None
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {str(mask(str(k))): masked_values(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_values(v, depth + 1) for v in value]
    return value
