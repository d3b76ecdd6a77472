"""Enrolment: a one-time, expiring code registers a terminal's public key."""
from __future__ import annotations

import datetime as dt

import requests
from govplatform_harness import Server, Terminal, check_contract, new_keys, new_visit

from govapi.signing import KeyPair


def _enrol(server: Server, code: str, terminal_id: str, keys: KeyPair, **over: str) -> requests.Response:
    body = {"enrolment_code": code, "terminal_id": terminal_id, "algorithm": keys.algorithm,
            "public_key": keys.public_key, "location": "东城区政务服务中心"}
    body.update(over)
    resp = requests.post(f"{server.url}/v1/terminals/enrol", json=body, timeout=10)
    check_contract(resp)
    return resp


def test_good_code_enrols_and_signed_calls_work(server: Server) -> None:
    keys = new_keys()
    resp = _enrol(server, server.enrolment_code("T-ENROL-1"), "T-ENROL-1", keys)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert data["terminal_id"] == "T-ENROL-1" and data["algorithm"] == "sm2-sm3"
    assert data["accepted_algorithms"] == ["sm2-sm3"]
    assert server.db_count("SELECT count(*) FROM terminals WHERE id = :t AND active", t="T-ENROL-1") == 1


def test_code_from_the_cli_works_once(server: Server) -> None:
    out = server.cli("enrolment-code", "--terminal-id", "T-ENROL-CLI")
    code = out.stdout.strip()
    assert len(code) == 19 and code.count("-") == 3, out.stdout
    keys = new_keys()
    # typed sloppily: lower case, no dashes -- still the same code
    assert _enrol(server, code.replace("-", "").lower(), "T-ENROL-CLI", keys).status_code == 201
    again = _enrol(server, code, "T-ENROL-CLI", keys)
    assert again.status_code == 403
    assert again.json()["error"] == "enrolment_code" and "already used" in again.json()["message"]


def test_wrong_code_is_403_with_a_clear_message(server: Server) -> None:
    resp = _enrol(server, "AAAA-BBBB-CCCC-DDDD", "T-ENROL-2", new_keys())
    assert resp.status_code == 403
    assert "not recognised" in resp.json()["message"] and "enrolment-code" in resp.json()["message"]


def test_code_is_bound_to_its_terminal_id(server: Server) -> None:
    code = server.enrolment_code("T-ENROL-3")
    resp = _enrol(server, code, "T-SOMEONE-ELSE", new_keys())
    assert resp.status_code == 403 and "issued for terminal 'T-ENROL-3'" in resp.json()["message"]
    assert _enrol(server, code, "T-ENROL-3", new_keys()).status_code == 201  # not used up by the mistake


def test_expired_code_is_refused(server: Server) -> None:
    from sqlalchemy import create_engine, text

    code = server.enrolment_code("T-ENROL-OLD")
    engine = create_engine(server.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE enrolment_codes SET expires_at = :t WHERE terminal_id = 'T-ENROL-OLD'"),
                     {"t": dt.datetime(2020, 1, 1)})
    engine.dispose()
    resp = _enrol(server, code, "T-ENROL-OLD", new_keys())
    assert resp.status_code == 403 and "expired" in resp.json()["message"]


def test_re_enrolling_needs_a_new_code_and_replaces_the_key(server: Server, resident_card: dict) -> None:
    old = server.enrol("T-ENROL-AGAIN")
    token = old.identify(resident_card)["citizen_token"]
    fresh = new_keys()
    assert _enrol(server, server.enrolment_code("T-ENROL-AGAIN"), "T-ENROL-AGAIN", fresh).status_code == 201
    # the old key no longer signs for this terminal, and its citizen token has ended
    refused = old.call("GET", "/v1/catalogue")
    assert refused.status_code == 401 and "bad signature" in refused.json()["message"]
    old.keys = fresh
    assert old.call("GET", "/v1/catalogue").status_code == 200
    assert old.call("GET", "/v1/citizens/me/licences", token=token).status_code == 401


def test_bad_public_key_and_refused_algorithm_are_422(server: Server) -> None:
    code = server.enrolment_code("T-ENROL-KEY")
    keys = new_keys()
    off_curve = "1" * 128
    resp = _enrol(server, code, "T-ENROL-KEY", keys, public_key=off_curve)
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "public_key"
    ecdsa = new_keys("ecdsa-p256-sha256")
    resp = _enrol(server, code, "T-ENROL-KEY", ecdsa)
    assert resp.status_code == 422 and "not accepted by this platform" in resp.json()["message"]
    # neither mistake used the code up
    assert _enrol(server, code, "T-ENROL-KEY", keys).status_code == 201
    assert new_visit()


def _sm2_keys_beginning_04() -> KeyPair:
    """A real SM2 key pair whose public key begins with "04": walk d, d+1, ... adding G in
    affine coordinates (cheap) until x starts with the byte 04 (about 1 step in 256)."""
    from gmssl import sm2

    p, a = (int(sm2.default_ecc_table[k], 16) for k in ("p", "a"))
    g = sm2.default_ecc_table["g"]
    gx, gy = int(g[:64], 16), int(g[64:], 16)
    d = 1
    x, y = gx, gy
    while not f"{x:064x}".startswith("04"):
        lam = (y - gy) * pow(x - gx, -1, p) % p if x != gx else (3 * x * x + a) * pow(2 * y, -1, p) % p
        x, y = (nx := (lam * lam - x - gx) % p), (lam * (x - nx) - y) % p
        d += 1
    keys = KeyPair("sm2-sm3", f"{d:064x}", f"{x:064x}{y:064x}")
    assert sm2.CryptSM2(private_key=keys.private_key, public_key="")._kg(d, g) == keys.public_key
    return keys


def test_sm2_key_beginning_04_enrols_and_verifies(server: Server) -> None:
    """gmssl strips a leading "04" from SM2 public keys; our signing layer undoes that, so such a key works."""
    keys = _sm2_keys_beginning_04()
    assert keys.public_key.startswith("04")
    resp = _enrol(server, server.enrolment_code("T-ENROL-04"), "T-ENROL-04", keys)
    assert resp.status_code == 201, resp.text
    terminal = Terminal(server, "T-ENROL-04", keys)
    assert terminal.call("GET", "/v1/catalogue").status_code == 200
