"""Numbers and identifiers as a hostile sender may type them.

`str.isdigit()` is true for "²" and "١٢" and int() then raises or reads a number nobody wrote:
a timestamp header of "²" answered 500. Everything the project parses from a request goes
through here: ASCII digits only, bounded length.
"""

import re

_ID = re.compile(r"[A-Za-z0-9_.:\-]+")


def ascii_int(raw: object, max_digits: int = 18) -> int | None:
    """The number `raw` spells in 1 to max_digits ASCII digits, else None."""
    if not isinstance(raw, str) or not 0 < len(raw) <= max_digits:
        return None
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def plain_id(raw: object, max_chars: int = 255) -> bool:
    """Whether `raw` is an identifier a client may choose: 1 to max_chars ASCII letters, digits,
    "_", ".", ":" or "-" (no spaces, no control characters, nothing a log or a terminal reads)."""
    return isinstance(raw, str) and 0 < len(raw) <= max_chars and _ID.fullmatch(raw) is not None
