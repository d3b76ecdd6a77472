"""Identify -> citizen token -> prefill, e-licences, benefits; tokens stay on their terminal."""
from __future__ import annotations

import datetime as dt
from typing import Any

from govplatform_harness import PASSED_FACE, Server, Terminal, card_from_emulator, find_item, new_visit, synthetic_card


def test_identify_gives_a_token_and_a_masked_name(terminal: Terminal, resident_card: dict) -> None:
    data = terminal.identify(resident_card, face_check=PASSED_FACE)
    assert data["citizen"] == {"known": True, "display_name": "张*"}
    expires = dt.datetime.fromisoformat(data["expires_at"])
    assert 800 < (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 900
    assert len(data["citizen_token"]) >= 32


def test_unknown_person_gets_a_token_but_no_file(server: Server) -> None:
    t = server.enrol()
    data = t.identify(synthetic_card())
    assert data["citizen"]["known"] is False and data["citizen"]["display_name"] == "欧***"
    token = data["citizen_token"]
    assert t.call("GET", "/v1/citizens/me/licences", token=token).json() == {"licences": []}
    assert t.call("GET", "/v1/citizens/me/benefits", token=token).json() == {"benefits": []}


def test_prefill_licences_benefits(terminal: Terminal, resident_card: dict, catalogue: dict) -> None:
    token = terminal.identify(resident_card)["citizen_token"]
    item = find_item(catalogue, lambda i: any(f["source"].startswith("identity.name") for f in i["form"]))
    resp = terminal.call("GET", f"/v1/items/{item['id']}/prefill", token=token)
    assert resp.status_code == 200
    values = resp.json()["values"]
    name_field = next(f["key"] for f in item["form"] if f["source"] == "identity.name")
    assert values[name_field] == {"value": "张三", "source": "identity.name"}
    for key, v in values.items():
        assert v["source"] == next(f["source"] for f in item["form"] if f["key"] == key)

    licences = terminal.call("GET", "/v1/citizens/me/licences", token=token).json()["licences"]
    assert {"id_card", "social_security_card"} <= {lic["type"] for lic in licences}
    assert all(lic["title"]["zh-CN"] and lic["issuer"] for lic in licences)

    benefits = terminal.call("GET", "/v1/citizens/me/benefits", token=token)
    assert benefits.status_code == 200 and isinstance(benefits.json()["benefits"], list)


def test_benefits_come_with_reasons(server: Server) -> None:
    t = server.enrol()
    token = t.identify(card_from_emulator("resident-long-term"))["citizen_token"]  # 李四, retired (synthetic)
    benefits = t.call("GET", "/v1/citizens/me/benefits", token=token).json()["benefits"]
    assert benefits, "the retired resident should qualify for something"
    for b in benefits:
        assert b["status"] in ("granted_automatically", "eligible") and b["reason"]["zh-CN"]


def test_prefill_of_unknown_item_is_404(terminal: Terminal, resident_card: dict) -> None:
    token = terminal.identify(resident_card)["citizen_token"]
    resp = terminal.call("GET", "/v1/items/no-such-item/prefill", token=token)
    assert resp.status_code == 404 and "no-such-item" in resp.json()["message"]


def test_token_missing_wrong_or_expired_is_401(terminal: Terminal, resident_card: dict, server: Server) -> None:
    resp = terminal.call("GET", "/v1/citizens/me/licences")
    assert resp.status_code == 401 and resp.json()["error"] == "citizen_token"
    assert "Authorization: Bearer" in resp.json()["message"]
    resp = terminal.call("GET", "/v1/citizens/me/licences", token="not-a-token")
    assert resp.status_code == 401 and "identify the citizen again" in resp.json()["message"]

    token = terminal.identify(resident_card)["citizen_token"]
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    with engine.begin() as conn:  # let the newest token run out
        conn.execute(text("UPDATE citizen_tokens SET expires_at = :t WHERE issued_at = "
                          "(SELECT max(issued_at) FROM citizen_tokens)"), {"t": dt.datetime(2020, 1, 1)})
    engine.dispose()
    resp = terminal.call("GET", "/v1/citizens/me/licences", token=token)
    assert resp.status_code == 401 and "expired" in resp.json()["message"]


def test_token_from_another_terminal_is_403(server: Server, resident_card: dict) -> None:
    a, b = server.enrol(), server.enrol()
    token = a.identify(resident_card)["citizen_token"]
    resp = b.call("GET", "/v1/citizens/me/licences", token=token)
    assert resp.status_code == 403 and "another terminal" in resp.json()["message"]
    assert a.call("GET", "/v1/citizens/me/licences", token=token).status_code == 200


def test_a_new_visit_ends_the_previous_token(server: Server, resident_card: dict) -> None:
    t = server.enrol()
    first = t.identify(resident_card, visit_id=new_visit())["citizen_token"]
    second = t.identify(card_from_emulator("resident-long-term"), visit_id=new_visit())["citizen_token"]
    assert t.call("GET", "/v1/citizens/me/licences", token=first).status_code == 401
    assert t.call("GET", "/v1/citizens/me/licences", token=second).status_code == 200


def test_card_checks(terminal: Terminal, resident_card: dict) -> None:
    def identify(card: dict[str, Any]) -> Any:
        return terminal.call("POST", "/v1/citizens/identify", {"visit_id": new_visit(), "card": card})

    bad_digit = dict(resident_card, id_number=resident_card["id_number"][:-1] + "9")
    resp = identify(bad_digit)
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "card.id_number"
    expired = card_from_emulator("resident-expired")
    resp = identify(expired)
    assert resp.status_code == 422 and "expired" in resp.json()["message"]
    foreigner = card_from_emulator("foreigner-2017")  # 15-character number, no check digit
    assert identify(foreigner).status_code == 201


def test_face_check_required_when_configured(strict_server: Server, resident_card: dict) -> None:
    t = strict_server.enrol()
    visit = {"visit_id": new_visit(), "card": resident_card}
    resp = t.call("POST", "/v1/citizens/identify", visit)
    assert resp.status_code == 403 and resp.json()["error"] == "face_check"
    failed = dict(PASSED_FACE, passed=False)
    resp = t.call("POST", "/v1/citizens/identify", dict(visit, face_check=failed))
    assert resp.status_code == 403 and "did not pass" in resp.json()["message"]
    resp = t.call("POST", "/v1/citizens/identify", dict(visit, face_check=PASSED_FACE))
    assert resp.status_code == 201


def test_catalogue_is_served_as_the_data_says(terminal: Terminal) -> None:
    """Nothing of the catalogue data is dropped or changed on the way out."""
    from govplatform.catalogue import load_catalogue

    assert terminal.call("GET", "/v1/catalogue").json() == load_catalogue()


def test_benefits_are_served_as_the_rules_say(server: Server) -> None:
    from govplatform import policies, residents
    from govplatform.runtime import china_today

    t = server.enrol()
    card = card_from_emulator("resident-long-term")
    token = t.identify(card)["citizen_token"]
    expected = policies.match_benefits(residents.find_resident(card["id_number"]), china_today())
    assert t.call("GET", "/v1/citizens/me/benefits", token=token).json() == {"benefits": expected}


def test_a_social_security_card_identifies_and_its_address_comes_from_the_register(server: Server,
                                                                                   catalogue: dict) -> None:
    """The card as the kiosk sends it after reading 张三's virtual social security card: no
    address on the card, so identity.address is the household register's (as the ID card prints)."""
    from devices.smartcard.card_emulator import load_card
    from devices.smartcard.holder import holder_from_values
    from devices.smartcard.profile import load_profile, read_card_data
    from govplatform.residents import find_resident
    from kiosk.platform_link import card_for_platform

    holder = holder_from_values(read_card_data(load_card("zhang-san").respond, load_profile("social_security_3")),
                                "social_security_3")
    card = card_for_platform(holder)
    assert card["card_type"] == "social_security" and card["address"] == "" and "photo_bmp" not in card
    t = server.enrol()
    data = t.identify(card, face_check=PASSED_FACE)
    assert data["citizen"] == {"known": True, "display_name": "张*"}
    item = find_item(catalogue, lambda i: any(f["source"] == "identity.address" for f in i["form"]))
    values = t.call("GET", f"/v1/items/{item['id']}/prefill", token=data["citizen_token"]).json()["values"]
    address = next(f["key"] for f in item["form"] if f["source"] == "identity.address")
    assert values[address]["value"] == find_resident("110101199003070011").household_address

    wrong = dict(card, gender_code="2")  # the ID number's 17th digit says male
    resp = t.call("POST", "/v1/citizens/identify", {"visit_id": new_visit(), "card": wrong})
    assert resp.status_code == 422 and "card.id_number" in resp.text
