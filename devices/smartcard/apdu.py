"""APDUs the kiosk sends to cards, and what their answers mean (ISO/IEC 7816-4).

Only what reading a card's public data needs: SELECT by name or file id, READ RECORD
by record number or identifier (optionally by short file id), READ BINARY, and the
status words a card may answer with, each explained in words a technician acts on.
"""
from __future__ import annotations

from devices.base import DeviceProtocolError

SW_OK = 0x9000

# status word (or its first byte, with 0x00 as the second) -> meaning
_MEANINGS: dict[int, str] = {
    0x6281: "part of the returned data may be corrupted",
    0x6282: "end of file or record reached before reading all bytes asked for",
    0x6283: "the selected file or application is invalidated (blocked)",
    0x6581: "memory failure in the card",
    0x6700: "wrong length",
    0x6981: "command incompatible with the file structure",
    0x6982: "security status not satisfied (a PIN or key is needed)",
    0x6983: "authentication method blocked",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current file)",
    0x6A81: "function not supported (the application may be locked)",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A86: "incorrect parameters P1-P2",
    0x6B00: "wrong parameters (offset outside the file)",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis (the card failed)",
}
NOT_FOUND = frozenset({0x6A82, 0x6A83})
BLOCKED = frozenset({0x6283, 0x6983, 0x6A81})


def sw_meaning(sw: int) -> str:
    if sw == SW_OK:
        return "success"
    if sw >> 8 == 0x61:
        return f"{sw & 0xFF} more bytes available (GET RESPONSE)"
    if sw >> 8 == 0x6C:
        return f"wrong Le, the card has {sw & 0xFF} bytes"
    if sw >> 8 == 0x63 and sw & 0xF0 == 0xC0:
        return f"verification failed, {sw & 0x0F} tries left"
    return _MEANINGS.get(sw, "unknown status")


class CardStatusError(DeviceProtocolError):
    """The card refused a command; `sw` is its status word and `step` what was being done."""

    def __init__(self, step: str, sw: int) -> None:
        super().__init__(f"{step}: the card answered {sw:04X} ({sw_meaning(sw)})")
        self.step = step
        self.sw = sw

    @property
    def not_found(self) -> bool:
        return self.sw in NOT_FOUND

    @property
    def blocked(self) -> bool:
        return self.sw in BLOCKED


class CardDataError(DeviceProtocolError):
    """The card answered 9000 but the data is not what its profile says (truncated, bad TLV,
    bad BCD, undecodable text). `code` is stable for the visit and tests."""

    code = "bad_card_data"


def split_response(response: bytes, step: str) -> tuple[bytes, int]:
    """Data and status word of a response APDU; fewer than two bytes is a protocol fault."""
    if len(response) < 2:
        raise DeviceProtocolError(f"{step}: the card answered {len(response)} byte(s), not even a status word")
    return bytes(response[:-2]), (response[-2] << 8) | response[-1]


def select_by_name(aid: bytes) -> bytes:
    """SELECT by DF name (an application), first or only occurrence, FCI not asked."""
    if not 1 <= len(aid) <= 16:
        raise ValueError(f"an application name is 1 to 16 bytes, not {len(aid)}")
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid


def select_by_id(fid: int) -> bytes:
    """SELECT an elementary file under the current DF by its 2-byte file id."""
    if not 0 <= fid <= 0xFFFF:
        raise ValueError(f"a file id is two bytes, not {fid:#x}")
    return bytes([0x00, 0xA4, 0x02, 0x00, 0x02, fid >> 8, fid & 0xFF])


def read_record(record: int, *, sfi: int = 0, by_identifier: bool = False, le: int = 0) -> bytes:
    """READ RECORD: `record` is a number (P2 ...100) or an identifier (P2 ...000, first
    occurrence) in the file with short id `sfi` (0: the current file)."""
    if not 0 <= record <= 0xFF:
        raise ValueError(f"a record number or identifier is one byte, not {record}")
    if not 0 <= sfi <= 30:
        raise ValueError(f"a short file id is 1 to 30 (0 for the current file), not {sfi}")
    p2 = (sfi << 3) | (0x00 if by_identifier else 0x04)
    return bytes([0x00, 0xB2, record, p2, le & 0xFF])


def read_binary(offset: int, length: int) -> bytes:
    """READ BINARY of the current transparent file from `offset` (15 bits)."""
    if not 0 <= offset <= 0x7FFF:
        raise ValueError(f"a READ BINARY offset is 0 to 32767, not {offset}")
    if not 1 <= length <= 256:
        raise ValueError(f"READ BINARY reads 1 to 256 bytes at a time, not {length}")
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, length & 0xFF])


def get_response(length: int) -> bytes:
    return bytes([0x00, 0xC0, 0x00, 0x00, length & 0xFF])
