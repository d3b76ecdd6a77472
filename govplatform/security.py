"""Secrets the platform hands out or keeps: enrolment codes, citizen tokens, sealed card data.

Only keyed hashes (HMAC-SM3 under the platform secret) of codes and tokens are stored, so
a copy of the database alone neither reveals a code nor lets anyone use a token. The card
data behind a token is sealed with SM4-GCM under a key derived from the token itself:
without the token (held by the terminal for one visit) it cannot be read.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm2

from govapi.signing import ECDSA_P256_SHA256, SM2_SM3

# Crockford base32 without I, L, O, U: nothing a technician can misread when typing.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS, CODE_GROUP_LEN = 4, 4  # 16 characters = 80 bits


def keyed_hash(secret: bytes, purpose: str, value: str) -> str:
    """HMAC-SM3 of `value`, separated by `purpose` so one hash can never stand for another."""
    mac = crypto_hmac.HMAC(secret, hashes.SM3())
    mac.update(purpose.encode("ascii") + b"\x00" + value.encode("utf-8"))
    return mac.finalize().hex()


# -- enrolment codes -----------------------------------------------------------------------------
def new_enrolment_code() -> str:
    """A fresh one-time code, grouped for reading aloud: "7K3M-Q9TX-2ZP4-HV8N"."""
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LEN))
    return "-".join(chars[i:i + CODE_GROUP_LEN] for i in range(0, len(chars), CODE_GROUP_LEN))


def normalise_code(code: str) -> str:
    """Upper case, no separators, and the usual misreadings fixed (O->0, I/L->1)."""
    text = "".join(ch for ch in code.upper() if ch.isalnum())
    return text.translate(str.maketrans("OIL", "011"))


def code_hash(secret: bytes, code: str) -> str:
    return keyed_hash(secret, "enrolment-code", normalise_code(code))


# -- citizen tokens ------------------------------------------------------------------------------
def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(secret: bytes, token: str) -> str:
    return keyed_hash(secret, "citizen-token", token)


def citizen_key(secret: bytes, id_number: str) -> str:
    """A stable pseudonym of an ID number: finds a citizen's applications without an index on the number."""
    return keyed_hash(secret, "citizen", id_number.strip().upper())


def _card_key(secret: bytes, token: str) -> bytes:
    return bytes.fromhex(keyed_hash(secret, "card-key", token))[:16]


def seal_card(secret: bytes, token: str, card: dict[str, Any]) -> bytes:
    """SM4-GCM: nonce (12) + ciphertext + tag (16)."""
    nonce = os.urandom(12)
    enc = Cipher(algorithms.SM4(_card_key(secret, token)), modes.GCM(nonce)).encryptor()
    plain = json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return nonce + enc.update(plain) + enc.finalize() + enc.tag


def open_card(secret: bytes, token: str, sealed: bytes) -> dict[str, Any]:
    nonce, body, tag = sealed[:12], sealed[12:-16], sealed[-16:]
    dec = Cipher(algorithms.SM4(_card_key(secret, token)), modes.GCM(nonce, tag)).decryptor()
    return json.loads(dec.update(body) + dec.finalize())


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# -- public keys ---------------------------------------------------------------------------------
_SM2 = sm2.default_ecc_table
_P, _A, _B = (int(_SM2[k], 16) for k in ("p", "a", "b"))


def public_key_problem(algorithm: str, public_key: str) -> str | None:
    """Why `public_key` is not a usable key for `algorithm`, or None (checked at enrolment)."""
    try:
        raw = bytes.fromhex(public_key)
    except ValueError:
        return "public_key must be hexadecimal"
    if algorithm == SM2_SM3:
        if len(raw) != 64:
            return "an SM2 public key is 128 hex characters (x || y, no 04 prefix)"
        x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        if not (0 < x < _P and 0 < y < _P) or (y * y - (x * x * x + _A * x + _B)) % _P:
            return "the SM2 public key is not a point on the SM2 curve"
        return None
    if algorithm == ECDSA_P256_SHA256:
        from cryptography.hazmat.primitives.asymmetric import ec

        if len(raw) != 65 or raw[0] != 4:
            return "an ECDSA P-256 public key is 130 hex characters (uncompressed point, starting 04)"
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            return "the ECDSA public key is not a point on P-256"
        return None
    return f"unknown algorithm {algorithm!r}"
