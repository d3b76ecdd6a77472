"""Record contents of card files: TLV records and the value formats card profiles name.

Decoding raises CardDataError with the field's name and what was wrong, so a damaged
or unexpected card gives a message a technician can act on, never a crash; encoding is
the inverse, used by the virtual cards.
"""
from __future__ import annotations

import datetime as _dt

from devices.smartcard.apdu import CardDataError

FORMATS = ("an", "gbk", "bcd", "bcd_date", "hex")
_PADDING = b"\x00\xff"
# formats whose value has one size on every card: a BCD date is YYYYMMDD in four bytes (cn 4)
_FIXED_LENGTHS = {"bcd_date": 4}


def check_length(fmt: str, length: int) -> None:
    """Refuse a stored length the format cannot have, before any card is read or built: a
    value fits a one-byte TLV length, and a BCD date is always its four bytes (padding it
    would give digits no date decoder accepts)."""
    if not 0 <= length <= 0xFF:
        raise ValueError(f"a record's value is 0 to 255 bytes (one-byte TLV length), not {length}")
    fixed = _FIXED_LENGTHS.get(fmt)
    if fixed is not None and length != fixed:
        raise ValueError(f"a {fmt} value is {fixed} bytes on the card, not {length}")


def parse_tlv_record(data: bytes, tag: int, what: str) -> bytes:
    """The value of a record that is one TLV (1-byte tag, 1-byte length, value).

    Fill bytes (00 or FF) after the value are allowed, as cards return fixed-size records;
    anything else after it, a value shorter than its length says, or another tag is refused.
    """
    if len(data) < 2:
        raise CardDataError(f"{what}: the record is {len(data)} byte(s), too short for a tag and a length")
    if data[0] != tag:
        raise CardDataError(f"{what}: the record's tag is {data[0]:02X}, the profile expects {tag:02X}")
    length = data[1]
    value = data[2 : 2 + length]
    if len(value) < length:
        raise CardDataError(f"{what}: the record says {length} bytes but only {len(value)} came (truncated)")
    rest = data[2 + length :]
    if rest.strip(_PADDING):
        raise CardDataError(f"{what}: {len(rest)} unexpected byte(s) after the {length}-byte value "
                            "(the TLV length is wrong)")
    return bytes(value)


def build_tlv_record(tag: int, value: bytes) -> bytes:
    if len(value) > 0xFF:
        raise ValueError(f"a one-byte TLV length holds 255 bytes, not {len(value)}")
    return bytes([tag, len(value)]) + value


def _strip(value: bytes) -> bytes:
    return value.rstrip(b"\x00\xff\x20")


def decode_value(raw: bytes, fmt: str, what: str) -> str | _dt.date | None:
    """A field's value in its format: text for an/gbk/bcd/hex, a date (or None if blank) for bcd_date."""
    if fmt == "an":
        text = _strip(raw)
        if not all(0x20 <= b < 0x7F for b in text):
            raise CardDataError(f"{what}: not printable ASCII")
        return text.decode("ascii").strip()
    if fmt == "gbk":
        try:
            return _strip(raw).decode("gbk").strip()
        except UnicodeDecodeError:
            raise CardDataError(f"{what}: not valid GBK text") from None
    if fmt == "hex":
        return raw.hex().upper()
    if fmt in ("bcd", "bcd_date"):
        digits = raw.hex().upper().rstrip("F")
        if not digits.isdigit() and digits:
            raise CardDataError(f"{what}: not BCD digits ({raw.hex().upper()})")
        if fmt == "bcd":
            return digits
        if not digits.strip("0"):
            return None  # a blank date
        if len(digits) != 8:
            raise CardDataError(f"{what}: a BCD date has 8 digits, this one {len(digits)}")
        try:
            return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            raise CardDataError(f"{what}: {digits} is not a calendar date") from None
    raise ValueError(f"unknown value format {fmt!r}; known: {', '.join(FORMATS)}")


def encode_value(value: object, fmt: str, length: int | None = None) -> bytes:
    """The bytes a card stores for `value` (padded with spaces or 00 to `length` where given):
    text for an/gbk/bcd/hex, a date (or None, blank) for bcd_date."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown value format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "bcd_date" and not (value is None or isinstance(value, _dt.date)):
        raise TypeError(f"a bcd_date value is a date, not {value!r}")
    if fmt != "bcd_date" and not isinstance(value, str):
        raise TypeError(f"a {fmt} value is text, not {value!r}")
    if fmt == "an":
        raw = str(value).encode("ascii")
        pad = b" "
    elif fmt == "gbk":
        raw = str(value).encode("gbk")
        pad = b"\x00"
    elif fmt == "hex":
        raw = bytes.fromhex(str(value))
        pad = b"\x00"
    elif fmt == "bcd":
        digits = str(value)
        if digits.strip("0123456789"):
            raise ValueError(f"{value!r} is not BCD: digits 0 to 9 only")
        if len(digits) % 2:
            digits += "F"
        raw = bytes.fromhex(digits)
        pad = b"\xff"
    else:  # bcd_date: YYYYMMDD, all zero when blank; never padded (check_length keeps it at 4 bytes)
        raw = bytes.fromhex(f"{value.year:04}{value.month:02}{value.day:02}") if isinstance(value, _dt.date) \
            else bytes(4)
        pad = b""
    if length is not None:
        check_length(fmt, length)
        if len(raw) > length:
            raise ValueError(f"{value!r} needs {len(raw)} bytes, the field holds {length}")
        raw += pad * (length - len(raw))
    return raw
