"""What a social security card says about its holder, in the shape a visit uses.

It answers the same questions as the ID card's IdentityCard (id_number, name,
gender, nation, birth date, validity, a photo for the face check, wipe, masked repr),
so a visit started by either card runs the same way; `card_type` is
"social_security" and the card's own number, issuing place and dates come with it.

Privacy: repr/str show only the masked ID and card numbers; `wipe()` drops every value.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, fields
from typing import Any

from devices.idcard.identity import CardHolder, InvalidIdNumber, validate_id_number, wipe_fields
from devices.smartcard.apdu import CardDataError
from govapi.masking import mask_id_number

CARD_TYPE = "social_security"

# GB/T 2260 province-level areas: the first two digits of an area code
PROVINCES: dict[str, str] = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
    "21": "辽宁省", "22": "吉林省", "23": "黑龙江省", "31": "上海市", "32": "江苏省",
    "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
    "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区",
    "46": "海南省", "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省",
    "54": "西藏自治区", "61": "陕西省", "62": "甘肃省", "63": "青海省", "64": "宁夏回族自治区",
    "65": "新疆维吾尔自治区",
}


def mask_card_number(number: str) -> str:
    """The last four characters only: "*****5678"."""
    return mask_id_number(number) if number else ""


@dataclass(repr=False)
class SocialSecurityCard(CardHolder):
    """The holder and card data of one social security card (values already decoded)."""

    card_type: str = CARD_TYPE
    id_number: str = ""
    name: str = ""
    gender_code: str = ""
    gender: str = ""
    nation_code: str = ""
    nation: str = ""
    birth_date: _dt.date | None = None
    birthplace_code: str = ""
    card_number: str = ""
    card_identifier: str = ""
    spec_version: str = ""
    issuer_code: str = ""
    issuer: str = ""  # the issuing place, from the area code (e.g. 北京市 110000)
    valid_from: _dt.date | None = None  # the issue date
    valid_to: _dt.date | None = None  # the expiry date
    photo_bmp: bytes | None = None  # the card's photo (JPEG); the name is the ID card's, which the face check reads
    photo_note: str = "unavailable"
    profile: str = ""  # which card profile read it (diagnostics)
    address: str = ""  # the card holds none: the platform's records fill addresses
    appended_address: str = ""

    def __post_init__(self) -> None:
        self._name_codes()

    def __repr__(self) -> str:
        return (f"SocialSecurityCard(id={self.masked_id!r}, card={mask_card_number(self.card_number)!r}, "
                f"profile={self.profile!r})")

    __str__ = __repr__

    def wipe(self) -> None:
        """Drop every personal value (the card type and profile stay)."""
        wipe_fields(self, keep=("card_type", "profile"))
        self.photo_bmp = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, dates ISO 8601, without the photo."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "photo_bmp":
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, _dt.date) else value
        return out

    def masked(self) -> dict[str, str]:
        """What a technician may see on a screen or in a log."""
        return {"card_type": self.card_type, "profile": self.profile, "card_number": mask_card_number(self.card_number),
                "id_number": self.masked_id, "name": (self.name[:1] + "*" * max(len(self.name) - 1, 1)) if self.name else "",
                "issuer": self.issuer, "valid_to": self.valid_to.isoformat() if self.valid_to else "",
                "photo": self.photo_note}

    def validity_problem(self, today: _dt.date | None = None) -> str | None:
        """None if the card can be accepted today, else a key of devices.idcard.VALIDITY_PROBLEMS."""
        today = today or _dt.date.today()
        try:
            validate_id_number(self.id_number, self.birth_date, self.gender_code or None)
        except InvalidIdNumber as exc:
            return exc.code
        if self.valid_from is not None and today < self.valid_from:
            return "not_yet_valid"
        if self.valid_to is not None and today > self.valid_to:
            return "expired"
        return None


def issuing_place(issuer_code: str, card_identifier: str = "") -> str:
    """The province (and area code) a card was issued in, from the issuer code's first digits."""
    code = next((c[:6] for c in (issuer_code, card_identifier) if len(c) >= 6 and c[:6].isdigit()), "")
    if not code:
        return ""
    province = PROVINCES.get(code[:2], "")
    return f"{province} {code}".strip()


def holder_from_values(values: dict[str, Any], profile: str) -> SocialSecurityCard:
    """Build the holder from a profile's decoded fields; the birth date comes from the ID
    number when the profile does not read it. Raises CardDataError when the ID number or
    the name is missing."""
    id_number = str(values.get("id_number", "")).upper()
    if not id_number:
        raise CardDataError("the card gave no ID number (profile %s)" % profile)
    if not values.get("name"):
        raise CardDataError("the card gave no name (profile %s)" % profile)
    birth = values.get("birth_date")
    if birth is None and len(id_number) == 18 and id_number[6:14].isdigit():
        try:
            birth = _dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
        except ValueError:
            birth = None  # validity_problem reports the bad number
    photo = values.get("photo") or None
    return SocialSecurityCard(
        id_number=id_number, name=str(values["name"]), gender_code=str(values.get("gender_code", "")),
        nation_code=str(values.get("nation_code", "")), birth_date=birth,
        birthplace_code=str(values.get("birthplace_code", "")), card_number=str(values.get("card_number", "")),
        card_identifier=str(values.get("card_identifier", "")), spec_version=str(values.get("spec_version", "")),
        issuer_code=str(values.get("issuer_code", "")),
        issuer=issuing_place(str(values.get("issuer_code", "")), str(values.get("card_identifier", ""))),
        valid_from=values.get("issue_date"), valid_to=values.get("expiry_date"),
        photo_bmp=photo, photo_note="read" if photo else "unavailable", profile=profile)
