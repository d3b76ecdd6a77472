"""Staff passwords, stored only as salted scrypt hashes (never in clear, never reversible).

Format: ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` so the cost can be raised later while
old hashes still verify.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
MIN_LENGTH = 10


class WeakPassword(ValueError):
    """A password too short or too plain for an account that sees citizens' screens."""


def check_strength(password: str) -> None:
    """Refuse passwords a colleague could guess; the message says what is wanted."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password needs at least {MIN_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("the password repeats too few different characters")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_HASH_BYTES)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True only for the right password; a damaged hash is simply not a match."""
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r),
                                p=int(p), dklen=len(hash_hex) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


# verifying against this for unknown names keeps "no such staff" as slow as "wrong password"
DUMMY_HASH = hash_password(secrets.token_hex(16))
