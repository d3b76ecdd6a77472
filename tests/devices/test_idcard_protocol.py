"""SAM frame protocol (GA/T 467): exact bytes, resynchronisation, the SW3 table, and
a parser that never crashes whatever the line delivers."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.base import DeviceError, DeviceProtocolError
from devices.idcard import protocol as p


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text)


# -- building ------------------------------------------------------------------------------
def test_checksum_example_from_the_notes() -> None:
    assert p.checksum(hexbytes("00 03 20 01")) == 0x22


@pytest.mark.parametrize(
    "key, wire",
    [
        (p.FIND_CARD, "AA AA AA 96 69 00 03 20 01 22"),
        (p.SELECT_CARD, "AA AA AA 96 69 00 03 20 02 21"),
        (p.READ_TEXT_PHOTO, "AA AA AA 96 69 00 03 30 01 32"),
        (p.READ_TEXT_PHOTO_FINGERPRINT, "AA AA AA 96 69 00 03 30 10 23"),
        (p.SAM_STATUS, "AA AA AA 96 69 00 03 11 FF ED"),
        (p.RESET, "AA AA AA 96 69 00 03 10 FF EC"),
        (p.SAM_ID, "AA AA AA 96 69 00 03 12 FF EE"),
        (p.READ_APPENDED_ADDRESS, "AA AA AA 96 69 00 03 30 03 30"),
    ],
)
def test_command_frames_match_published_bytes(key: tuple[int, int], wire: str) -> None:
    assert p.build_command(*key) == hexbytes(wire)


def test_command_with_data_counts_it_in_len() -> None:
    frame = p.build_command(0x61, 0xFF, b"\x50")
    assert frame[5:7] == b"\x00\x04"
    assert frame[-1] == p.checksum(frame[5:-1])


def test_response_frame_layout() -> None:
    frame = p.build_response(p.SW3_CARD_FOUND, bytes(4))
    assert frame == hexbytes("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97")
    assert p.build_response(p.SW3_NO_CARD) == hexbytes("AA AA AA 96 69 00 04 00 00 80 84")


# -- parsing -------------------------------------------------------------------------------
def test_parse_response_roundtrip() -> None:
    (frame,) = p.parse_frames(p.build_response(0x90, b"\x01\x02"))
    assert isinstance(frame, p.RawFrame)
    assert frame.as_response() == p.Response(0, 0, 0x90, b"\x01\x02")


def test_garbage_before_preamble_is_skipped_and_counted() -> None:
    reader = p.FrameReader()
    reader.feed(b"\x00\x13\xAA\xAA\x96" + p.build_response(0x90))
    frame = reader.next_frame()
    assert frame is not None and frame.as_response().sw3 == 0x90
    assert reader.discarded == 5 and reader.pending == 0


def test_byte_by_byte_feeding_finds_the_frame() -> None:
    reader = p.FrameReader()
    wire = b"\xAA\xAA" + p.build_response(0x9F, bytes(4))
    frames = []
    for b in wire:
        reader.feed(bytes([b]))
        frame = reader.next_frame()
        if frame:
            frames.append(frame)
    assert [f.as_response().sw3 for f in frames] == [0x9F]


def test_bad_checksum_is_reported_then_the_next_frame_found() -> None:
    bad = bytearray(p.build_response(0x90, b"abc"))
    bad[-1] ^= 0xFF
    items = p.parse_frames(bytes(bad) + p.build_response(0x80))
    assert isinstance(items[0], p.ChecksumError)
    assert isinstance(items[-1], p.RawFrame) and items[-1].as_response().sw3 == 0x80


@pytest.mark.parametrize("length", [b"\x00\x00", b"\x00\x02", b"\xFF\xFF"])
def test_impossible_len_is_reported_and_resynchronised(length: bytes) -> None:
    items = p.parse_frames(p.PREAMBLE + length + p.build_response(0x90))
    assert isinstance(items[0], p.LengthError)
    assert isinstance(items[-1], p.RawFrame) and items[-1].as_response().sw3 == 0x90


def test_partial_frame_waits_for_more() -> None:
    reader = p.FrameReader()
    frame = p.build_response(0x90, bytes(100))
    reader.feed(frame[:50])
    assert reader.next_frame() is None
    reader.feed(frame[50:])
    assert reader.next_frame() is not None


def test_clear_overwrites_and_forgets() -> None:
    reader = p.FrameReader()
    reader.feed(p.build_response(0x90, bytes(10))[:12])
    reader.clear()
    assert reader.pending == 0


# -- status codes --------------------------------------------------------------------------
NOTES_CODES = [0x90, 0x9F, 0x80, 0x81, 0x91, 0x41, 0x40, 0x10, 0x11, 0x21, 0x23, 0x24,
               0x31, 0x32, 0x33, 0x37, 0x3F, 0x47, 0x60, 0x66]


def test_every_code_from_the_notes_is_in_the_table() -> None:
    assert sorted(p.SW3_TABLE) == sorted(NOTES_CODES)
    for info in p.SW3_TABLE.values():
        assert info.zh and info.en


@pytest.mark.parametrize(
    "sw3, cls",
    [
        (0x80, p.NoCardError), (0x81, p.SelectFailed), (0x91, p.NoSuchItem), (0x41, p.ReadFailed),
        (0x40, p.UnknownCardType), (0x10, p.SamCommandError), (0x11, p.SamCommandError),
        (0x21, p.SamCommandError), (0x3F, p.SamCommandError), (0x23, p.SamAuthError),
        (0x31, p.SamAuthError), (0x32, p.SamAuthError), (0x33, p.SamAuthError), (0x37, p.SamAuthError),
        (0x66, p.SamAuthError), (0x60, p.SamSelfTestFailed), (0x47, p.SamRandomError),
        (0x24, p.SamUnknownError),
    ],
)
def test_error_codes_map_to_specific_exceptions(sw3: int, cls: type) -> None:
    exc = p.error_for_sw3(sw3, "read text+photo")
    assert type(exc) is cls and isinstance(exc, DeviceError)
    assert exc.sw3 == sw3 and f"0x{sw3:02X}" in str(exc) and "read text+photo" in str(exc)
    with pytest.raises(cls):
        p.Response(0, 0, sw3).check()


def test_success_codes_have_no_exception_and_unknown_codes_a_generic_one() -> None:
    assert p.SW3_TABLE[0x90].error is None and p.SW3_TABLE[0x9F].error is None
    exc = p.error_for_sw3(0x55)
    assert type(exc) is p.SamStatusError and "0x55" in str(exc)


def test_framing_errors_are_protocol_errors() -> None:
    for cls in (p.FrameError, p.ChecksumError, p.LengthError, p.MalformedResponse):
        assert issubclass(cls, DeviceProtocolError)


def test_check_accepts_listed_codes_and_rejects_nonzero_sw1_sw2() -> None:
    assert p.Response(0, 0, 0x9F).check((0x9F,)).sw3 == 0x9F
    with pytest.raises(p.MalformedResponse):
        p.Response(0x6A, 0x82, 0x90).check()


# -- payloads ----------------------------------------------------------------------------
def test_card_blocks_roundtrip_with_and_without_fingerprint() -> None:
    text, photo, fp = bytes(range(256)), b"\x01" * 1024, b"\x02" * 1024
    data = p.build_card_blocks(text, photo)
    assert len(data) == 4 + 256 + 1024
    assert len(p.build_response(0x90, data)) == 1295  # the reply size from the notes
    assert p.parse_card_blocks(data) == p.CardBlocks(text, photo)
    data = p.build_card_blocks(text, photo, fp)
    assert p.parse_card_blocks(data, with_fingerprint=True) == p.CardBlocks(text, photo, fp)


def test_card_blocks_with_wrong_lengths_are_malformed() -> None:
    data = p.build_card_blocks(bytes(256), bytes(1024))
    with pytest.raises(p.MalformedResponse):
        p.parse_card_blocks(data[:-1])
    with pytest.raises(p.MalformedResponse):
        p.parse_card_blocks(p.build_card_blocks(bytes(200), bytes(1024)))


def test_sam_id_roundtrip() -> None:
    text = "05.01-20101220-0014569830-2406183574"
    assert p.format_sam_id(p.encode_sam_id(text)) == text


# -- properties ----------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=600))
def test_parser_never_crashes_on_arbitrary_bytes(data: bytes) -> None:
    for item in p.parse_frames(data):
        assert isinstance(item, (p.RawFrame, p.FrameError))


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.binary(max_size=40), max_size=20))
def test_reader_never_crashes_whatever_the_chunking(chunks: list[bytes]) -> None:
    reader = p.FrameReader()
    for chunk in [p.PREAMBLE] + chunks:
        reader.feed(chunk)
        for item in reader.frames():
            assert isinstance(item, (p.RawFrame, p.FrameError))


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.binary(max_size=64).filter(lambda b: p.PREAMBLE not in b),
    st.integers(0, 255),
    st.binary(max_size=300),
    st.binary(max_size=20),
)
def test_a_frame_behind_any_garbage_is_found_intact(garbage: bytes, sw3: int, data: bytes, tail: bytes) -> None:
    items = p.parse_frames(garbage + p.build_response(sw3, data) + tail)
    frames = [i for i in items if isinstance(i, p.RawFrame)]
    assert frames and frames[0].as_response() == p.Response(0, 0, sw3, data)
