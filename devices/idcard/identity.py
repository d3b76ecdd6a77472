"""The identity read from an ID card, and the 256-byte text block it comes from.

Covers the four card types a second-generation reader returns: the resident ID card,
the Hong Kong/Macau/Taiwan residence permit ("J"), and the foreigner's permanent
residence cards of 2017 ("I") and 2023 ("Y"). Offsets follow
/work/shared/protocols/id-card-sam.md; they match a public SDK header's structs
(t_idcardinfor, t_idforeigner, t_idforeigner2023) field for field.

Privacy: an IdentityCard never shows the clear name, ID number, address or photo in
its repr/str, so it can go through logs and assertion messages; `wipe()` drops the
data at the end of a visit.
"""
from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, fields
from typing import Any

from devices.base import DeviceError
from govapi.masking import mask_id_number

TEXT_BLOCK_LEN = 256
LONG_TERM = "长期"  # valid_to of a card that never expires

CARD_TYPES = ("resident", "hmt_permit", "foreign_2017", "foreign_2023")
_TYPE_FLAGS = {"resident": "", "hmt_permit": "J", "foreign_2017": "I", "foreign_2023": "Y"}
_FLAG_TYPES = {"J": "hmt_permit", "I": "foreign_2017", "Y": "foreign_2023"}
TYPE_FLAG_OFFSET = 248

# GB/T 2261.1 human sex codes
GENDERS: dict[str, str] = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}

# GB 3304 nationalities of China (names as in the standard), plus 97 and 98
NATIONS: dict[str, str] = {
    "01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "05": "维吾尔族",
    "06": "苗族", "07": "彝族", "08": "壮族", "09": "布依族", "10": "朝鲜族",
    "11": "满族", "12": "侗族", "13": "瑶族", "14": "白族", "15": "土家族",
    "16": "哈尼族", "17": "哈萨克族", "18": "傣族", "19": "黎族", "20": "傈僳族",
    "21": "佤族", "22": "畲族", "23": "高山族", "24": "拉祜族", "25": "水族",
    "26": "东乡族", "27": "纳西族", "28": "景颇族", "29": "柯尔克孜族", "30": "土族",
    "31": "达斡尔族", "32": "仫佬族", "33": "羌族", "34": "布朗族", "35": "撒拉族",
    "36": "毛南族", "37": "仡佬族", "38": "锡伯族", "39": "阿昌族", "40": "普米族",
    "41": "塔吉克族", "42": "怒族", "43": "乌孜别克族", "44": "俄罗斯族", "45": "鄂温克族",
    "46": "德昂族", "47": "保安族", "48": "裕固族", "49": "京族", "50": "塔塔尔族",
    "51": "独龙族", "52": "鄂伦春族", "53": "赫哲族", "54": "门巴族", "55": "珞巴族",
    "56": "基诺族", "97": "其他", "98": "外国血统中国籍人士",
}

# (attribute, byte offset, byte length) per card type; "birth", "valid_from", "valid_to"
# are dates, "english_name_1/2" are the two halves of a 2023 card's English name.
_LAYOUTS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "resident": (
        ("name", 0, 30), ("gender_code", 30, 2), ("nation_code", 32, 4), ("birth", 36, 16),
        ("address", 52, 70), ("id_number", 122, 36), ("issuer", 158, 30),
        ("valid_from", 188, 16), ("valid_to", 204, 16),
    ),
    "hmt_permit": (
        ("name", 0, 30), ("gender_code", 30, 2), ("nation_code", 32, 4), ("birth", 36, 16),
        ("address", 52, 70), ("id_number", 122, 36), ("issuer", 158, 30),
        ("valid_from", 188, 16), ("valid_to", 204, 16),
        ("pass_number", 220, 18), ("issue_count", 238, 4),
    ),
    "foreign_2017": (
        ("english_name", 0, 120), ("gender_code", 120, 2), ("id_number", 122, 30),
        ("nationality_code", 152, 6), ("name", 158, 30), ("valid_from", 188, 16),
        ("valid_to", 204, 16), ("birth", 220, 16), ("card_version", 236, 4),
        ("issuer_code", 240, 8),
    ),
    "foreign_2023": (
        ("name", 0, 30), ("gender_code", 30, 2), ("renewal_count", 32, 4), ("birth", 36, 16),
        ("english_name_1", 52, 70), ("id_number", 122, 36), ("valid_from", 188, 16),
        ("valid_to", 204, 16), ("english_name_2", 220, 22), ("nationality_code", 242, 6),
        ("previous_number_link", 250, 6),
    ),
}
_EN1_CHARS = 35  # 2023 card: English name characters 1-35 at 52/70, 36-46 at 220/22
_EN2_CHARS = 11

VALIDITY_PROBLEMS: dict[str, str] = {
    "expired": "证件已过期 / card expired",
    "not_yet_valid": "证件尚未生效 / card not yet valid",
    "bad_id_number": "证件号码校验错误 / ID number fails its check digit",
    "id_birth_mismatch": "证件号码与出生日期不符 / ID number does not match the birth date",
    "id_gender_mismatch": "证件号码与性别不符 / ID number does not match the gender",
}


class CardDataError(DeviceError):
    """The card's text block cannot be decoded (bad UTF-16, impossible date, unknown type flag)."""

    code = "bad_card_data"


class InvalidIdNumber(ValueError):
    """An ID number fails GB 11643 checks; `code` is one of VALIDITY_PROBLEMS' keys."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- ID numbers --------------------------------------------------------------------------------
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643 / ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("an ID number check digit needs exactly 17 decimal digits")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def validate_id_number(number: str, birth_date: _dt.date | None = None, gender_code: str | None = None) -> None:
    """Raise InvalidIdNumber unless `number` is a well-formed 18-character GB 11643 number.

    Checks the MOD 11-2 check character, that digits 7-14 are `birth_date` when given,
    and that the parity of the 17th digit matches `gender_code` ("1" odd, "2" even)
    when given. Messages mask the number.
    """
    masked = mask_id_number(number)
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        raise InvalidIdNumber("bad_id_number", f"ID number {masked} is not 17 digits plus a check character")
    if number[17].upper() != id_check_digit(number[:17]):
        raise InvalidIdNumber("bad_id_number", f"ID number {masked} fails its check digit")
    if birth_date is not None and number[6:14] != birth_date.strftime("%Y%m%d"):
        raise InvalidIdNumber("id_birth_mismatch", f"ID number {masked} does not contain the card's birth date")
    if gender_code in ("1", "2") and int(number[16]) % 2 != (1 if gender_code == "1" else 0):
        raise InvalidIdNumber("id_gender_mismatch", f"ID number {masked} does not match the card's gender")


# -- the identity ----------------------------------------------------------------------------
def wipe_fields(card: Any, keep: tuple[str, ...]) -> None:
    """Every field of a card dataclass but `keep` emptied: text to "", bytes to b"", the rest
    (dates, photos) to None. Shared by every card a citizen identifies with."""
    for f in fields(card):
        if f.name in keep:
            continue
        value = getattr(card, f.name)
        if isinstance(value, str):
            setattr(card, f.name, "")
        elif isinstance(value, (bytes, bytearray)):
            setattr(card, f.name, b"")
        else:
            setattr(card, f.name, None)


class CardHolder:
    """What every card a citizen identifies with shares: gender and nation in words from
    their codes, and the ID number masked for logs and screens."""

    gender_code: str
    gender: str
    nation_code: str
    nation: str
    id_number: str

    def _name_codes(self) -> None:
        if not self.gender and self.gender_code:
            self.gender = GENDERS.get(self.gender_code, "")
        if not self.nation and self.nation_code:
            self.nation = NATIONS.get(self.nation_code, "")

    @property
    def masked_id(self) -> str:
        return mask_id_number(self.id_number)


@dataclass(repr=False)
class IdentityCard(CardHolder):
    """What one card says about its holder. Text fields have their padding removed."""

    card_type: str  # one of CARD_TYPES
    name: str = ""  # Chinese name (all types)
    gender_code: str = ""
    gender: str = ""  # decoded from gender_code when left empty
    nation_code: str = ""  # resident cards only
    nation: str = ""  # decoded from nation_code when left empty
    birth_date: _dt.date | None = None
    address: str = ""
    id_number: str = ""  # ID number; the 15-character card number on a 2017 foreigner card
    issuer: str = ""
    valid_from: _dt.date | None = None
    valid_to: _dt.date | str | None = None  # a date, or LONG_TERM ("长期")
    photo_wlt: bytes = b""  # the 1024-byte photo block as read (WLT, or the emulator's test encoding)
    photo_bmp: bytes | None = None  # decoded 102x126 BMP; None when no decoder is available
    photo_note: str = "unavailable"  # "decoded", "unavailable", or why decoding failed
    fingerprint: bytes = b""  # raw fingerprint block (30 10 only), not interpreted
    appended_address: str = ""  # newer address from 30 03, when the card has one
    # Hong Kong/Macau/Taiwan residence permit (J)
    pass_number: str = ""
    issue_count: str = ""
    # foreigner cards (I, Y)
    english_name: str = ""
    nationality_code: str = ""  # ISO 3166-1 alpha-3
    card_version: str = ""  # I
    issuer_code: str = ""  # I: code of the accepting authority
    renewal_count: str = ""  # Y
    previous_number_link: str = ""  # Y: link to the holder's earlier card number

    def __post_init__(self) -> None:
        if self.card_type not in CARD_TYPES:
            raise ValueError(f"unknown card type {self.card_type!r}; known: {', '.join(CARD_TYPES)}")
        self._name_codes()

    # -- privacy -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"IdentityCard(card_type={self.card_type!r}, id={self.masked_id!r})"

    __str__ = __repr__

    def wipe(self) -> None:
        """Drop every personal value (strings to "", bytes to b"", dates and the rest to None).

        Python strings and bytes are immutable, so this releases references rather than
        scrubbing memory; the driver scrubs its own receive buffers.
        """
        wipe_fields(self, keep=("card_type",))
        self.valid_to = None  # a date or "长期": None either way
        self.photo_bmp = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the platform: dates ISO 8601, binary blocks base64."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _dt.date):
                value = value.isoformat()
            elif isinstance(value, (bytes, bytearray)):
                value = base64.b64encode(bytes(value)).decode("ascii")
            out[f.name] = value
        return out

    # -- validity ------------------------------------------------------------------------
    def validity_problem(self, today: _dt.date | None = None) -> str | None:
        """None if the card can be accepted today, else a key of VALIDITY_PROBLEMS.

        The ID number is checked on the card types that use GB 11643 numbers (resident,
        J, Y); the 2017 foreigner card's 15-character number has no published check
        algorithm we could confirm, so only its dates are checked.
        """
        today = today or _dt.date.today()
        if self.card_type in ("resident", "hmt_permit", "foreign_2023"):
            gender = self.gender_code if self.card_type in ("resident", "hmt_permit") else None
            try:
                validate_id_number(self.id_number, self.birth_date, gender)
            except InvalidIdNumber as exc:
                return exc.code
        if isinstance(self.valid_from, _dt.date) and today < self.valid_from:
            return "not_yet_valid"
        if isinstance(self.valid_to, _dt.date) and today > self.valid_to:
            return "expired"
        return None


# -- the text block ------------------------------------------------------------------------
def _field_text(raw: bytes, attr: str) -> str:
    try:
        text = raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise CardDataError(f"text block field {attr} is not valid UTF-16LE ({exc.reason})") from None
    return text.rstrip(" \x00")


def _parse_date(text: str, attr: str) -> _dt.date | None:
    if not text:
        return None
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise CardDataError(f"text block field {attr} is not a YYYYMMDD date")
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise CardDataError(f"text block field {attr} is not a calendar date") from None


def card_type_of(block: bytes) -> str:
    """The card type from the flag at offset 248 (blank for a resident card)."""
    flag = _field_text(block[TYPE_FLAG_OFFSET : TYPE_FLAG_OFFSET + 2], "type flag")
    if not flag:
        return "resident"
    if flag in _FLAG_TYPES:
        return _FLAG_TYPES[flag]
    raise CardDataError(f"unknown card type flag {flag!r} at offset {TYPE_FLAG_OFFSET}")


def decode_text_block(block: bytes) -> IdentityCard:
    """Decode the 256-byte UTF-16LE text block of any supported card type."""
    if len(block) != TEXT_BLOCK_LEN:
        raise CardDataError(f"text block is {len(block)} bytes, expected {TEXT_BLOCK_LEN}")
    card_type = card_type_of(block)
    values: dict[str, Any] = {}
    en_parts: dict[str, bytes] = {}
    for attr, offset, size in _LAYOUTS[card_type]:
        raw = block[offset : offset + size]
        if attr.startswith("english_name_"):
            en_parts[attr] = raw
            continue
        text = _field_text(raw, attr)
        if attr == "birth":
            values["birth_date"] = _parse_date(text, attr)
        elif attr == "valid_from":
            values[attr] = _parse_date(text, attr)
        elif attr == "valid_to":
            values[attr] = text if text == LONG_TERM else _parse_date(text, attr)
        else:
            values[attr] = text
    if en_parts:
        # part 1 is space padded to 35 characters only when the name is shorter
        values["english_name"] = _field_text(en_parts["english_name_1"] + en_parts["english_name_2"], "english_name")
    return IdentityCard(card_type=card_type, **values)


def _put(block: bytearray, offset: int, size: int, text: str, attr: str) -> None:
    raw = text.encode("utf-16-le")
    if len(raw) > size:
        raise ValueError(f"{attr} needs {len(raw)} bytes in UTF-16LE, the field holds {size}")
    block[offset : offset + size] = raw + " ".encode("utf-16-le") * ((size - len(raw)) // 2)


def _date_text(value: _dt.date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, _dt.date):
        return value.strftime("%Y%m%d")
    return value


def encode_text_block(card: IdentityCard) -> bytes:
    """The 256-byte text block a card of this type carries (inverse of decode_text_block)."""
    block = bytearray(" ".encode("utf-16-le") * (TEXT_BLOCK_LEN // 2))
    for attr, offset, size in _LAYOUTS[card.card_type]:
        if attr == "birth":
            text = _date_text(card.birth_date)
        elif attr in ("valid_from", "valid_to"):
            text = _date_text(getattr(card, attr))
        elif attr == "english_name_1":
            text = card.english_name[:_EN1_CHARS]
            if len(card.english_name) > _EN1_CHARS + _EN2_CHARS:
                raise ValueError(f"english_name longer than {_EN1_CHARS + _EN2_CHARS} characters")
        elif attr == "english_name_2":
            text = card.english_name[_EN1_CHARS:]
        else:
            text = getattr(card, attr)
        _put(block, offset, size, text, attr)
    flag = _TYPE_FLAGS[card.card_type]
    if flag:
        _put(block, TYPE_FLAG_OFFSET, 2, flag, "type flag")
    return bytes(block)


def decode_appended_address(data: bytes) -> str:
    """Text of a 30 03 reply: one or more 70-byte UTF-16LE address records."""
    parts = []
    for i in range(0, len(data) - len(data) % 2, 70):
        text = _field_text(data[i : i + 70], "appended address")
        if text:
            parts.append(text)
    return "".join(parts)


def encode_appended_address(text: str) -> bytes:
    """One 70-byte record for the emulator's 30 03 reply."""
    block = bytearray(70)
    _put(block, 0, 70, text, "appended address")
    return bytes(block)


__all__ = [
    "CARD_TYPES",
    "GENDERS",
    "LONG_TERM",
    "NATIONS",
    "VALIDITY_PROBLEMS",
    "CardDataError",
    "IdentityCard",
    "InvalidIdNumber",
    "card_type_of",
    "decode_appended_address",
    "decode_text_block",
    "encode_appended_address",
    "encode_text_block",
    "id_check_digit",
    "mask_id_number",
    "validate_id_number",
]
