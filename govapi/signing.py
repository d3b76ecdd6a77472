"""Signed requests: each terminal signs with its own key; the platform verifies.

The national algorithms are the default: SM2 signatures over an SM3 digest (GM/T 0003,
GM/T 0009 with the standard user ID) through `gmssl`; SM3 body digests through
`cryptography`. ECDSA P-256 with SHA-256 (through
`cryptography`) is the alternative setting for platforms that require it.

What is signed (one line each, joined with "\\n", UTF-8):

    METHOD            upper case, e.g. POST
    PATH              path and query exactly as sent, e.g. /v1/applications?x=1
    TIMESTAMP         Unix seconds, decimal
    NONCE             32 lower-case hex characters, never reused
    BODY-DIGEST       hex digest of the raw body bytes (SM3 or SHA-256 by algorithm)

Headers: X-Terminal-Id, X-Timestamp, X-Nonce, X-Signature-Alg, X-Signature (hex).
The platform refuses a timestamp more than MAX_SKEW_S away from its clock and a nonce it
has seen before, so a captured request cannot be replayed.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from gmssl import sm2

SM2_SM3 = "sm2-sm3"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
ALGORITHMS = (SM2_SM3, ECDSA_P256_SHA256)
MAX_SKEW_S = 300
HEADERS = ("X-Terminal-Id", "X-Timestamp", "X-Nonce", "X-Signature-Alg", "X-Signature")

_SM2_N = int(sm2.default_ecc_table["n"], 16)


def _sm2(private_key: str | None, public_key: str) -> sm2.CryptSM2:
    """gmssl 3.2.2 takes a leading "04" of a bare x||y key for a point prefix and strips it
    (``lstrip("04")``), so about 1 key in 256 would never verify; set the key back as given."""
    engine = sm2.CryptSM2(private_key=private_key, public_key=public_key)
    engine.public_key = public_key
    return engine


class SignatureError(Exception):
    """A request's signature is missing, malformed, stale, replayed or wrong."""


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or readable by others."""


def digest(algorithm: str, data: bytes) -> str:
    if algorithm == SM2_SM3:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()
    if algorithm == ECDSA_P256_SHA256:
        return hashlib.sha256(data).hexdigest()
    raise SignatureError(f"unknown signature algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")


def canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes, algorithm: str) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce, digest(algorithm, body)]).encode("utf-8")


@dataclass(frozen=True)
class KeyPair:
    """A terminal's key pair; `public_key` is hex, what the platform stores at enrolment."""

    algorithm: str
    private_key: str  # hex (SM2 scalar) or PEM (ECDSA)
    public_key: str  # hex: SM2 x||y (128 chars); ECDSA X9.62 uncompressed point

    @classmethod
    def generate(cls, algorithm: str = SM2_SM3) -> "KeyPair":
        if algorithm == SM2_SM3:
            d = secrets.randbelow(_SM2_N - 2) + 1
            private = f"{d:064x}"
            public = _sm2(private, "")._kg(d, sm2.default_ecc_table["g"])
            return cls(algorithm, private, public)
        if algorithm == ECDSA_P256_SHA256:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
            point = key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
            return cls(algorithm, pem, point.hex())
        raise SignatureError(f"unknown signature algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")

    def sign(self, message: bytes) -> str:
        if self.algorithm == SM2_SM3:
            return _sm2(self.private_key, self.public_key).sign_with_sm3(message)
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = serialization.load_pem_private_key(self.private_key.encode("ascii"), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(message, ec.ECDSA(hashes.SHA256())).hex()

    # -- storage: owner-only, refused when others can read it -------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"algorithm": self.algorithm, "private_key": self.private_key,
                       "public_key": self.public_key}, fh)
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path) -> "KeyPair":
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(f"key file {path} is readable by other users: chmod 600 {path}")
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["algorithm"], data["private_key"], data["public_key"])
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} does not exist: enrol the terminal first") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise KeyFileError(f"key file {path} is damaged ({exc}): enrol the terminal again") from None


def verify(algorithm: str, public_key: str, message: bytes, signature: str) -> bool:
    """True only for a valid signature; malformed input is simply not valid."""
    try:
        if algorithm == SM2_SM3:
            if len(signature) != 128 or len(public_key) != 128:
                return False
            int(signature, 16)
            return bool(_sm2(None, public_key).verify_with_sm3(signature, message))
        if algorithm == ECDSA_P256_SHA256:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(public_key))
            try:
                key.verify(bytes.fromhex(signature), message, ec.ECDSA(hashes.SHA256()))
                return True
            except InvalidSignature:
                return False
    except (ValueError, TypeError, ZeroDivisionError):
        return False
    return False


def sign_headers(keypair: KeyPair, terminal_id: str, method: str, path: str, body: bytes,
                 now: float | None = None) -> dict[str, str]:
    """The headers that make one request verifiable; a fresh nonce every call."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    message = canonical(method, path, timestamp, nonce, body, keypair.algorithm)
    return {"X-Terminal-Id": terminal_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
            "X-Signature-Alg": keypair.algorithm, "X-Signature": keypair.sign(message)}


@dataclass(frozen=True)
class SignedBy:
    terminal_id: str
    nonce: str
    timestamp: int


def check_headers(headers: Mapping[str, str], method: str, path: str, body: bytes,
                  public_key_for: Callable[[str], tuple[str, str] | None],
                  now: float | None = None, allowed: tuple[str, ...] = ALGORITHMS) -> SignedBy:
    """Verify a request; `public_key_for(terminal_id)` gives (algorithm, public key) or None.

    Replay (a nonce seen before) is the caller's check: it owns the nonce store.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in HEADERS if h.lower() not in lower]
    if missing:
        raise SignatureError(f"unsigned request: missing header(s) {', '.join(missing)}")
    terminal_id = lower["x-terminal-id"]
    algorithm = lower["x-signature-alg"]
    if algorithm not in allowed:
        raise SignatureError(f"signature algorithm {algorithm!r} is not accepted here "
                             f"(accepted: {', '.join(allowed)})")
    try:
        timestamp = int(lower["x-timestamp"])
    except ValueError:
        raise SignatureError("X-Timestamp must be Unix seconds") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > MAX_SKEW_S:
        raise SignatureError(f"request timestamp is {int(now - timestamp)} s away from the platform "
                             f"clock (limit {MAX_SKEW_S} s): check the terminal's clock (NTP)")
    nonce = lower["x-nonce"]
    if len(nonce) != 32 or any(c not in "0123456789abcdef" for c in nonce):
        raise SignatureError("X-Nonce must be 32 lower-case hex characters")
    known = public_key_for(terminal_id)
    if known is None:
        raise SignatureError(f"terminal {terminal_id!r} is not enrolled")
    key_alg, public_key = known
    if key_alg != algorithm:
        raise SignatureError(f"terminal {terminal_id!r} enrolled with {key_alg}, signed with {algorithm}")
    message = canonical(method, path, lower["x-timestamp"], nonce, body, algorithm)
    if not verify(algorithm, public_key, message, lower["x-signature"]):
        raise SignatureError("bad signature: the request was altered or signed with another key")
    return SignedBy(terminal_id, nonce, timestamp)
