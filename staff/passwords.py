"""Staff passwords, hashed with scrypt (hashlib, OpenSSL's implementation) and a random salt.

N = 2**15, r = 8, p = 1: about 32 MB and 50-100 ms per hash on this machine, OWASP's
recommended minimum for scrypt. The stored form names its parameters, so they can be raised
later without breaking the hashes already stored.
"""

import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1
MIN_LENGTH = 10
NO_USER = f"scrypt${N}${R}${P}${'00' * 16}${'00' * 32}"  # what an unknown name is checked against


def hashed(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=N, r=R, p=P, maxmem=64 * 1024 * 1024, dklen=32
    )
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def matches(password: str, stored: str | None) -> bool:
    """True when `password` is the one `stored` was made from (constant-time comparison).

    With no stored hash (a name nobody has) the password is hashed all the same, so that a wrong
    name takes as long to refuse as a wrong password: the time does not tell which names exist."""
    try:
        kind, n, r, p, salt, digest = (stored or NO_USER).split("$")
        if kind != "scrypt":
            return False
        again = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return stored is not None and hmac.compare_digest(again.hex().encode(), digest.encode())


def too_weak(password: str) -> str:
    """Why `password` is refused, or "" when it is fine."""
    if len(password) < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if len(set(password)) < 4:
        return "more than three different characters"
    return ""
