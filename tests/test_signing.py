"""Request signing: SM2/SM3 by default, ECDSA as the alternative; stale and altered refused."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from govapi.signing import (ALGORITHMS, KeyFileError, KeyPair, SignatureError, check_headers,
                            sign_headers)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip_and_tamper(algorithm: str) -> None:
    keys = KeyPair.generate(algorithm)
    body = '{"a": "办"}'.encode()
    headers = sign_headers(keys, "T-1", "POST", "/v1/applications", body)
    lookup = {"T-1": (algorithm, keys.public_key)}.get
    signed = check_headers(headers, "POST", "/v1/applications", body, lookup)
    assert signed.terminal_id == "T-1" and len(signed.nonce) == 32
    with pytest.raises(SignatureError, match="bad signature"):
        check_headers(headers, "POST", "/v1/applications", body + b" ", lookup)
    with pytest.raises(SignatureError, match="bad signature"):
        check_headers(headers, "POST", "/v1/other", body, lookup)
    other = KeyPair.generate(algorithm)
    with pytest.raises(SignatureError, match="bad signature"):
        check_headers(headers, "POST", "/v1/applications", body, {"T-1": (algorithm, other.public_key)}.get)


def test_unsigned_stale_unknown_and_garbage() -> None:
    keys = KeyPair.generate()
    lookup = {"T-1": ("sm2-sm3", keys.public_key)}.get
    with pytest.raises(SignatureError, match="unsigned request"):
        check_headers({}, "GET", "/v1/catalogue", b"", lookup)
    old = sign_headers(keys, "T-1", "GET", "/x", b"", now=time.time() - 1000)
    with pytest.raises(SignatureError, match="clock"):
        check_headers(old, "GET", "/x", b"", lookup)
    stranger = sign_headers(keys, "T-9", "GET", "/x", b"")
    with pytest.raises(SignatureError, match="not enrolled"):
        check_headers(stranger, "GET", "/x", b"", lookup)
    bad = dict(sign_headers(keys, "T-1", "GET", "/x", b""), **{"X-Signature": "zz" * 64})
    with pytest.raises(SignatureError, match="bad signature"):
        check_headers(bad, "GET", "/x", b"", lookup)
    short = dict(sign_headers(keys, "T-1", "GET", "/x", b""), **{"X-Signature": "00"})
    with pytest.raises(SignatureError):
        check_headers(short, "GET", "/x", b"", lookup)
    alg = dict(sign_headers(keys, "T-1", "GET", "/x", b""), **{"X-Signature-Alg": "rot13"})
    with pytest.raises(SignatureError, match="not accepted"):
        check_headers(alg, "GET", "/x", b"", lookup)


def test_key_file_is_owner_only(tmp_path: Path) -> None:
    keys = KeyPair.generate()
    path = tmp_path / "keys" / "terminal.key"
    keys.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert KeyPair.load(path) == keys
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        KeyPair.load(path)
    with pytest.raises(KeyFileError, match="enrol the terminal first"):
        KeyPair.load(tmp_path / "none.key")
