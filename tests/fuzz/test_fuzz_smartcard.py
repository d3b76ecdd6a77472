"""Fuzzing what the social security card reader parses: APDU responses (status words, GET
RESPONSE and wrong-Le chains), TLV records, the value formats (an, GBK, BCD, BCD dates, hex)
and the holder built from them, all the way through the PC/SC driver's profile loop.

tests/devices/test_smartcard_profile.py feeds random records to the decoders and one
random answer to one command; here every command of a whole read gets a fuzzed answer,
derived from a real virtual card's (devices/smartcard/card_emulator.py) so reads get
deep: the answer itself, its bytes damaged, another status word, a GET RESPONSE chain,
noise, silence, or the card pulled out. Round trips go through the builders the virtual
cards use (build_tlv_record, encode_value).
"""
from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest
from fuzzing import Budget, fuzz
from hypothesis import event, given
from hypothesis import strategies as st

from devices.base import DeviceError
from devices.idcard.identity import VALIDITY_PROBLEMS
from devices.smartcard import apdu as A
from devices.smartcard.card_emulator import CardEngine, load_card
from devices.smartcard.codec import build_tlv_record, decode_value, encode_value, parse_tlv_record
from devices.smartcard.holder import SocialSecurityCard, holder_from_values
from devices.smartcard.pcsc_driver import CardPulled, PcscReader
from devices.smartcard.profile import MAX_GET_RESPONSES, load_profile, read_card_data

CARDS = ("zhang-san", "li-si-gen2", "liu-guizhi-gen1", "zhang-san-expired")
# status words a card answers with, the driver's special cases first
_SWS = [0x9000, 0x6100, 0x6110, 0x61FF, 0x6C00, 0x6C10, 0x6A82, 0x6A83, 0x6283, 0x6983, 0x6A81, 0x6982,
        0x6B00, 0x6282, 0x6700, 0x6D00, 0x6F00, 0x63C2]
status_words = st.sampled_from(_SWS) | st.integers(0, 0xFFFF)


@functools.cache
def _engine(card: str) -> CardEngine:
    """One virtual card per file per process (its photo takes a face detection to cut)."""
    return load_card(card)


@functools.cache
def _reader() -> PcscReader:
    """The driver's profile loop without PC/SC: `_read_with_profiles(transmit)` is pure."""
    return PcscReader("smartcard", monitor=False)


def _sw(sw: int) -> bytes:
    return bytes([sw >> 8, sw & 0xFF])


def _damaged(answer: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(answer[:-2])
    for position, mask in flips:
        if data:
            data[position % len(data)] ^= mask or 1
    return bytes(data) + answer[-2:]


class FuzzedCard:
    """A real virtual card whose answers to a few chosen APDUs (any of the read's) are fuzzed."""

    FAULTS = ("value", "value", "value", "damaged", "damaged", "status", "status", "truncated", "more", "noise",
              "empty", "pulled")

    def __init__(self, engine: CardEngine, data: st.DataObject) -> None:
        self.engine = engine
        self.data = data
        self.budget = Budget(400, "APDUs for one card read")
        # the holder's records come first (the application, then ~10 records); the photo's chunks after
        self.faulty = data.draw(st.sets(st.integers(0, 16) | st.integers(0, 80), max_size=4), label="faulty APDUs")
        # and each READ RECORD (one field's value) fuzzed with this chance in ten
        self.record_odds = data.draw(st.sampled_from([0, 1, 3, 6]), label="record odds")

    def transmit(self, command: bytes) -> bytes:
        index = self.budget.used
        self.budget.spend()
        answer = self.engine.respond(command)
        record = command[1:2] == b"\xB2" and self.data.draw(st.integers(0, 9), label="dice") < self.record_odds
        if index not in self.faulty and not record:
            return answer
        action = self.data.draw(st.sampled_from(self.FAULTS), label="fault")
        if action == "value" and len(answer) >= 4 and answer[-2:] == b"\x90\x00":
            # the record's tag kept, any value of any length: what each field's decoder meets
            value = self.data.draw(st.binary(max_size=40) | st.text(max_size=15).map(
                lambda t: t.encode("gbk", "replace")), label="value")
            return build_tlv_record(answer[0], value) + answer[-2:]
        if action == "damaged":
            return _damaged(answer, self.data.draw(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)),
                                                            min_size=1, max_size=4), label="flips"))
        if action == "status":
            return answer[:-2] + _sw(self.data.draw(status_words, label="sw"))
        if action == "truncated":
            return answer[:self.data.draw(st.integers(0, max(0, len(answer) - 1)), label="cut")]
        if action == "more":  # part of the answer now, "61xx: more to GET"
            return self.data.draw(st.binary(max_size=8), label="part") + _sw(0x6100 | self.data.draw(
                st.integers(0, 255), label="more"))
        if action == "noise":
            return self.data.draw(st.binary(max_size=24), label="noise")
        if action in ("empty", "value"):  # "value" on an answer that is no record: silence instead
            return b""
        raise CardPulled("the card left the reader during the read (fuzz)")


@fuzz(150)
@given(st.sampled_from(CARDS), st.data(), st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 1, 1)))
def test_reading_any_card_answers_raises_device_errors_only(card: str, data: st.DataObject, today: dt.date) -> None:
    """The driver's read (every profile in turn) against a card whose answers are fuzzed: a
    holder or a DeviceError (what _card_arrived turns into a card_placed with a code), in a
    bounded number of APDUs; and a holder read answers every question the visit asks."""
    engine = _engine(card)
    engine.reset()
    fuzzed = FuzzedCard(engine, data)
    try:
        holder = _reader()._read_with_profiles(fuzzed.transmit)
    except DeviceError as exc:
        event(f"read raised {type(exc).__name__}")
        return
    event("a card was read")
    assert isinstance(holder, SocialSecurityCard) and holder.id_number and holder.name
    problem = holder.validity_problem(today)
    assert problem is None or problem in VALIDITY_PROBLEMS
    assert isinstance(repr(holder), str) and isinstance(holder.masked(), dict) and holder.as_dict()
    holder.wipe()
    assert holder.name == "" and holder.photo_bmp is None


@pytest.mark.parametrize("answer", [b"\x61\x10", b"\x41" * 16 + b"\x61\x10"])
def test_a_card_that_always_has_more_to_send_is_given_up(answer: bytes) -> None:
    """The reproducer the fuzzer's budget found: every answer is "61 10" (with or without data),
    forever. The read gives up after MAX_GET_RESPONSES with a CardDataError that says why."""
    budget = Budget(MAX_GET_RESPONSES + 1, "APDUs for one card read")

    def transmit(command: bytes) -> bytes:
        budget.spend()
        return answer

    with pytest.raises(A.CardDataError, match="still had more to send") as caught:
        read_card_data(transmit, load_profile("social_security_3"))
    assert "selecting the social security card" in str(caught.value)
    assert budget.used == MAX_GET_RESPONSES + 1  # the SELECT and its chained GET RESPONSEs, no more


def test_a_short_get_response_chain_is_followed() -> None:
    """A card that hands a record out in pieces (61xx, then GET RESPONSE) still reads."""
    engine = _engine("zhang-san")
    engine.reset()
    pending = bytearray()

    def transmit(command: bytes) -> bytes:
        if command[1:2] == b"\xC0":  # GET RESPONSE: the rest of the pending record
            rest, pending[:] = bytes(pending), b""
            return rest + b"\x90\x00"
        answer = engine.respond(command)
        if command[1:2] == b"\xB2" and answer[-2:] == b"\x90\x00" and len(answer) > 6:
            pending[:] = answer[4:-2]
            return answer[:4] + bytes([0x61, len(pending)])
        return answer

    assert read_card_data(transmit, load_profile("social_security_3"))["name"] == "张三"


# -- status words and records ----------------------------------------------------------------------
@fuzz(300)
@given(st.binary(max_size=40))
def test_any_response_apdu_splits_or_raises_a_protocol_error(response: bytes) -> None:
    try:
        data, sw = A.split_response(response, "fuzz")
    except A.DeviceProtocolError:
        assert len(response) < 2
        return
    assert data + _sw(sw) == response
    error = A.CardStatusError("fuzz", sw)
    assert isinstance(A.sw_meaning(sw), str) and f"{sw:04X}" in str(error)
    assert isinstance(error.not_found, bool) and isinstance(error.blocked, bool)


@fuzz(300)
@given(st.integers(0, 255), st.binary(max_size=255), st.binary(max_size=30).map(
    lambda b: bytes(x if x in (0x00, 0xFF) else 0xFF for x in b)))
def test_tlv_records_round_trip_with_any_fill(tag: int, value: bytes, fill: bytes) -> None:
    assert parse_tlv_record(build_tlv_record(tag, value) + fill, tag, "fuzz") == value


_AN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
_GBK = st.text(st.one_of(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
                         st.characters(min_codepoint=0x30, max_codepoint=0x7A)), max_size=15).filter(
    lambda s: _encodes(s, "gbk"))


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


@fuzz(300)
@given(st.one_of(
    st.tuples(st.just("an"), _AN),
    st.tuples(st.just("gbk"), _GBK),
    st.tuples(st.just("bcd"), st.text("0123456789", max_size=20)),
    st.tuples(st.just("bcd_date"), st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))),
    st.tuples(st.just("hex"), st.binary(max_size=20).map(bytes.hex)),
), st.integers(0, 8))
def test_values_round_trip_through_what_a_card_stores(case: tuple[str, Any], spare: int) -> None:
    fmt, value = case
    raw = encode_value(value, fmt)
    expected = value.upper() if fmt == "hex" else value
    assert decode_value(raw, fmt, "fuzz") == expected
    if fmt == "bcd_date":  # never padded: always its four bytes (see below)
        assert encode_value(value, fmt, 4) == raw
        return
    stored = encode_value(value, fmt, len(raw) + spare)  # padded as a fixed-size record
    if fmt != "hex":  # hex keeps its padding (raw bytes)
        assert decode_value(stored, fmt, "fuzz") == expected


@pytest.mark.parametrize("length", [0, 3, 5, 8])
def test_a_bcd_date_is_four_bytes_on_every_side(length: int) -> None:
    """Cards store a date as YYYYMMDD in four BCD bytes; padding it to more gave digits that
    decode_value refuses (the fuzz report's mismatch), so any other length is refused when
    encoding, and at profile load (tests/fuzz/test_fuzz_config.py)."""
    assert decode_value(encode_value(dt.date(1990, 3, 7), "bcd_date", 4), "bcd_date", "d") == dt.date(1990, 3, 7)
    with pytest.raises(ValueError, match="bcd_date value is 4 bytes"):
        encode_value(dt.date(1990, 3, 7), "bcd_date", length)


_TEXT = st.text(max_size=24) | st.text("0123456789Xx", min_size=15, max_size=19)
_DATE = st.none() | st.dates()


@fuzz(200)
@given(st.fixed_dictionaries({}, optional={
    "id_number": _TEXT, "name": _TEXT, "gender_code": _TEXT, "nation_code": _TEXT, "birth_date": _DATE,
    "birthplace_code": _TEXT, "card_number": _TEXT, "card_identifier": _TEXT, "spec_version": _TEXT,
    "issuer_code": _TEXT, "issue_date": _DATE, "expiry_date": _DATE, "photo": st.binary(max_size=16)}),
       st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 1, 1)))
def test_a_holder_from_any_decoded_values_is_usable_or_refused(values: dict[str, Any], today: dt.date) -> None:
    """Values as the profile decoders give them (text, dates or None, photo bytes) in any combination."""
    try:
        holder = holder_from_values(values, "fuzz")
    except A.CardDataError:
        return
    problem = holder.validity_problem(today)
    assert problem is None or problem in VALIDITY_PROBLEMS
    assert isinstance(repr(holder), str) and isinstance(holder.masked(), dict) and holder.as_dict()
