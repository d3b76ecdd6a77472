"""The SAM serial frame protocol of second-generation ID-card readers (GA/T 467).

Pure functions and data only: no I/O, so the driver, the emulator and the tests share
one implementation of the wire and a technician can decode a captured trace with it.

Frame layout (commands and responses use the same envelope)::

    AA AA AA 96 69 | LEN (2, big-endian) | body ... | CHK

LEN counts every byte after the two length bytes, CHK included. CHK is the XOR of the
length bytes and the body. A command body is ``CMD PARA DATA...``, a response body is
``SW1 SW2 SW3 DATA...``.

Sources: /work/shared/protocols/id-card-sam.md, cross-checked against public SDK headers
(libsamv.h style tables and vendor SDK status lists). They agree on every SW3 code
listed there except 0x37 (fingerprint authentication) and 0x3F (length error), which
only the project notes list; both are kept. Some sources also name a command 30 05
(read the card's physical serial, "MID"); it is not used here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from devices.base import DeviceError, DeviceProtocolError

PREAMBLE = b"\xAA\xAA\xAA\x96\x69"
HEADER_LEN = len(PREAMBLE) + 2  # preamble + LEN
MIN_LEN = 3  # a command: CMD PARA CHK (a response needs 4: SW1 SW2 SW3 CHK)
MAX_LEN = 4096  # the largest real reply (30 10) is 2314; anything beyond is line noise

# -- commands (CMD, PARA) --------------------------------------------------------------
RESET = (0x10, 0xFF)
SAM_STATUS = (0x11, 0xFF)
SAM_ID = (0x12, 0xFF)
FIND_CARD = (0x20, 0x01)
SELECT_CARD = (0x20, 0x02)
READ_TEXT_PHOTO = (0x30, 0x01)
READ_TEXT_PHOTO_FINGERPRINT = (0x30, 0x10)
READ_APPENDED_ADDRESS = (0x30, 0x03)
SET_RF_FRAME_SIZE = (0x61, 0xFF)

COMMAND_NAMES: dict[tuple[int, int], str] = {
    RESET: "reset SAM",
    SAM_STATUS: "SAM status",
    SAM_ID: "read SAM ID",
    FIND_CARD: "find card",
    SELECT_CARD: "select card",
    READ_TEXT_PHOTO: "read text+photo",
    READ_TEXT_PHOTO_FINGERPRINT: "read text+photo+fingerprint",
    READ_APPENDED_ADDRESS: "read appended address",
    SET_RF_FRAME_SIZE: "set RF frame size",
}

# -- SW3 status codes ------------------------------------------------------------------
SW3_SUCCESS = 0x90
SW3_CARD_FOUND = 0x9F
SW3_NO_CARD = 0x80
SW3_SELECT_FAILED = 0x81
SW3_NO_SUCH_ITEM = 0x91
SW3_READ_FAILED = 0x41
SW3_UNKNOWN_CARD_TYPE = 0x40
SW3_BAD_CHECKSUM = 0x10
SW3_BAD_LENGTH = 0x11
SW3_BAD_COMMAND = 0x21

TEXT_LEN = 256
PHOTO_LEN = 1024
FINGERPRINT_LEN = 1024
SAM_ID_LEN = 16
APPENDED_ADDRESS_LEN = 70


# -- exceptions ----------------------------------------------------------------------------
class FrameError(DeviceProtocolError):
    """A frame on the wire is damaged; the command may be retried."""


class ChecksumError(FrameError):
    """CHK does not match the XOR of the frame."""


class LengthError(FrameError):
    """LEN is impossible (too short for a frame, or larger than any real frame)."""


class MalformedResponse(DeviceProtocolError):
    """A well-framed response whose content does not fit the command (wrong sizes, SW1/SW2)."""

    code = "malformed_reply"


class SamStatusError(DeviceError):
    """The SAM answered with an error status (SW3); `code` is a stable machine-readable name."""

    code = "sam_status"

    def __init__(self, sw3: int, context: str = "") -> None:
        self.sw3 = sw3
        self.context = context
        info = SW3_TABLE.get(sw3)
        meaning = f"{info.zh} / {info.en}" if info else "未定义状态 / undefined status"
        where = f"{context}: " if context else ""
        super().__init__(f"{where}SAM status 0x{sw3:02X} ({meaning})")


class NoCardError(SamStatusError):
    """0x80: no card in the field."""

    code = "no_card"


class SelectFailed(SamStatusError):
    """0x81: the card could not be selected (moved away, or not found first)."""

    code = "select_failed"


class NoSuchItem(SamStatusError):
    """0x91: the card has no such item (e.g. no appended address)."""

    code = "no_such_item"


class ReadFailed(SamStatusError):
    """0x41: reading the card failed (card moved during the read, RF trouble)."""

    code = "read_failed"


class UnknownCardType(SamStatusError):
    """0x40: the card in the field is not an ID card type the SAM knows."""

    code = "unknown_card_type"


class SamCommandError(SamStatusError):
    """0x10/0x11/0x21/0x3F: the SAM did not accept our command (corrupted on the line or a bug)."""

    code = "sam_command"


class SamAuthError(SamStatusError):
    """0x23/0x31/0x32/0x33/0x37/0x66: authentication or authorisation between SAM and card failed."""

    code = "sam_auth"


class SamRandomError(SamStatusError):
    """0x47: the SAM could not get a random number from the card."""

    code = "sam_random"


class SamUnknownError(SamStatusError):
    """0x24: the SAM reports an error it cannot identify."""

    code = "sam_unknown"


class SamSelfTestFailed(SamStatusError):
    """0x60: the SAM failed its self-test and accepts no commands: hardware fault."""

    code = "sam_self_test"


@dataclass(frozen=True)
class Sw3Info:
    zh: str
    en: str
    error: type[SamStatusError] | None  # None: a success code


SW3_TABLE: dict[int, Sw3Info] = {
    0x90: Sw3Info("操作成功", "success", None),
    0x9F: Sw3Info("寻找证/卡成功", "card found", None),
    0x80: Sw3Info("寻找证/卡失败", "no card found", NoCardError),
    0x81: Sw3Info("选取证/卡失败", "select failed", SelectFailed),
    0x91: Sw3Info("证/卡中此项无内容", "no such item on the card", NoSuchItem),
    0x41: Sw3Info("读证/卡操作失败", "read failed", ReadFailed),
    0x40: Sw3Info("无法识别的卡类型", "unknown card type", UnknownCardType),
    0x10: Sw3Info("接收业务终端数据的校验和错", "command checksum error", SamCommandError),
    0x11: Sw3Info("接收业务终端数据的长度错", "command length error", SamCommandError),
    0x21: Sw3Info("接收业务终端的命令错误", "command not recognised", SamCommandError),
    0x3F: Sw3Info("长度错误", "length error", SamCommandError),
    0x23: Sw3Info("越权操作", "not authorised", SamAuthError),
    0x24: Sw3Info("无法识别的错误", "unknown error", SamUnknownError),
    0x31: Sw3Info("证/卡认证SAM失败", "card failed to authenticate the SAM", SamAuthError),
    0x32: Sw3Info("SAM认证证/卡失败", "SAM failed to authenticate the card", SamAuthError),
    0x33: Sw3Info("信息验证错误", "information verification error", SamAuthError),
    0x37: Sw3Info("指纹信息验证错误", "fingerprint verification error", SamAuthError),
    0x47: Sw3Info("取随机数失败", "random number error", SamRandomError),
    0x60: Sw3Info("SAM自检失败，不能接收命令", "SAM self-test failed", SamSelfTestFailed),
    0x66: Sw3Info("SAM没经过授权，无法使用", "SAM not authorised", SamAuthError),
}


def describe_sw3(sw3: int) -> str:
    """Short bilingual meaning of a status code, for logs and the maintenance screen."""
    info = SW3_TABLE.get(sw3)
    return f"{info.zh} / {info.en}" if info else f"未定义状态 / undefined status 0x{sw3:02X}"


def error_for_sw3(sw3: int, context: str = "") -> SamStatusError:
    """The specific exception for an error status (a plain SamStatusError for unknown codes)."""
    info = SW3_TABLE.get(sw3)
    cls = info.error if info is not None and info.error is not None else SamStatusError
    return cls(sw3, context)


# -- building --------------------------------------------------------------------------------
def checksum(data: bytes) -> int:
    """XOR of `data` (the LEN bytes and the body, i.e. everything between preamble and CHK)."""
    chk = 0
    for b in data:
        chk ^= b
    return chk


def _frame(body: bytes) -> bytes:
    length = len(body) + 1
    if length > MAX_LEN:
        raise ValueError(f"frame body of {len(body)} bytes exceeds the protocol maximum")
    head = length.to_bytes(2, "big")
    return PREAMBLE + head + body + bytes([checksum(head + body)])


def build_command(cmd: int, para: int, data: bytes = b"") -> bytes:
    """A complete command frame, e.g. build_command(0x20, 0x01) -> AA AA AA 96 69 00 03 20 01 22."""
    return _frame(bytes([cmd & 0xFF, para & 0xFF]) + bytes(data))


def build_response(sw3: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    """A complete response frame as a SAM sends it (used by the emulator)."""
    return _frame(bytes([sw1 & 0xFF, sw2 & 0xFF, sw3 & 0xFF]) + bytes(data))


# -- parsing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawFrame:
    """One well-formed frame: the body between LEN and CHK."""

    body: bytes

    def as_command(self) -> "Command":
        if len(self.body) < 2:
            raise MalformedResponse(f"command frame too short ({len(self.body)} body bytes)")
        return Command(self.body[0], self.body[1], self.body[2:])

    def as_response(self) -> "Response":
        if len(self.body) < 3:
            raise MalformedResponse(f"response frame too short ({len(self.body)} body bytes, need SW1 SW2 SW3)")
        return Response(self.body[0], self.body[1], self.body[2], self.body[3:])


@dataclass(frozen=True)
class Command:
    cmd: int
    para: int
    data: bytes = b""

    @property
    def key(self) -> tuple[int, int]:
        return (self.cmd, self.para)


@dataclass(frozen=True)
class Response:
    sw1: int
    sw2: int
    sw3: int
    data: bytes = b""

    def check(self, ok: tuple[int, ...] = (SW3_SUCCESS,), context: str = "") -> "Response":
        """Return self when SW3 is one of `ok`; raise the specific error otherwise."""
        if self.sw1 != 0 or self.sw2 != 0:
            raise MalformedResponse(
                f"{context + ': ' if context else ''}unexpected SW1 SW2 {self.sw1:02X} {self.sw2:02X} "
                "(the SAM protocol uses 00 00)"
            )
        if self.sw3 in ok:
            return self
        raise error_for_sw3(self.sw3, context)


FrameOrError = RawFrame | FrameError


class FrameReader:
    """Incremental frame parser: feed bytes as they come, take frames out.

    Garbage before a preamble is skipped (counted in `discarded`). A frame with an
    impossible LEN or a wrong CHK is reported once as a FrameError and parsing resumes
    just after its first preamble byte, so a good frame hidden behind a damaged one is
    still found. Never raises anything but FrameError, whatever the input.
    """

    def __init__(self, max_len: int = MAX_LEN) -> None:
        self._buf = bytearray()
        self.max_len = max_len
        self.discarded = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget buffered bytes, overwriting them first (they may hold personal data)."""
        self._buf[:] = bytes(len(self._buf))
        self._buf.clear()

    def _drop(self, n: int) -> None:
        self._buf[:n] = bytes(n)  # overwrite before release: replies carry personal data
        del self._buf[:n]

    def next_frame(self) -> RawFrame | None:
        """The next complete frame, None if more bytes are needed; raises FrameError on a bad one."""
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                # keep a tail that may be the beginning of a preamble
                keep = 0
                for k in range(min(len(PREAMBLE) - 1, len(self._buf)), 0, -1):
                    if self._buf.endswith(PREAMBLE[:k]):
                        keep = k
                        break
                drop = len(self._buf) - keep
                if drop:
                    self.discarded += drop
                    self._drop(drop)
                return None
            if start:
                self.discarded += start
                self._drop(start)
            if len(self._buf) < HEADER_LEN:
                return None
            length = int.from_bytes(self._buf[5:7], "big")
            if length < MIN_LEN or length > self.max_len:
                self.discarded += 1
                self._drop(1)
                raise LengthError(f"frame LEN {length} outside {MIN_LEN}..{self.max_len}")
            total = HEADER_LEN + length
            if len(self._buf) < total:
                return None
            chk_region = bytes(self._buf[5 : total - 1])
            expected = checksum(chk_region)
            got = self._buf[total - 1]
            if expected != got:
                self.discarded += 1
                self._drop(1)
                raise ChecksumError(f"frame CHK {got:02X}, computed {expected:02X} (LEN {length})")
            frame = RawFrame(bytes(self._buf[7 : total - 1]))
            self._drop(total)
            return frame

    def frames(self) -> Iterator[FrameOrError]:
        """Every frame and frame error available now, in order."""
        while True:
            try:
                frame = self.next_frame()
            except FrameError as exc:
                yield exc
                continue
            if frame is None:
                return
            yield frame


def parse_frames(data: bytes) -> list[FrameOrError]:
    """All frames and frame errors in a captured byte stream (a trailing partial frame is ignored)."""
    reader = FrameReader()
    reader.feed(data)
    return list(reader.frames())


# -- response payloads -------------------------------------------------------------------------
@dataclass(frozen=True)
class CardBlocks:
    """The raw blocks of a 30 01 / 30 10 reply."""

    text: bytes
    photo: bytes
    fingerprint: bytes = b""


def parse_card_blocks(data: bytes, with_fingerprint: bool = False) -> CardBlocks:
    """Split the data of a successful read reply into text, photo (and fingerprint) blocks."""
    n_len = 3 if with_fingerprint else 2
    if len(data) < 2 * n_len:
        raise MalformedResponse(f"read reply data too short ({len(data)} bytes) for its length fields")
    lens = [int.from_bytes(data[2 * i : 2 * i + 2], "big") for i in range(n_len)]
    if sum(lens) != len(data) - 2 * n_len:
        raise MalformedResponse(
            f"read reply block lengths {lens} do not add up to the {len(data) - 2 * n_len} data bytes received"
        )
    if lens[0] != TEXT_LEN:
        raise MalformedResponse(f"text block is {lens[0]} bytes, expected {TEXT_LEN}")
    pos = 2 * n_len
    blocks = []
    for n in lens:
        blocks.append(bytes(data[pos : pos + n]))
        pos += n
    return CardBlocks(*blocks) if with_fingerprint else CardBlocks(blocks[0], blocks[1])


def build_card_blocks(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """The data part of a read reply (inverse of parse_card_blocks; used by the emulator)."""
    parts = [text, photo] if fingerprint is None else [text, photo, fingerprint]
    head = b"".join(len(p).to_bytes(2, "big") for p in parts)
    return head + b"".join(parts)


def format_sam_id(data: bytes) -> str:
    """The SAM ID as printed on the module label: "05.01-20101220-0014569830-2406183574".

    Layout as seen in public SDKs: two little-endian 16-bit numbers, then three
    little-endian 32-bit numbers. Some SDKs print only the first four groups.
    """
    if len(data) < SAM_ID_LEN:
        raise MalformedResponse(f"SAM ID reply has {len(data)} bytes, expected {SAM_ID_LEN}")
    h1 = int.from_bytes(data[0:2], "little")
    h2 = int.from_bytes(data[2:4], "little")
    d1 = int.from_bytes(data[4:8], "little")
    d2 = int.from_bytes(data[8:12], "little")
    d3 = int.from_bytes(data[12:16], "little")
    return f"{h1:02d}.{h2:02d}-{d1:08d}-{d2:010d}-{d3:010d}"


def encode_sam_id(text: str) -> bytes:
    """Inverse of format_sam_id (used by the emulator)."""
    head, d1, d2, d3 = text.split("-")
    h1, h2 = head.split(".")
    return (
        int(h1).to_bytes(2, "little")
        + int(h2).to_bytes(2, "little")
        + int(d1).to_bytes(4, "little")
        + int(d2).to_bytes(4, "little")
        + int(d3).to_bytes(4, "little")
    )
