"""Card profiles, record decoding and the virtual card's file system, without pcscd.

The bytes on the wire are checked against /work/shared/protocols/social-security-card.md;
damaged answers must give CardDataError/CardStatusError with words, never another crash.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.base import DeviceProtocolError
from devices.smartcard import apdu as A
from devices.smartcard.card_emulator import CARDS_DIR, CardFileError, load_card
from devices.smartcard.codec import decode_value, encode_value, parse_tlv_record
from devices.smartcard.holder import holder_from_values, issuing_place
from devices.smartcard.profile import (ProfileError, ProfileMismatch, known_profiles, load_profile,
                                       read_card_data)

ORDER = ("social_security_3", "social_security_2", "social_security_1")


def read_in_order(engine):  # type: ignore[no-untyped-def]
    """As the driver does: each profile in turn until one fits."""
    for name in ORDER:
        engine.reset()
        try:
            return name, read_card_data(engine.respond, load_profile(name))
        except ProfileMismatch:
            continue
    raise AssertionError("no profile fits")


def test_commands_are_the_documented_bytes() -> None:
    profile = load_profile("social_security_3")
    assert A.select_by_name(profile.application).hex(" ").upper() == \
        "00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF"
    assert profile.application[7:].decode("gbk") == "社会保障"
    assert load_profile("social_security_2").field("id_number").command()[3] == 0x34  # SFI 6
    assert profile.field("card_number").command()[3] == 0x2C  # SFI 5
    assert A.select_by_id(0xEF06).hex(" ").upper() == "00 A4 02 00 02 EF 06"
    assert profile.field("name").command() == bytes.fromhex("00B2090000")  # identifier 09, current file


def test_every_profile_loads_and_addressing_differs_by_generation() -> None:
    assert set(ORDER) <= set(known_profiles())
    gen3, gen2, gen1 = (load_profile(n) for n in ORDER)
    assert gen3.field("gender_code").by_identifier and gen3.field("gender_code").select == (0xEF06,)
    assert (gen2.field("gender_code").sfi, gen2.field("gender_code").record) == (6, 4)
    assert (gen1.field("gender_code").sfi, gen1.field("gender_code").record) == (6, 3)
    assert gen3.photo is not None and gen2.photo is None


@pytest.mark.parametrize("card, profile, name, birth", [
    ("zhang-san", "social_security_3", "张三", dt.date(1990, 3, 7)),
    ("li-si-gen2", "social_security_2", "李四", dt.date(1960, 4, 12)),
    ("liu-guizhi-gen1", "social_security_1", "刘桂芝", dt.date(1962, 9, 15)),
])
def test_each_generation_is_read_by_its_own_profile(card: str, profile: str, name: str, birth: dt.date) -> None:
    used, values = read_in_order(load_card(card))
    holder = holder_from_values(values, used)
    assert used == profile
    assert holder.name == name and holder.birth_date == birth  # gen1/2: the birth date from the ID number
    assert holder.issuer == "北京市 110100" and holder.valid_to and holder.validity_problem(dt.date(2026, 11, 27)) is None
    assert name not in repr(holder) and holder.id_number not in repr(holder) and holder.card_number not in repr(holder)


def test_the_third_generation_card_carries_a_jpeg_photo_and_all_fields() -> None:
    used, values = read_in_order(load_card("zhang-san"))
    holder = holder_from_values(values, used)
    assert holder.photo_bmp is not None and holder.photo_bmp[:3] == b"\xff\xd8\xff"
    assert (holder.gender, holder.nation, holder.birthplace_code, holder.card_number) == ("男", "汉族", "110101", "A10000001")
    assert (holder.valid_from, holder.valid_to) == (dt.date(2021, 6, 1), dt.date(2031, 6, 1))
    holder.wipe()
    assert holder.name == "" and holder.photo_bmp is None and holder.id_number == ""


def test_an_expired_card_is_read_and_found_expired() -> None:
    used, values = read_in_order(load_card("zhang-san-expired"))
    assert holder_from_values(values, used).validity_problem(dt.date(2026, 11, 27)) == "expired"


@pytest.mark.parametrize("behaviour, error, words", [
    ({"wrong_application": True}, ProfileMismatch, "6A82"),
    ({"blocked": True}, A.CardStatusError, "blocked"),
    ({"sw": {"card_number": "6F00"}}, A.CardStatusError, "card_number"),
    ({"sw": {"name": "6982"}}, A.CardStatusError, "security status"),
    ({"truncate": {"name": 3}}, A.CardDataError, "truncated"),
    ({"tlv_length": {"id_number": -2}}, A.CardDataError, "TLV length is wrong"),
    ({"tlv_length": {"issue_date": 4}}, A.CardDataError, "truncated"),
    ({"garbage": True}, DeviceProtocolError, "not even a status word"),
])
def test_bad_answers_give_clear_errors(behaviour: dict, error: type, words: str) -> None:
    engine = load_card("zhang-san", **behaviour)
    with pytest.raises(error) as caught:
        read_card_data(engine.respond, load_profile("social_security_3"))
    assert words in str(caught.value)


def test_blocked_and_not_found_are_told_apart() -> None:
    with pytest.raises(A.CardStatusError) as blocked:
        read_card_data(load_card("zhang-san", blocked=True).respond, load_profile("social_security_3"))
    assert blocked.value.blocked and not blocked.value.not_found


def test_status_words_are_explained() -> None:
    assert A.sw_meaning(0x6A83) == "record not found"
    assert "3 tries left" in A.sw_meaning(0x63C3)
    assert "more bytes" in A.sw_meaning(0x6110)


def test_record_decoding_rules() -> None:
    assert parse_tlv_record(bytes.fromhex("0703414243FFFF"), 0x07, "x") == b"ABC"  # fill bytes allowed
    with pytest.raises(A.CardDataError, match="tag is 08"):
        parse_tlv_record(bytes.fromhex("080141"), 0x07, "x")
    assert decode_value(bytes.fromhex("19900307"), "bcd_date", "d") == dt.date(1990, 3, 7)
    assert decode_value(bytes(4), "bcd_date", "d") is None
    with pytest.raises(A.CardDataError, match="not a calendar date"):
        decode_value(bytes.fromhex("19901307"), "bcd_date", "d")
    with pytest.raises(A.CardDataError, match="BCD"):
        decode_value(bytes.fromhex("1A"), "bcd", "d")
    with pytest.raises(A.CardDataError, match="GBK"):
        decode_value(b"\xff\x30", "gbk", "n")
    assert decode_value(encode_value("张三", "gbk", 30), "gbk", "n") == "张三"
    assert issuing_place("440300000000") == "广东省 440300" and issuing_place("") == ""


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40), tag=st.integers(0, 255),
       fmt=st.sampled_from(["an", "gbk", "bcd", "bcd_date", "hex"]))
def test_any_record_bytes_decode_or_raise_card_data_error(data: bytes, tag: int, fmt: str) -> None:
    try:
        decode_value(parse_tlv_record(data, tag, "fuzz"), fmt, "fuzz")
    except A.CardDataError:
        pass


@settings(max_examples=200, deadline=None)
@given(response=st.binary(max_size=24))
def test_any_answer_to_a_read_raises_only_device_errors(response: bytes) -> None:
    """Whatever a card answers, reading gives values or a DeviceProtocolError subclass."""
    profile = load_profile("social_security_3")
    good = load_card("zhang-san")
    calls = {"n": 0}

    def transmit(command: bytes) -> bytes:
        calls["n"] += 1
        return response if calls["n"] == 4 else good.respond(command)

    try:
        read_card_data(transmit, profile)
    except DeviceProtocolError:
        pass


def test_profile_and_card_file_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no card profile 'nope'"):
        load_profile("nope")
    (tmp_path / "bad.toml").write_text('application = "A0"\n[[field]]\nname = "x"\nrecord = 1\nformat = "an"\n')
    with pytest.raises(ProfileError, match="give the file by sfi or by select"):
        load_profile("bad", tmp_path)
    with pytest.raises(CardFileError, match="no card file"):
        load_card("nobody")
    with pytest.raises(CardFileError, match="unknown behaviour"):
        load_card("zhang-san", explode=True)


_FIELD = 'name = "x"\nsfi = 5\nrecord = 1\nformat = "an"\n'


@pytest.mark.parametrize("profile, words", [
    ('field = 1', "field must be a list of"),
    ('field = [1]', "field #1 (a [[field]] entry): 1 is not a table"),
    ('title = "x"', "title: 'x' is not a table"),
    ('[[field]]\nname = "x"\nrecord = 1\nformat = "an"\nselect = "EF06"', "field #1 select: 'EF06' is not a list"),
    ('[[field]]\nname = "x"\nrecord = 1\nformat = "an"\nselect = [0x10000]', "field #1 select: 65536 is outside"),
    ('[[field]]\nname = "x"\nsfi = 31\nrecord = 1\nformat = "an"', "field #1 sfi: 31 is outside 0 to 30"),
    ('[[field]]\nname = "x"\nsfi = 5\nrecord = 300\nformat = "an"', "field #1 record: 300 is outside 1 to 254"),
    ('[[field]]\nname = "x"\nsfi = 5\nrecord = true\nformat = "an"', "field #1 record: True is not a number"),
    (f'[[field]]\n{_FIELD}length = "18"', "field #1: length '18' is not a number of bytes"),
    (f'[[field]]\n{_FIELD}length = 256', "field #1 length: a record's value is 0 to 255 bytes"),
    ('[[field]]\nname = "d"\nsfi = 5\nrecord = 5\nformat = "bcd_date"\nlength = 5',
     "field #1 length: a bcd_date value is 4 bytes on the card, not 5"),
    (f'[[field]]\n{_FIELD}required = "no"', "required must be true or false"),
    (f'[[field]]\n{_FIELD}\n[photo]\nselect = ["EF08"]\nchunk = 300', "photo chunk: 300 is outside 1 to 256"),
    (f'[[field]]\n{_FIELD}\n[photo]\nselect = ["EF08"]\nmax_bytes = 40000', "photo max_bytes: 40000 is outside"),
    (f'[[field]]\n{_FIELD}\n[photo]\nchunk = 200', "photo: select names no file"),
    (f'extends = "bad"\n[[field]]\n{_FIELD}', "extends goes round in a loop (bad -> bad)"),
])
def test_profile_mistakes_are_refused_at_load_naming_the_file_and_key(tmp_path: Path, profile: str,
                                                                      words: str) -> None:
    """Caught when the terminal starts, not on every card read later (or as a TypeError)."""
    (tmp_path / "bad.toml").write_text(f'application = "A000"\n{profile}\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=re.escape(words)) as caught:
        load_profile("bad", tmp_path)
    assert "bad.toml" in str(caught.value)


@pytest.mark.parametrize("card, words", [
    ('holder = [1]', "holder must be a table"),
    ('emulator = 1', "emulator must be a table"),
    ('profile = "nobody"', "no card profile 'nobody'"),
    ('profile = 3', "profile must be text"),
    ('name = 5', "holder name must be text or a date"),
    ('issue_date = "2021-06-01"', "issue_date = '2021-06-01': a bcd_date value is a date"),
    ('nation_code = "AB"', "nation_code = 'AB': 'AB' is not BCD"),
])
def test_card_file_mistakes_give_card_file_errors(tmp_path: Path, card: str, words: str) -> None:
    """A mistake in a top-level key is the whole file; one in a holder's value replaces zhang-san's."""
    key = card.split()[0]
    zhang_san = (CARDS_DIR / "zhang-san.toml").read_text(encoding="utf-8").split("[emulator]")[0].splitlines()
    if key in ("holder", "emulator", "profile"):
        text = card
    else:
        text = "\n".join(card if line.startswith(f"{key} =") else line for line in zhang_san)
    (tmp_path / "broken.toml").write_text(text + "\n", encoding="utf-8")
    with pytest.raises(CardFileError, match=re.escape(words)) as caught:
        load_card(tmp_path / "broken.toml")
    assert "broken" in str(caught.value)
