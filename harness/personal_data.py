"""Personal data as students type it, and how a person would read it back: what the privacy
checks send to the servers and then look for in the database and the logs."""

import re
import unicodedata

# One ID number, one mobile and one email, in the forms a simple masker misses: separators, full
# width, zero-width characters, country prefixes, Chinese numerals (幺 is "one" read aloud).
TYPED_FORMS = [
    "110105-19491231-002X",
    "１１０１０５１９４９１２３１００２Ｘ",
    "110105\u200b19491231\u200b002X",
    "1381 234 5678",
    "+86-138-1234-5678",
    "0086 138.1234.5678",
    "１３８１２３４５６７８",
    "一三八一二三四五六七八",
    "幺三八 幺二三四 五六七八",
    "138  1234  5678",
    "li.si＠example．edu.cn",
    "li.si@example.edu.cn",
]
# What must not be readable anywhere afterwards, as `readable` reads it.
SECRETS = ("11010519491231002x", "13812345678", "lisi@example")

_CHINESE_DIGITS = str.maketrans("零〇一二三四五六七八九幺", "001234567891")
_SEPARATORS = re.compile(r"[\s\-._—/\u200b-\u200d\ufeff]+")


def readable(text: str) -> str:
    """The numbers as a person would read them: JSON escapes decoded, NFKC, Chinese numerals as
    digits, separators and invisible characters removed."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", text).translate(_CHINESE_DIGITS).casefold()
    return _SEPARATORS.sub("", text)
