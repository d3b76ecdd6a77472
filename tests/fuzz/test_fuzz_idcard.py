"""Fuzzing the ID-card reader's parsers: SAM frames (GA/T 467), the read reply's blocks, the
256-byte text block of all four card types, the appended address, the SAM ID, the
emulator's photo encoding, and the whole driver answering whatever a SAM (or line noise)
sends back.

tests/devices/test_idcard_protocol.py and test_idcard_identity.py already feed arbitrary
bytes to the frame reader and the text block; this module adds what they do not: the
driver end to end over a fake line (every command answered by a fuzzed reply, with a
clock that moves only when the line is silent), chunking invariance of the frame reader,
damaged-but-plausible text blocks, and round trips through each builder.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from unittest import mock

from fuzzing import Budget, FakeClock, fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st

from devices.base import DeviceError
from devices.idcard import driver as driver_module
from devices.idcard import protocol as p
from devices.idcard.driver import SamSerialReader
from devices.idcard.emulator_photo import MAGIC, MAGIC_WEBP, EmulatorPhotoDecoder, encode_emulator_photo
from devices.idcard.identity import (
    _LAYOUTS,
    LONG_TERM,
    VALIDITY_PROBLEMS,
    CardDataError,
    IdentityCard,
    decode_appended_address,
    decode_text_block,
    encode_appended_address,
    encode_text_block,
    id_check_digit,
)
from devices.idcard.interface import CARD_PLACED
from devices.idcard.photo import PhotoDecodeError

# -- strategies ------------------------------------------------------------------------------------
_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
_PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
# sampled, not only character ranges: hypothesis merges ranges and draws across them evenly, so a
# space (one code point beside 20,000 hanzi) would almost never come first or last
_TEXT_CHARS = st.one_of(st.sampled_from(list(" 张三李四王示例街道测试路号市区省北京东城 ABCXYZabc019-,.()·")),
                        _CJK, _PRINTABLE)
_DATES = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))


def _field_text(chars: int) -> st.SearchStrategy[str]:
    """Text that fits `chars` UTF-16 units and survives the decoder's strip of trailing blanks
    (leading blanks are kept, and drawn on purpose: a decoder that strips them is wrong)."""
    lead = st.sampled_from(["", "", "", " ", "  "])
    return st.builds(lambda a, b: (a + b)[:chars].rstrip(" "), lead, st.text(_TEXT_CHARS, max_size=chars))


@st.composite
def id_numbers(draw: st.DrawFn, birth: dt.date | None = None) -> str:
    region = draw(st.sampled_from(["110101", "440305", "310104", "650102", "810000", "830000"]))
    day = birth or draw(_DATES)
    serial = draw(st.integers(0, 999))
    first17 = f"{region}{day:%Y%m%d}{serial:03d}"
    return first17 + id_check_digit(first17)


@st.composite
def identity_cards(draw: st.DrawFn) -> IdentityCard:
    """Any card of the four types whose every field fits its place in the text block."""
    card_type = draw(st.sampled_from(sorted(_LAYOUTS)))
    values: dict[str, Any] = {}
    for attr, _offset, size in _LAYOUTS[card_type]:
        if attr == "birth":
            values["birth_date"] = draw(st.none() | _DATES)
        elif attr == "valid_from":
            values["valid_from"] = draw(st.none() | _DATES)
        elif attr == "valid_to":
            values["valid_to"] = draw(st.none() | _DATES | st.just(LONG_TERM))
        elif attr.startswith("english_name"):
            values["english_name"] = draw(st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ ,-"), max_size=46)
                                          .map(lambda s: s.rstrip(" ")))
        elif attr == "id_number" and size == 36:
            values["id_number"] = draw(id_numbers(values.get("birth_date")) | _field_text(18))
        else:
            values[attr] = draw(_field_text(size // 2))
    return IdentityCard(card_type=card_type, **values)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, mask in flips:
        if out:
            out[position % len(out)] ^= mask or 1
    return bytes(out)


damage = st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6)


# -- the frame reader ----------------------------------------------------------------------------------
def _items(reader: p.FrameReader) -> list[object]:
    out: list[object] = []
    for item in reader.frames():
        out.append(item.body if isinstance(item, p.RawFrame) else type(item))
    return out


@fuzz(200)
@given(st.lists(st.one_of(st.builds(p.build_response, st.integers(0, 255), st.binary(max_size=80)),
                          st.binary(max_size=30)), max_size=8),
       damage, st.lists(st.integers(1, 40), min_size=1, max_size=40))
def test_frame_reader_gives_the_same_frames_however_the_line_chunks_them(parts: list[bytes],
                                                                        flips: list[tuple[int, int]],
                                                                        cuts: list[int]) -> None:
    """Frames, damage and noise fed whole or in any pieces: the same frames and errors, in order."""
    stream = _flip(b"".join(parts), flips)
    whole = p.FrameReader()
    whole.feed(stream)
    expected = _items(whole)
    pieces = p.FrameReader()
    got: list[object] = []
    at = 0
    for n in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        if at >= len(stream):
            break
        pieces.feed(stream[at:at + n])
        at += n
        got += _items(pieces)
    assert got == expected


@fuzz(300)
@given(st.binary(max_size=3000), st.booleans())
def test_card_blocks_split_or_refuse(data: bytes, with_fingerprint: bool) -> None:
    try:
        blocks = p.parse_card_blocks(data, with_fingerprint)
    except p.MalformedResponse:
        return
    assert len(blocks.text) == p.TEXT_LEN


@fuzz(200)
@given(st.binary(min_size=256, max_size=256), st.binary(max_size=1200), st.none() | st.binary(max_size=1200))
def test_card_blocks_round_trip(text: bytes, photo: bytes, fingerprint: bytes | None) -> None:
    data = p.build_card_blocks(text, photo, fingerprint)
    assert p.parse_card_blocks(data, fingerprint is not None) == p.CardBlocks(text, photo, fingerprint or b"")


@fuzz(200)
@given(st.binary(max_size=40))
def test_sam_id_formats_or_refuses_and_round_trips(data: bytes) -> None:
    try:
        text = p.format_sam_id(data)
    except p.MalformedResponse:
        assert len(data) < p.SAM_ID_LEN
        return
    assert p.encode_sam_id(text) == data[:p.SAM_ID_LEN]


# -- the text block ------------------------------------------------------------------------------------
@fuzz(100)
@given(identity_cards())
def test_text_block_round_trips_every_card_type(card: IdentityCard) -> None:
    block = encode_text_block(card)
    assert len(block) == 256
    decoded = decode_text_block(block)
    for attr in ("card_type", "name", "gender_code", "nation_code", "birth_date", "address", "id_number",
                 "issuer", "valid_from", "valid_to", "pass_number", "issue_count", "english_name",
                 "nationality_code", "card_version", "issuer_code", "renewal_count", "previous_number_link"):
        assert getattr(decoded, attr) == getattr(card, attr), attr


@fuzz(150)
@given(identity_cards(), damage, st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 1, 1)))
def test_damaged_text_blocks_decode_or_raise_card_data_error(card: IdentityCard, flips: list[tuple[int, int]],
                                                             today: dt.date) -> None:
    """A real block with a few bits flipped (a card read on a bad day) gets past the type flag far
    more often than random bytes do: whatever it becomes, it is a card or CardDataError, and
    every question the visit asks of the card has an answer."""
    block = _flip(encode_text_block(card), [(pos % 256, mask) for pos, mask in flips])
    try:
        decoded = decode_text_block(block)
    except CardDataError:
        return
    problem = decoded.validity_problem(today)
    assert problem is None or problem in VALIDITY_PROBLEMS
    assert decoded.card_type in _LAYOUTS
    assert isinstance(repr(decoded), str) and isinstance(decoded.masked_id, str) and decoded.as_dict()


@fuzz(300)
@given(st.binary(max_size=300))
def test_appended_address_decodes_or_raises_card_data_error(data: bytes) -> None:
    try:
        text = decode_appended_address(data)
    except CardDataError:
        return
    assert isinstance(text, str)


@fuzz(200)
@given(_field_text(35))
def test_appended_address_round_trips(text: str) -> None:
    assert decode_appended_address(encode_appended_address(text)) == text


# -- the emulator's photo encoding ---------------------------------------------------------------------
@fuzz(300)
@given(st.one_of(st.binary(max_size=1100),
                 st.tuples(st.sampled_from([MAGIC, MAGIC_WEBP]), st.binary(max_size=300)).map(b"".join)))
@example(MAGIC_WEBP + b"\x00")  # was struct.error: a 2-byte length read from one byte
@example(MAGIC_WEBP + b"\xff\xff" + bytes(10))  # a length past the block's end
def test_emulator_photo_decoder_decodes_or_raises_photo_decode_error(block: bytes) -> None:
    try:
        bmp = EmulatorPhotoDecoder().decode(block)
    except PhotoDecodeError:
        return
    assert bmp[:2] == b"BM"


@fuzz(50)
@given(st.integers(1, 30), st.integers(1, 30), st.data())  # random pixels compress to no less: <= 900 fit
def test_emulator_photo_round_trips(width: int, height: int, data: st.DataObject) -> None:
    gray = data.draw(st.binary(min_size=width * height, max_size=width * height))
    bmp = EmulatorPhotoDecoder().decode(encode_emulator_photo(gray, width, height))
    assert bmp[:2] == b"BM" and int.from_bytes(bmp[18:22], "little") == width


# -- the driver over a fuzzed line ---------------------------------------------------------------------
_UNPLUG = object()


class FakeSamLine:
    """The far end of the reader's serial line: each command frame gets the reply `answer` gives
    (bytes, None for silence, _UNPLUG for a cable pulled); reads never block."""

    def __init__(self, answer: Callable[[tuple[int, int]], Any], clock: FakeClock) -> None:
        self.answer = answer
        self.clock = clock
        self.rx = bytearray()
        self.unplugged = False
        self.writes = Budget(60, "SAM commands")
        self.silent_reads = Budget(20_000, "silent reads")

    def reset_input_buffer(self) -> None:
        self.rx.clear()

    def write(self, frame: bytes) -> int:
        self.writes.spend()
        if self.unplugged:
            raise OSError(5, "Input/output error")
        (command,) = [f for f in p.parse_frames(frame) if isinstance(f, p.RawFrame)]
        reply = self.answer(command.as_command().key)
        if reply is _UNPLUG:
            self.unplugged = True
        elif reply:
            self.rx += reply
        return len(frame)

    def read(self, n: int) -> bytes:
        if self.unplugged:
            raise OSError(5, "Input/output error")
        if not self.rx:
            self.silent_reads.spend()
            self.clock.now += 0.05  # one read slice of silence
            return b""
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def close(self) -> None:
        pass


_SW3 = st.sampled_from(sorted(p.SW3_TABLE)) | st.integers(0, 255)


def _payload(key: tuple[int, int]) -> st.SearchStrategy[bytes]:
    if key in (p.READ_TEXT_PHOTO, p.READ_TEXT_PHOTO_FINGERPRINT):
        fingerprint = key == p.READ_TEXT_PHOTO_FINGERPRINT
        blocks = st.builds(
            lambda card, photo, fp: p.build_card_blocks(encode_text_block(card), photo, fp if fingerprint else None),
            identity_cards(),
            st.sampled_from([encode_emulator_photo(bytes(102 * 126))]) | st.binary(max_size=1100),
            st.binary(max_size=64))
        return st.one_of(blocks, blocks.flatmap(lambda b: damage.map(lambda f: _flip(b, f))), st.binary(max_size=600))
    if key == p.READ_APPENDED_ADDRESS:
        return st.one_of(_field_text(35).map(encode_appended_address), st.binary(max_size=160))
    if key == p.SAM_ID:
        return st.binary(max_size=24)
    return st.binary(max_size=8)


def _reply(key: tuple[int, int]) -> st.SearchStrategy[Any]:
    """Mostly the answer a SAM with a card gives (so polls get as far as reading the card), with a
    fuzzed payload; else any status, damage, noise, silence or a pulled cable."""
    ok = p.SW3_CARD_FOUND if key == p.FIND_CARD else p.SW3_SUCCESS
    good = st.builds(lambda data: p.build_response(ok, data), _payload(key))
    sw12 = st.just((0, 0)) | st.tuples(st.integers(0, 255), st.integers(0, 255))
    frame = st.builds(lambda sw3, data, sw: p.build_response(sw3, data, *sw), _SW3, _payload(key), sw12)
    kinds = {"good": good, "frame": frame, "damaged": frame.flatmap(lambda f: damage.map(lambda d: _flip(f, d))),
             "noise": st.binary(max_size=40), "silence": st.just(None), "unplug": st.just(_UNPLUG)}
    weights = ["good"] * 12 + ["frame", "frame", "damaged", "noise", "silence", "unplug"]
    return st.sampled_from(weights).flatmap(kinds.__getitem__)


def _reader(line: FakeSamLine, decoder: bool) -> SamSerialReader:
    reader = SamSerialReader("idcard", port="fuzz://sam", timeout_s=0.2, retries=1,
                             today=lambda: dt.date(2026, 6, 1))
    reader._port = line
    reader._decoder = EmulatorPhotoDecoder() if decoder else None
    return reader


@fuzz(80)
@given(st.data(), st.booleans())
def test_driver_polls_through_any_sam_answers_with_device_errors_only(data: st.DataObject, decoder: bool) -> None:
    """Three supervision polls against a SAM answering each command with a fuzzed frame, damage,
    noise, silence or a pulled cable: poll raises only DeviceError (what the supervisor handles),
    asks a bounded number of commands, and every card_placed carries a card or a coded error."""
    clock = FakeClock()
    line = FakeSamLine(lambda key: data.draw(_reply(key), label=p.COMMAND_NAMES.get(key, "cmd")), clock)
    reader = _reader(line, decoder)  # with the emulator decoder too, now that it refuses short blocks
    events: list[Any] = []
    reader.subscribe(events.append)
    with mock.patch.object(driver_module, "time", clock):
        for _ in range(3):
            line.writes.used = 0
            try:
                reader.poll()
            except DeviceError as exc:  # DeviceDisconnected, DeviceTimeout, DeviceProtocolError, SamStatusError...
                event(f"poll raised {type(exc).__name__}")
    for placed in (e for e in events if e.kind == CARD_PLACED):
        if isinstance(placed.data.get("identity"), IdentityCard):
            event("a card was read")
        else:
            assert isinstance(placed.data.get("error"), str) and isinstance(placed.data.get("code"), str)
            event(f"card placed, not read: {placed.data['code']}")


@fuzz(60)
@given(identity_cards(), st.one_of(st.none(), _field_text(35)), st.booleans())
def test_driver_reads_a_well_behaved_sam_card_exactly(card: IdentityCard, address: str | None,
                                                      fingerprint: bool) -> None:
    """The builder's round trip through the driver: what the SAM sends is what the visit gets."""
    photo = encode_emulator_photo(bytes(range(256)) * 50 + bytes(102 * 126 - 12800))
    fp = b"\x5a" * p.FINGERPRINT_LEN

    def sam(key: tuple[int, int]) -> bytes:
        if key == p.FIND_CARD:
            return p.build_response(p.SW3_CARD_FOUND, bytes(4))
        if key in (p.READ_TEXT_PHOTO, p.READ_TEXT_PHOTO_FINGERPRINT):
            return p.build_response(p.SW3_SUCCESS, p.build_card_blocks(encode_text_block(card), photo,
                                                                          fp if fingerprint else None))
        if key == p.READ_APPENDED_ADDRESS:
            if address is None:
                return p.build_response(p.SW3_NO_SUCH_ITEM)
            return p.build_response(p.SW3_SUCCESS, encode_appended_address(address))
        return p.build_response(p.SW3_SUCCESS)

    clock = FakeClock()
    reader = _reader(FakeSamLine(sam, clock), decoder=True)
    with mock.patch.object(driver_module, "time", clock):
        got = reader.read_card(with_fingerprint=fingerprint)
    for attr in ("card_type", "name", "id_number", "birth_date", "address", "valid_from", "valid_to",
                 "english_name", "pass_number"):
        assert getattr(got, attr) == getattr(card, attr), attr
    assert got.appended_address == (address or "")
    assert got.photo_wlt == photo and got.photo_note == "decoded" and got.photo_bmp[:2] == b"BM"
    assert got.fingerprint == (fp if fingerprint else b"")


def test_a_card_block_that_is_not_a_photo_is_reported_not_raised() -> None:
    """The decoder refusing a block is a note on the card, not a failed read."""
    card = IdentityCard("resident", name="测试", id_number="110101199003070011")
    clock = FakeClock()

    def sam(key: tuple[int, int]) -> bytes:
        if key == p.READ_TEXT_PHOTO:
            return p.build_response(p.SW3_SUCCESS, p.build_card_blocks(encode_text_block(card), b"WLT" * 300))
        if key == p.READ_APPENDED_ADDRESS:
            return p.build_response(p.SW3_NO_SUCH_ITEM)
        return p.build_response(p.SW3_CARD_FOUND if key == p.FIND_CARD else p.SW3_SUCCESS, bytes(4))

    reader = _reader(FakeSamLine(sam, clock), decoder=True)
    with mock.patch.object(driver_module, "time", clock):
        got = reader.read_card()
    assert got.photo_bmp is None and got.photo_note.startswith("decode failed")
