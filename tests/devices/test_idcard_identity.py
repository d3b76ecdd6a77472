"""The identity model: text block layouts of all four card types, ID number checks,
validity, privacy of repr/logs, wipe, and the photo decoder plug-ins."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.idcard.emulator import CARDS_DIR, load_card, load_cards
from devices.idcard.emulator_photo import EmulatorPhotoDecoder, encode_emulator_photo, synthetic_portrait
from devices.idcard.identity import (
    GENDERS,
    LONG_TERM,
    NATIONS,
    VALIDITY_PROBLEMS,
    CardDataError,
    IdentityCard,
    InvalidIdNumber,
    decode_appended_address,
    decode_text_block,
    encode_appended_address,
    encode_text_block,
    id_check_digit,
    mask_id_number,
    validate_id_number,
)
from devices.idcard.photo import (
    BMP_SIZE,
    CtypesWltDecoder,
    PhotoDecodeError,
    PhotoDecoder,
    PhotoDecoderUnavailable,
    load_photo_decoder,
)

CARDS = load_cards(CARDS_DIR)
TODAY = dt.date(2026, 6, 1)


def resident(**changes: object) -> IdentityCard:
    base = dict(
        card_type="resident", name="张三", gender_code="1", nation_code="01",
        birth_date=dt.date(1990, 3, 7), address="北京市东城区示例街道测试路1号",
        id_number="110101199003070011", issuer="北京市公安局东城分局",
        valid_from=dt.date(2020, 5, 1), valid_to=dt.date(2040, 5, 1),
    )
    base.update(changes)
    return IdentityCard(**base)  # type: ignore[arg-type]


# -- ID numbers --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "number", ["11010519491231002X", "440524188001010014", "110101199003070011", "81000019880808003X"]
)
def test_check_digit_of_known_numbers(number: str) -> None:
    assert id_check_digit(number[:17]) == number[17]
    validate_id_number(number)


def test_check_digit_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        id_check_digit("1101011990030700")
    with pytest.raises(ValueError):
        id_check_digit("11010119900307OO1")


def test_validate_id_number_finds_each_problem() -> None:
    with pytest.raises(InvalidIdNumber) as err:
        validate_id_number("110101199003070012")
    assert err.value.code == "bad_id_number" and "110101199003070012" not in str(err.value)
    with pytest.raises(InvalidIdNumber) as err:
        validate_id_number("110101199003070011", birth_date=dt.date(1990, 3, 8))
    assert err.value.code == "id_birth_mismatch"
    with pytest.raises(InvalidIdNumber) as err:
        validate_id_number("110101199003070011", gender_code="2")
    assert err.value.code == "id_gender_mismatch"
    with pytest.raises(InvalidIdNumber):
        validate_id_number("12345")
    validate_id_number("11010519491231002x")  # lower-case x is the same check character


def test_mask_keeps_region_and_last_four() -> None:
    assert mask_id_number("110101199003070011") == "110101********0011"
    assert mask_id_number("") == ""
    assert "1990" not in mask_id_number("110101199003070011")


# -- code tables ---------------------------------------------------------------------------
def test_code_tables_are_complete() -> None:
    assert GENDERS == {"0": "未知", "1": "男", "2": "女", "9": "未说明"}
    assert [f"{i:02d}" for i in range(1, 57)] + ["97", "98"] == list(NATIONS)
    assert NATIONS["01"] == "汉族" and NATIONS["56"] == "基诺族" and NATIONS["98"] == "外国血统中国籍人士"
    card = resident(gender_code="2", nation_code="05")
    assert (card.gender, card.nation) == ("女", "维吾尔族")


# -- text blocks -------------------------------------------------------------------------
@pytest.mark.parametrize("card_id", sorted(CARDS))
def test_every_emulator_card_roundtrips_through_its_text_block(card_id: str) -> None:
    card = CARDS[card_id]
    block = encode_text_block(card)
    assert len(block) == 256
    decoded = decode_text_block(block)
    for name in ("card_type", "name", "gender_code", "gender", "nation_code", "nation", "birth_date",
                 "address", "id_number", "issuer", "valid_from", "valid_to", "pass_number", "issue_count",
                 "english_name", "nationality_code", "card_version", "issuer_code", "renewal_count",
                 "previous_number_link"):
        assert getattr(decoded, name) == getattr(card, name), name


def test_resident_offsets() -> None:
    block = encode_text_block(resident())
    assert block[0:4].decode("utf-16-le") == "张三"
    assert block[30:32].decode("utf-16-le") == "1"
    assert block[32:36].decode("utf-16-le") == "01"
    assert block[36:52].decode("utf-16-le") == "19900307"
    assert block[122:158].decode("utf-16-le") == "110101199003070011"
    assert block[188:204].decode("utf-16-le") == "20200501"
    assert block[204:220].decode("utf-16-le") == "20400501"
    assert block[248:250] == b"\x20\x00"  # blank type flag: resident card


@pytest.mark.parametrize(
    "card_id, flag", [("hmt-permit", "J"), ("foreigner-2017", "I"), ("foreigner-2023", "Y")]
)
def test_type_flag_at_offset_248(card_id: str, flag: str) -> None:
    assert encode_text_block(CARDS[card_id])[248:250] == flag.encode("utf-16-le")


def test_hmt_permit_fields() -> None:
    card = decode_text_block(encode_text_block(CARDS["hmt-permit"]))
    assert card.card_type == "hmt_permit" and card.nation_code == "" and card.nation == ""
    assert card.pass_number == "H12345678" and card.issue_count == "01"
    assert card.id_number.startswith("810000")


def test_foreign_2017_layout() -> None:
    block = encode_text_block(CARDS["foreigner-2017"])
    assert block[0:120].decode("utf-16-le").rstrip() == "TESTER, JOHN SAMPLE"
    assert block[122:152].decode("utf-16-le") == "USA110070010100"
    assert block[152:158].decode("utf-16-le") == "USA"
    assert block[158:188].decode("utf-16-le").rstrip() == "约翰"
    assert block[220:236].decode("utf-16-le") == "19700101"
    card = decode_text_block(block)
    assert card.card_type == "foreign_2017" and card.birth_date == dt.date(1970, 1, 1)


def test_foreign_2023_english_name_spills_into_second_field() -> None:
    card = CARDS["foreigner-2023"]
    assert len(card.english_name) > 35
    block = encode_text_block(card)
    assert block[52:122].decode("utf-16-le") == card.english_name[:35]
    assert block[220:242].decode("utf-16-le").rstrip() == card.english_name[35:]
    assert block[242:248].decode("utf-16-le") == "RUS"
    assert decode_text_block(block).english_name == card.english_name
    short = decode_text_block(encode_text_block(IdentityCard("foreign_2023", english_name="LEE, AN")))
    assert short.english_name == "LEE, AN"


def test_rare_characters_including_one_outside_the_bmp() -> None:
    card = CARDS["resident-rare-name"]
    assert "\U0002020C" in card.name and "\u4DAE" in card.name
    block = encode_text_block(card)
    assert len(card.name.encode("utf-16-le")) == 8  # 𠈌 is a surrogate pair: 4 bytes
    assert decode_text_block(block).name == card.name


def test_thirty_five_character_address_fits_and_thirty_six_does_not() -> None:
    card = CARDS["resident-long-address"]
    assert len(card.address) == 35
    assert decode_text_block(encode_text_block(card)).address == card.address
    with pytest.raises(ValueError, match="address"):
        encode_text_block(resident(address=card.address + "室"))


def test_long_term_validity_and_nul_padding() -> None:
    block = bytearray(encode_text_block(resident(valid_to=LONG_TERM, name="李四")))
    block[4:30] = bytes(26)  # some cards pad with NUL instead of spaces
    card = decode_text_block(bytes(block))
    assert card.valid_to == "长期" and card.name == "李四"


def test_bad_blocks_raise_card_data_error() -> None:
    good = encode_text_block(resident())
    with pytest.raises(CardDataError):
        decode_text_block(good[:200])
    bad_date = bytearray(good)
    bad_date[36:52] = "19901399".encode("utf-16-le")
    with pytest.raises(CardDataError, match="birth"):
        decode_text_block(bytes(bad_date))
    bad_flag = bytearray(good)
    bad_flag[248:250] = "Q".encode("utf-16-le")
    with pytest.raises(CardDataError, match="type flag"):
        decode_text_block(bytes(bad_flag))
    lone_surrogate = bytearray(good)
    lone_surrogate[0:2] = b"\x00\xD8"
    with pytest.raises(CardDataError):
        decode_text_block(bytes(lone_surrogate))


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(min_size=256, max_size=256))
def test_decoding_arbitrary_blocks_gives_a_card_or_card_data_error(block: bytes) -> None:
    try:
        card = decode_text_block(block)
    except CardDataError:
        return
    assert isinstance(card, IdentityCard)


def test_appended_address_roundtrip() -> None:
    assert decode_appended_address(encode_appended_address("北京市东城区新址路34号")) == "北京市东城区新址路34号"


# -- validity ----------------------------------------------------------------------------
def test_validity_problems() -> None:
    assert resident().validity_problem(TODAY) is None
    assert resident().validity_problem(dt.date(2040, 5, 1)) is None  # valid through the end date
    assert resident().validity_problem(dt.date(2040, 5, 2)) == "expired"
    assert resident().validity_problem(dt.date(2020, 4, 30)) == "not_yet_valid"
    assert resident(valid_to=LONG_TERM).validity_problem(dt.date(2099, 1, 1)) is None
    assert resident(id_number="110101199003070012").validity_problem(TODAY) == "bad_id_number"
    assert resident(birth_date=dt.date(1990, 3, 8)).validity_problem(TODAY) == "id_birth_mismatch"
    assert CARDS["resident-expired"].validity_problem(TODAY) == "expired"
    assert set(VALIDITY_PROBLEMS) >= {"expired", "not_yet_valid", "bad_id_number"}


@pytest.mark.parametrize("card_id", sorted(set(CARDS) - {"resident-expired"}))
def test_emulator_cards_are_valid_in_mid_2026(card_id: str) -> None:
    assert CARDS[card_id].validity_problem(TODAY) is None


# -- privacy -------------------------------------------------------------------------------
def test_repr_and_str_hide_personal_data() -> None:
    card = CARDS["resident-long-term"]
    for text in (repr(card), str(card), f"{card}", repr([card]), repr({"identity": card})):
        assert card.name not in text and card.id_number not in text and card.address not in text
        assert "110101********0056" in text and "resident" in text
        assert "EMU1" not in text


def test_wipe_overwrites_every_personal_field() -> None:
    card = decode_text_block(encode_text_block(CARDS["resident-long-term"]))
    card.photo_wlt = b"\x01" * 1024
    card.photo_bmp = b"BM..."
    card.wipe()
    assert card.name == card.id_number == card.address == card.issuer == card.appended_address == ""
    assert card.photo_wlt == b"" and card.photo_bmp is None and card.fingerprint == b""
    assert card.birth_date is None and card.valid_to is None
    assert card.card_type == "resident"


def test_as_dict_is_json_ready() -> None:
    card = CARDS["resident-long-term"]
    data = card.as_dict()
    json.dumps(data, ensure_ascii=False)
    assert data["birth_date"] == "1960-04-12" and data["valid_to"] == "长期"
    assert data["gender"] == "男" and data["nation"] == "回族"
    assert isinstance(data["photo_wlt"], str)


def test_unknown_card_type_is_rejected() -> None:
    with pytest.raises(ValueError):
        IdentityCard("passport")


# -- photo plug-ins ------------------------------------------------------------------------
def test_emulator_photo_decoder_makes_a_bmp_of_the_id_photo_size() -> None:
    decoder = EmulatorPhotoDecoder()
    assert isinstance(decoder, PhotoDecoder)
    bmp = decoder.decode(encode_emulator_photo(synthetic_portrait("x")))
    assert bmp[:2] == b"BM" and len(bmp) == BMP_SIZE
    assert int.from_bytes(bmp[18:22], "little") == 102 and int.from_bytes(bmp[22:26], "little") == 126


def test_emulator_photo_decoder_refuses_anything_else() -> None:
    decoder = EmulatorPhotoDecoder()
    with pytest.raises(PhotoDecodeError):
        decoder.decode(b"\x57\x4c\x66" + bytes(1021))  # a WLT-looking block
    with pytest.raises(PhotoDecodeError):
        decoder.decode(b"EMU1\x66\x7e" + b"\xff" * 1018)
    with pytest.raises(PhotoDecodeError, match="too short"):
        decoder.decode(b"EMU2\x00")  # was struct.error, which the driver does not catch
    with pytest.raises(PhotoDecodeError, match="says 1000 bytes"):
        decoder.decode(b"EMU2\x03\xe8" + bytes(10))


@pytest.mark.parametrize("line, words", [
    ('name = 5', "name must be text"),
    ('valid_from = "长期"', "valid_from must be a TOML date or YYYYMMDD"),
    ('valid_to = 2030', "valid_to must be a TOML date, YYYYMMDD or 长期"),
    ('card_type = "passport"', "unknown card type"),
    ('emulator = 1', "emulator must be a table"),
])
def test_emulator_card_file_mistakes_name_the_file_and_key(tmp_path: Path, line: str, words: str) -> None:
    key = line.split(" ")[0]
    kept = [kept for kept in (CARDS_DIR / "resident.toml").read_text(encoding="utf-8").split("\n[emulator]")[0]
            .splitlines() if not kept.startswith(f"{key} =")]
    path = tmp_path / "broken.toml"
    path.write_text("\n".join([line, *kept]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=words) as caught:
        load_card(path)
    assert "broken.toml" in str(caught.value)


def test_photo_decoder_loader() -> None:
    assert load_photo_decoder("") is None
    assert isinstance(load_photo_decoder("emulator"), EmulatorPhotoDecoder)
    with pytest.raises(PhotoDecoderUnavailable, match="/nonexistent/libwlt.so"):
        load_photo_decoder("/nonexistent/libwlt.so")
    with pytest.raises(PhotoDecoderUnavailable):
        CtypesWltDecoder(__file__)  # exists, but is not a shared library
