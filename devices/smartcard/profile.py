"""Card profiles: how one kind of card is read, as data (devices/smartcard/profiles/*.toml).

A profile names the application to select, and for each field the file it lives in and
how its record is addressed (short file id or SELECT by file id, record number or
record identifier), the TLV tag the record carries and the value's format. Card
issuers and generations differ exactly in these details (see
/work/shared/protocols/social-security-card.md), so they are never constants in code:
a new generation is a new TOML file, and a reader tries its profiles in order.

`read_card_data(transmit, profile)` runs a profile against any `transmit(apdu) -> response`
(the PC/SC driver's, or a virtual card's in tests).
"""
from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.smartcard import apdu as A
from devices.smartcard.codec import FORMATS, decode_value, parse_tlv_record

log = logging.getLogger(__name__)

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
Transmit = Callable[[bytes], bytes]


class ProfileError(ValueError):
    """A profile file is missing or malformed: names the file and the entry."""


class ProfileMismatch(A.CardStatusError):
    """The card lacks a file or record this profile needs: another profile may fit."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    record: int  # record number, or identifier when by_identifier
    tag: int
    format: str
    sfi: int = 0  # short file id; 0 when the file is selected by `select`
    select: tuple[int, ...] = ()  # file ids selected (after the application) before reading
    by_identifier: bool = False
    length: int | None = None  # the value's length on the card (encoding pads to it)
    required: bool = True

    @property
    def where(self) -> str:
        place = f"SFI {self.sfi}" if self.sfi else "/".join(f"{f:04X}" for f in self.select) or "current file"
        kind = "identifier" if self.by_identifier else "record"
        return f"{place} {kind} {self.record:02X}"

    def command(self) -> bytes:
        return A.read_record(self.record, sfi=self.sfi, by_identifier=self.by_identifier)


@dataclass(frozen=True)
class PhotoSpec:
    select: tuple[int, ...]
    chunk: int = 240
    max_bytes: int = 16384


@dataclass(frozen=True)
class Profile:
    id: str
    title: dict[str, str]
    application: bytes  # the application's DF name (AID)
    fields: tuple[FieldSpec, ...]
    photo: PhotoSpec | None = None
    card_type: str = ""

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _int(value: Any, what: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ProfileError(f"{what}: {value!r} is not a number (write hex as a string, e.g. \"EF06\")")


def _field(entry: dict[str, Any], where: str) -> FieldSpec:
    unknown = set(entry) - {"name", "record", "tag", "format", "sfi", "select", "by", "length", "required"}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        name = str(entry["name"])
        record = _int(entry["record"], f"{where} record")
        fmt = str(entry["format"])
    except KeyError as exc:
        raise ProfileError(f"{where}: {exc.args[0]!r} is required") from None
    if fmt not in FORMATS:
        raise ProfileError(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    by = entry.get("by", "number")
    if by not in ("number", "identifier"):
        raise ProfileError(f"{where}: by must be \"number\" or \"identifier\", not {by!r}")
    sfi = _int(entry.get("sfi", 0), f"{where} sfi")
    select = tuple(_int(f, f"{where} select") for f in entry.get("select", ()))
    if not sfi and not select:
        raise ProfileError(f"{where}: give the file by sfi or by select")
    return FieldSpec(name=name, record=record, tag=_int(entry.get("tag", record), f"{where} tag"), format=fmt,
                     sfi=sfi, select=select, by_identifier=by == "identifier",
                     length=entry.get("length"), required=bool(entry.get("required", True)))


def load_profile(name: str, directory: Path = PROFILES_DIR) -> Profile:
    """The profile `name` (a file in `directory`); `extends` takes another's fields first."""
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise ProfileError(f"no card profile {name!r} in {directory} (known: {known})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    fields: dict[str, FieldSpec] = {}
    base: Profile | None = None
    if "extends" in data:
        base = load_profile(str(data["extends"]), directory)
        fields = {f.name: f for f in base.fields}
    for i, entry in enumerate(data.get("field", [])):
        spec = _field(entry, f"{path.name} field #{i + 1}")
        fields[spec.name] = spec  # a later entry replaces the base's addressing of that field
    photo = base.photo if base else None
    if "photo" in data:
        p = data["photo"]
        photo = PhotoSpec(select=tuple(_int(f, f"{path.name} photo select") for f in p.get("select", ())),
                          chunk=int(p.get("chunk", 240)), max_bytes=int(p.get("max_bytes", 16384)))
    application = data.get("application") or (base.application.hex() if base else "")
    if not application:
        raise ProfileError(f"{path.name}: no application (the AID to select)")
    try:
        aid = bytes.fromhex(str(application))
    except ValueError:
        raise ProfileError(f"{path.name}: application {application!r} is not hex") from None
    return Profile(id=name, title=dict(data.get("title", base.title if base else {"zh-CN": name, "en": name})),
                   application=aid, fields=tuple(fields.values()), photo=photo,
                   card_type=str(data.get("card_type", base.card_type if base else "")))


def known_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


# -- reading ----------------------------------------------------------------------------------------
def _exchange(transmit: Transmit, command: bytes, step: str) -> bytes:
    """Send a command, following 61xx (GET RESPONSE) and 6Cxx (resend with Le); data on 9000."""
    data, sw = A.split_response(transmit(command), step)
    if sw >> 8 == 0x6C:
        data, sw = A.split_response(transmit(command[:-1] + bytes([sw & 0xFF])), step)
    collected = data
    while sw >> 8 == 0x61:
        data, sw = A.split_response(transmit(A.get_response(sw & 0xFF)), step)
        collected += data
    if sw != A.SW_OK:
        raise A.CardStatusError(step, sw)
    return collected


def select_application(transmit: Transmit, profile: Profile) -> None:
    step = f"selecting the {profile.title.get('en', profile.id)} application"
    try:
        _exchange(transmit, A.select_by_name(profile.application), step)
    except A.CardStatusError as exc:
        if exc.not_found:
            raise ProfileMismatch(step, exc.sw) from None
        raise


def read_card_data(transmit: Transmit, profile: Profile) -> dict[str, Any]:
    """Every field of `profile` from the card (optional ones missing are left out), and the
    photo's bytes as "photo" when the profile has one and the card holds it.

    Raises ProfileMismatch when the application or a required file/record is not there
    (try the next profile), CardStatusError for other refusals (blocked application,
    security status), CardDataError for contents that do not fit the profile.
    """
    select_application(transmit, profile)
    values: dict[str, Any] = {}
    selected: tuple[int, ...] | None = None
    for spec in profile.fields:
        what = f"{spec.name} ({spec.where})"
        try:
            if spec.select and spec.select != selected:
                for fid in spec.select:
                    _exchange(transmit, A.select_by_id(fid), f"selecting file {fid:04X} for {spec.name}")
                selected = spec.select
            record = _exchange(transmit, spec.command(), f"reading {what}")
        except A.CardStatusError as exc:
            if exc.not_found and not spec.required:
                continue
            if exc.not_found:
                raise ProfileMismatch(exc.step, exc.sw) from None
            raise
        raw = parse_tlv_record(record, spec.tag, what)
        if spec.length is not None and len(raw) > spec.length:
            raise A.CardDataError(f"{what}: {len(raw)} bytes, the profile allows {spec.length}")
        values[spec.name] = decode_value(raw, spec.format, what)
    if profile.photo is not None:
        photo = read_photo(transmit, profile.photo)
        if photo:
            values["photo"] = photo
    return values


def read_photo(transmit: Transmit, spec: PhotoSpec) -> bytes:
    """The photo file's bytes (b"" when the card has no photo file); stops at the end of file."""
    try:
        for fid in spec.select:
            _exchange(transmit, A.select_by_id(fid), f"selecting photo file {fid:04X}")
    except A.CardStatusError as exc:
        if exc.not_found:
            return b""
        raise
    photo = bytearray()
    while len(photo) < spec.max_bytes:
        step = f"reading the photo at offset {len(photo)}"
        data, sw = A.split_response(transmit(A.read_binary(len(photo), spec.chunk)), step)
        if sw in (0x6B00, 0x6282) or (sw == A.SW_OK and not data):
            photo += data
            break
        if sw >> 8 == 0x6C:
            data, sw = A.split_response(transmit(A.read_binary(len(photo), sw & 0xFF or 256)), step)
        if sw != A.SW_OK:
            raise A.CardStatusError(step, sw)
        photo += data
        if len(data) < spec.chunk:
            break
    else:
        raise A.CardDataError(f"the photo file is larger than the profile allows ({spec.max_bytes} bytes)")
    return bytes(photo)
