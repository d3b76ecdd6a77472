"""Signed requests: unsigned, badly signed, stale and replayed ones are 401 with a clear message."""
from __future__ import annotations

import time

import requests
from govplatform_harness import Server, Terminal, check_contract, new_keys

from govapi.signing import sign_headers


def test_signed_request_passes(terminal: Terminal) -> None:
    resp = terminal.call("GET", "/v1/catalogue")
    assert resp.status_code == 200 and resp.json()["items"]


def test_health_needs_no_signature(server: Server) -> None:
    resp = requests.get(f"{server.url}/v1/health", timeout=5)
    check_contract(resp)
    body = resp.json()
    assert body["status"] == "ok" and abs(body["server_time"] - time.time()) < 60


def test_unsigned_request_is_401(terminal: Terminal) -> None:
    resp = terminal.call("GET", "/v1/catalogue", sign=False)
    assert resp.status_code == 401
    assert resp.json() == {"error": "signature", "message": resp.json()["message"]}
    assert "unsigned request" in resp.json()["message"] and "X-Signature" in resp.json()["message"]


def test_bad_signature_is_401(terminal: Terminal) -> None:
    other = new_keys()
    headers = sign_headers(other, terminal.terminal_id, "GET", "/v1/catalogue", b"")
    resp = terminal.call("GET", "/v1/catalogue", sign=False, headers=headers)
    assert resp.status_code == 401 and "bad signature" in resp.json()["message"]


def test_altered_body_is_401(terminal: Terminal) -> None:
    body = b'{"level": 5}'
    headers = sign_headers(terminal.keys, terminal.terminal_id, "POST", "/v1/ratings", body)
    resp = terminal.call("POST", "/v1/ratings", raw=b'{"level": 1}', sign=False, key="altered-0001",
                         headers=headers)
    assert resp.status_code == 401 and "bad signature" in resp.json()["message"]


def test_altered_query_is_401(terminal: Terminal) -> None:
    headers = sign_headers(terminal.keys, terminal.terminal_id, "GET", "/v1/appointments/slots?item_id=a", b"")
    resp = terminal.call("GET", "/v1/appointments/slots?item_id=appointment", sign=False, headers=headers)
    assert resp.status_code == 401 and "bad signature" in resp.json()["message"]


def test_replayed_request_is_401(terminal: Terminal) -> None:
    headers = sign_headers(terminal.keys, terminal.terminal_id, "GET", "/v1/catalogue", b"")
    first = terminal.call("GET", "/v1/catalogue", sign=False, headers=headers)
    assert first.status_code == 200
    again = terminal.call("GET", "/v1/catalogue", sign=False, headers=headers)
    assert again.status_code == 401
    assert "replayed" in again.json()["message"] and "fresh nonce" in again.json()["message"]
    assert terminal.server.db_count("SELECT count(*) FROM nonces WHERE nonce = :n", n=headers["X-Nonce"]) == 1


def test_stale_request_is_401(terminal: Terminal) -> None:
    resp = terminal.call("GET", "/v1/catalogue", now=time.time() - 900)
    assert resp.status_code == 401 and "clock" in resp.json()["message"]
    resp = terminal.call("GET", "/v1/catalogue", now=time.time() + 900)
    assert resp.status_code == 401 and "NTP" in resp.json()["message"]


def test_unknown_terminal_is_401(server: Server) -> None:
    stranger = Terminal(server, "T-NEVER-ENROLLED", new_keys())
    resp = stranger.call("GET", "/v1/catalogue")
    assert resp.status_code == 401 and "not enrolled" in resp.json()["message"]


def test_garbage_signature_headers_are_401_not_500(terminal: Terminal) -> None:
    headers = sign_headers(terminal.keys, terminal.terminal_id, "GET", "/v1/catalogue", b"")
    for name, value in [("X-Timestamp", "soon"), ("X-Nonce", "NOT-HEX"), ("X-Signature", "zz"),
                        ("X-Signature-Alg", "rsa"), ("X-Terminal-Id", "x" * 500)]:
        resp = terminal.call("GET", "/v1/catalogue", sign=False, headers={**headers, name: value})
        assert resp.status_code == 401, (name, resp.text)


def test_ecdsa_refused_unless_enabled(server: Server) -> None:
    keys = new_keys("ecdsa-p256-sha256")
    signed_like_ecdsa = sign_headers(keys, "T-MAIN-0001", "GET", "/v1/catalogue", b"")
    resp = requests.get(f"{server.url}/v1/catalogue", headers=signed_like_ecdsa, timeout=5)
    check_contract(resp)
    assert resp.status_code == 401 and "not accepted here" in resp.json()["message"]


def test_ecdsa_when_enabled(strict_server: Server) -> None:
    ecdsa = strict_server.enrol("T-ECDSA-1", algorithm="ecdsa-p256-sha256")
    assert ecdsa.call("GET", "/v1/catalogue").status_code == 200
    sm2 = strict_server.enrol("T-SM2-BESIDE", algorithm="sm2-sm3")
    assert sm2.call("GET", "/v1/catalogue").status_code == 200
    # a terminal signs with the algorithm it enrolled with, not another one
    other = new_keys("sm2-sm3")
    headers = sign_headers(other, "T-ECDSA-1", "GET", "/v1/catalogue", b"")
    resp = ecdsa.call("GET", "/v1/catalogue", sign=False, headers=headers)
    assert resp.status_code == 401 and "enrolled with ecdsa-p256-sha256" in resp.json()["message"]
