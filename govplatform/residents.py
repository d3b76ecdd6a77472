"""One person, one file (一人一档): the demo resident store, e-licences and form prefill.

The platform fills in what the state already knows so a citizen types as little as
possible (国发〔2024〕3号 (九)(十): shared data, "智能预填"). Every form field in the
catalogue names a *source*; this module owns that source grammar and resolves it:

    identity.<attr>            from the ID card just read (name, id_number, address,
                               birth_date, gender)
    profile.<field>            from the person's file (phone, household_address, ...)
    licence.<type>.<attr>      from an e-licence the person holds (number, issuer, valid_to)
    enterprise.<field>         from the first enterprise the person represents
    household.<relation>.<attr> from a household member (spouse, child = youngest,
                               father, mother; name, id_number, birth_date, gender)

The residents in `data/residents.toml` are synthetic. A Resident never shows the ID
number or name in clear in its repr, so it can pass through logs and assertion messages.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Collection, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DATA_DIR = Path(__file__).resolve().parent / "data"
RESIDENTS_FILE = DATA_DIR / "residents.toml"
LONG_TERM = "长期"  # valid_to of a licence that never expires


class ResidentDataError(ValueError):
    """The resident store is malformed; the message names the file, the person (masked) and the field."""


# -- check characters ---------------------------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_problem(number: str, birth_date: dt.date | None = None, gender_code: str | None = None) -> str | None:
    """Why `number` is not a well-formed GB 11643 number (MOD 11-2), or None.

    Kept here rather than imported from the terminal's device layer: the platform is its
    own package and must not depend on the kiosk's drivers.
    """
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return "is not 17 digits plus a check character"
    total = sum(int(c) * w for c, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    if number[17].upper() != _ID_CHECK[total % 11]:
        return "fails its GB 11643 check digit"
    if birth_date is not None and number[6:14] != birth_date.strftime("%Y%m%d"):
        return "does not contain the birth date"
    if gender_code in ("1", "2") and int(number[16]) % 2 != (1 if gender_code == "1" else 0):
        return "does not match the gender (17th digit odd for men, even for women)"
    return None


def mask_id_number(number: str) -> str:
    """Region and last four kept ("110101********0011"), as the terminal masks them."""
    if len(number) >= 14:
        return number[:6] + "*" * (len(number) - 10) + number[-4:]
    return "*" * max(len(number) - 4, 0) + number[-4:]


# GB 32100 unified social credit code: 18 characters from a 31-character set (no I, O, S,
# V, Z); characters 9-17 are the GB 11714 organisation code with its own check character.
CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def credit_code_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100, modulus 31)."""
    total = sum(CREDIT_CODE_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_CHARS[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The 9th character of an organisation code (GB 11714, modulus 11; A=10 ... Z=35)."""
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    rest = 11 - total % 11
    return "X" if rest == 10 else "0" if rest == 11 else str(rest)


def credit_code_problem(code: str) -> str | None:
    """Why `code` is not a well-formed unified social credit code, or None."""
    if len(code) != 18:
        return f"has {len(code)} characters, a credit code has 18"
    bad = sorted({c for c in code if c not in CREDIT_CODE_CHARS})
    if bad:
        return f"holds characters outside the GB 32100 set: {''.join(bad)}"
    if not code[2:8].isdigit():
        return "characters 3-8 must be an administrative division code"
    if code[16] != org_code_check_char(code[8:16]):
        return "the organisation code (characters 9-17) fails its GB 11714 check character"
    if code[17] != credit_code_check_char(code[:17]):
        return "fails its GB 32100 check character"
    return None


# -- the person's file -------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Licence(_Strict):
    """An e-licence (电子证照) the person holds; usable instead of the paper original."""

    type: str = Field(min_length=1)  # a key of the catalogue's [licence_types]
    number: str = Field(min_length=1)
    issuer: str = Field(min_length=1)
    valid_to: dt.date | Literal["长期"]


class HouseholdMember(_Strict):
    """A member of the person's household (户口簿 / family), by relation to the person."""

    relation: Literal["spouse", "child", "father", "mother"]
    name: str = Field(min_length=1)
    id_number: str = ""  # empty for a newborn not yet registered
    birth_date: dt.date
    gender_code: Literal["1", "2"]

    def __repr__(self) -> str:
        return f"HouseholdMember(relation={self.relation!r}, id={mask_id_number(self.id_number)!r})"

    __str__ = __repr__


class Enterprise(_Strict):
    """An enterprise the person is the legal representative (or operator) of (一企一档 extract)."""

    name: str = Field(min_length=1)
    credit_code: str
    type: str = Field(min_length=1)  # 有限责任公司（自然人独资）, 个体工商户, ...
    legal_representative: str = Field(min_length=1)
    registered_capital: int | None = None  # 万元 (10 000 yuan); none for 个体工商户
    address: str = Field(min_length=1)
    business_scope: str = Field(min_length=1)
    established: dt.date
    registration_authority: str = Field(min_length=1)
    phone: str = ""
    status: str = "存续"

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        problem = credit_code_problem(value)
        if problem:
            raise ValueError(f"credit code {value!r} {problem}")
        return value


MARITAL_STATUS = {"10": "未婚", "20": "已婚", "30": "丧偶", "40": "离婚"}  # GB/T 2261.2 codes


class Resident(_Strict):
    """One synthetic person's file. repr/str mask the ID number and leave the name out."""

    id_number: str
    id_type: Literal["resident", "hmt_permit", "foreign_2017", "foreign_2023"] = "resident"
    emulator_card: str = ""  # devices/idcard/cards/<name>.toml this person matches, if any
    name: str = Field(min_length=1)
    gender_code: Literal["1", "2"]
    birth_date: dt.date
    nation: str = ""
    phone: str = Field(pattern=r"^1[3-9]\d{9}$")
    household_address: str = ""  # 户籍地址; empty for foreigners, who have no household registration
    residence_address: str = ""
    marital_status: Literal["10", "20", "30", "40"]
    employer: str = ""
    social_security_number: str = ""
    bank_name: str = ""
    bank_account_masked: str = ""
    housing_fund_account: str = ""
    pension_scheme: Literal["employee", "resident", ""] = ""  # 职工 / 城乡居民 basic pension insurance
    contribution_years: int | None = Field(default=None, ge=0, le=60)
    retired: bool = False
    receiving_pension: bool = False
    retirement_schedule: Literal["male", "female_cadre", "female_worker", ""] = ""
    disability_level: int | None = Field(default=None, ge=1, le=4)
    disability_category: str = ""
    low_income: bool = False  # in a 最低生活保障 (minimum living allowance) household
    household: tuple[HouseholdMember, ...] = ()
    licences: tuple[Licence, ...] = ()
    enterprises: tuple[Enterprise, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> "Resident":
        if self.id_type != "foreign_2017":  # the 2017 card's 15-character number has no published check
            gender = self.gender_code if self.id_type in ("resident", "hmt_permit") else None
            problem = id_number_problem(self.id_number, self.birth_date, gender)
            if problem:
                raise ValueError(f"id_number {mask_id_number(self.id_number)} {problem}")
        for n, member in enumerate(self.household):
            if member.id_number:
                problem = id_number_problem(member.id_number, member.birth_date, member.gender_code)
                if problem:
                    raise ValueError(f"household[{n}].id_number {mask_id_number(member.id_number)} {problem}")
        if (self.disability_level is None) != (not self.disability_category):
            raise ValueError("disability_level and disability_category go together")
        return self

    @property
    def masked_id(self) -> str:
        return mask_id_number(self.id_number)

    def __repr__(self) -> str:
        return f"Resident(id={self.masked_id!r}, id_type={self.id_type!r})"

    __str__ = __repr__

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:  # pydantic's own pretty printers
        return [("id", self.masked_id), ("id_type", self.id_type)]

    def age_on(self, today: dt.date) -> int:
        """Whole years of age on `today`."""
        return today.year - self.birth_date.year - ((today.month, today.day) < (self.birth_date.month, self.birth_date.day))

    def youngest(self, relation: str) -> HouseholdMember | None:
        """The household member of this relation; the youngest one for children."""
        members = [m for m in self.household if m.relation == relation]
        return max(members, key=lambda m: m.birth_date) if members else None


# -- the store ---------------------------------------------------------------------------------
def _format_errors(where: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: field {loc}: {msg}" if loc else f"{where}: {msg}")
    return "; ".join(parts)


def load_residents(path: Path | None = None) -> dict[str, Resident]:
    """All residents keyed by upper-case ID number. The default file is read once."""
    if path is None:
        return _load_default()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> dict[str, Resident]:
    return _load(RESIDENTS_FILE)


def _load(path: Path) -> dict[str, Resident]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ResidentDataError(f"{path}: cannot read the resident store: {exc}") from None
    unknown = set(raw) - {"resident"}
    if unknown:
        raise ResidentDataError(f"{path}: unknown top-level key(s) {sorted(unknown)}; only [[resident]] tables belong here")
    from govplatform.catalogue import licence_types  # lazy: the catalogue validates against this module

    known_licences = licence_types()
    out: dict[str, Resident] = {}
    for n, entry in enumerate(raw.get("resident", [])):
        where = f"{path}: resident #{n + 1} ({mask_id_number(str(entry.get('id_number', '')))})"
        try:
            person = Resident.model_validate(entry)
        except ValidationError as exc:
            raise ResidentDataError(_format_errors(where, exc)) from None
        for k, lic in enumerate(person.licences):
            if lic.type not in known_licences:
                raise ResidentDataError(f"{where}: field licences[{k}].type: unknown licence type {lic.type!r}; "
                                        f"known: {', '.join(sorted(known_licences))}")
        key = person.id_number.upper()
        if key in out:
            raise ResidentDataError(f"{where}: a second resident with the same ID number")
        out[key] = person
    return out


def find_resident(id_number: str) -> Resident | None:
    """The person's file, or None when the platform holds none for this ID number."""
    if not id_number:
        return None
    return load_residents().get(id_number.strip().upper())


# -- e-licences --------------------------------------------------------------------------------
def _date_text(value: dt.date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    if len(text) == 8 and text.isdigit():  # the card's YYYYMMDD
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def licences(resident: Resident | None) -> list[dict[str, Any]]:
    """The person's e-licences, JSON-ready: {type, title{zh-CN,en}, number, issuer, valid_to}."""
    if resident is None:
        return []
    from govplatform.catalogue import licence_types

    titles = licence_types()
    return [
        {"type": lic.type, "title": dict(titles[lic.type]), "number": lic.number,
         "issuer": lic.issuer, "valid_to": _date_text(lic.valid_to)}
        for lic in resident.licences
    ]


# -- prefill sources ---------------------------------------------------------------------------
IDENTITY_ATTRS = {"name": "name", "id_number": "id_number", "address": "address",
                  "birth_date": "birth_date", "gender": "gender_code"}
_NOT_PROFILE = {"id_number", "id_type", "emulator_card", "name", "gender_code", "birth_date",
                "household", "licences", "enterprises", "retired", "receiving_pension", "low_income"}
PROFILE_FIELDS = tuple(f for f in Resident.model_fields if f not in _NOT_PROFILE)
ENTERPRISE_FIELDS = tuple(Enterprise.model_fields)
LICENCE_ATTRS = ("number", "issuer", "valid_to")
HOUSEHOLD_RELATIONS = ("spouse", "child", "father", "mother")
HOUSEHOLD_ATTRS = {"name": "name", "id_number": "id_number", "birth_date": "birth_date", "gender": "gender_code"}

_SOURCE_RE = re.compile(r"^[a-z_]+(\.[a-z0-9_]+){1,2}$")


def source_problem(source: str, licence_types: Collection[str] | None = None) -> str | None:
    """Why a catalogue form field's `source` cannot be resolved by `prefill`, or None.

    "" (the citizen types the value) is always fine. `licence_types`, when given, are the
    known e-licence types for `licence.<type>.<attr>`.
    """
    if source == "":
        return None
    if not _SOURCE_RE.match(source):
        return f"source {source!r} is not '<namespace>.<field>' (or '<namespace>.<name>.<attr>')"
    ns, *rest = source.split(".")
    if ns == "identity" and len(rest) == 1:
        return None if rest[0] in IDENTITY_ATTRS else f"identity has no {rest[0]!r}; known: {', '.join(IDENTITY_ATTRS)}"
    if ns == "profile" and len(rest) == 1:
        return None if rest[0] in PROFILE_FIELDS else f"profile has no {rest[0]!r}; known: {', '.join(PROFILE_FIELDS)}"
    if ns == "enterprise" and len(rest) == 1:
        return None if rest[0] in ENTERPRISE_FIELDS else f"enterprise has no {rest[0]!r}; known: {', '.join(ENTERPRISE_FIELDS)}"
    if ns == "licence" and len(rest) == 2:
        if licence_types is not None and rest[0] not in licence_types:
            return f"unknown licence type {rest[0]!r}; known: {', '.join(sorted(licence_types))}"
        return None if rest[1] in LICENCE_ATTRS else f"a licence has no {rest[1]!r}; known: {', '.join(LICENCE_ATTRS)}"
    if ns == "household" and len(rest) == 2:
        if rest[0] not in HOUSEHOLD_RELATIONS:
            return f"unknown household relation {rest[0]!r}; known: {', '.join(HOUSEHOLD_RELATIONS)}"
        return None if rest[1] in HOUSEHOLD_ATTRS else f"a household member has no {rest[1]!r}; known: {', '.join(HOUSEHOLD_ATTRS)}"
    return (f"source {source!r} is not one of identity.<attr>, profile.<field>, enterprise.<field>, "
            "licence.<type>.<attr>, household.<relation>.<attr>")


# Sources whose values are codes, not display text: their form field must be a "choice".
CODED_SOURCES = re.compile(r"^(identity\.gender|profile\.marital_status|profile\.pension_scheme|household\.[a-z]+\.gender)$")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def resolve_source(source: str, resident: Resident | None, card: dict[str, Any] | None) -> str | None:
    """The value `source` names for this person, as text, or None when it is not known."""
    if not source or source_problem(source):
        return None
    ns, *rest = source.split(".")
    if ns == "identity":
        if not card:
            return None
        attr = IDENTITY_ATTRS[rest[0]]
        if attr == "birth_date":
            return _text(_date_text(card.get("birth_date"))) if card.get("birth_date") else None
        if attr == "address":  # a newer address appended to the card (30 03) wins
            on_card = _text(card.get("appended_address")) or _text(card.get("address"))
            if on_card is None and resident is not None:  # a card without an address (社保卡):
                return _text(resident.household_address)  # the household register's, which the ID card prints
            return on_card
        return _text(card.get(attr))
    if resident is None:
        return None
    if ns == "profile":
        return _text(getattr(resident, rest[0]))
    if ns == "enterprise":
        return _text(getattr(resident.enterprises[0], rest[0])) if resident.enterprises else None
    if ns == "licence":
        for lic in resident.licences:
            if lic.type == rest[0]:
                return _text(getattr(lic, rest[1]))
        return None
    if ns == "household":
        member = resident.youngest(rest[0])
        return _text(getattr(member, HOUSEHOLD_ATTRS[rest[1]])) if member else None
    return None


def prefill(item: dict[str, Any], resident: Resident | None, card: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """{form key: {"value", "source"}} for every field of `item` whose source is known.

    identity.* comes from the card read; everything else from the person's file. A file
    whose ID number differs from the card's is ignored: the platform never fills one
    person's form from another person's file.
    """
    card = card or {}
    card_id = str(card.get("id_number") or "").strip().upper()
    if resident is not None and card_id and resident.id_number.upper() != card_id:
        resident = None
    out: dict[str, dict[str, str]] = {}
    for field in item.get("form", []):
        source = field.get("source", "")
        value = resolve_source(source, resident, card)
        if value is not None:
            out[field["key"]] = {"value": value, "source": source}
    return out


def reload_residents() -> None:
    """Forget the cached store (after the data file changed)."""
    _load_default.cache_clear()


__all__ = [
    "CODED_SOURCES", "Enterprise", "HouseholdMember", "Licence", "MARITAL_STATUS", "Resident",
    "ResidentDataError", "credit_code_problem", "find_resident", "id_number_problem", "licences",
    "load_residents", "mask_id_number", "prefill", "reload_residents", "resolve_source", "source_problem",
]
