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
from devices.smartcard.codec import FORMATS, check_length, decode_value, parse_tlv_record

log = logging.getLogger(__name__)

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
Transmit = Callable[[bytes], bytes]
# GET RESPONSEs followed for one command: a record (at most 255 bytes) needs a few; a card that
# answers 61xx for ever would otherwise hold the read, the reader's lock and its monitor thread
MAX_GET_RESPONSES = 16


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


def _int(value: Any, what: str, high: int, low: int = 0) -> int:
    """A number from a profile (hex as a string, e.g. "EF06"), refused at load when outside what
    its APDU field holds, so a slip never loads and then fails every card read."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 16)
        except ValueError:
            pass
    if number is None:
        raise ProfileError(f"{what}: {value!r} is not a number (write hex as a string, e.g. \"EF06\")")
    if not low <= number <= high:
        raise ProfileError(f"{what}: {value!r} is outside {low} to {high} (hex {low:02X} to {high:02X})")
    return number


def _file_ids(value: Any, what: str) -> tuple[int, ...]:
    """The file ids to SELECT in turn: a list of 2-byte ids, e.g. ["EF06"]."""
    if not isinstance(value, list):
        raise ProfileError(f"{what}: {value!r} is not a list of file ids (write e.g. [\"EF06\"])")
    return tuple(_int(f, what, 0xFFFF) for f in value)


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{what}: {value!r} is not a table")
    return value


def _field(entry: Any, where: str) -> FieldSpec:
    entry = _table(entry, f"{where} (a [[field]] entry)")
    unknown = set(entry) - {"name", "record", "tag", "format", "sfi", "select", "by", "length", "required"}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        name = entry["name"]
        record = _int(entry["record"], f"{where} record", 0xFE, low=1)  # 00 and FF are reserved
        fmt = entry["format"]
    except KeyError as exc:
        raise ProfileError(f"{where}: {exc.args[0]!r} is required") from None
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{where}: name {name!r} is not a field name")
    if fmt not in FORMATS:
        raise ProfileError(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    by = entry.get("by", "number")
    if by not in ("number", "identifier"):
        raise ProfileError(f"{where}: by must be \"number\" or \"identifier\", not {by!r}")
    sfi = _int(entry.get("sfi", 0), f"{where} sfi", 30)  # 0: the file is given by select
    select = _file_ids(entry.get("select", []), f"{where} select")
    if not sfi and not select:
        raise ProfileError(f"{where}: give the file by sfi or by select")
    length = entry.get("length")
    if length is not None:
        if not isinstance(length, int) or isinstance(length, bool):
            raise ProfileError(f"{where}: length {length!r} is not a number of bytes")
        try:
            check_length(fmt, length)
        except ValueError as exc:
            raise ProfileError(f"{where} length: {exc}") from None
    required = entry.get("required", True)
    if not isinstance(required, bool):
        raise ProfileError(f"{where}: required must be true or false, not {required!r}")
    return FieldSpec(name=name, record=record, tag=_int(entry.get("tag", record), f"{where} tag", 0xFF),
                     format=fmt, sfi=sfi, select=select, by_identifier=by == "identifier",
                     length=length, required=required)


def _photo(entry: Any, where: str) -> PhotoSpec:
    entry = _table(entry, where)
    unknown = set(entry) - {"select", "chunk", "max_bytes"}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    select = _file_ids(entry.get("select", []), f"{where} select")
    if not select:
        raise ProfileError(f"{where}: select names no file (the photo's file id, e.g. [\"EF08\"])")
    # READ BINARY reads 1 to 256 bytes at offsets up to 7FFF
    return PhotoSpec(select=select, chunk=_int(entry.get("chunk", 240), f"{where} chunk", 256, low=1),
                     max_bytes=_int(entry.get("max_bytes", 16384), f"{where} max_bytes", 0x8000, low=1))


def _title(value: Any, where: str) -> dict[str, str]:
    title = _table(value, where)
    if not all(isinstance(text, str) for text in title.values()):
        raise ProfileError(f"{where}: every language's title must be text, e.g. en = \"social security card\"")
    return dict(title)


def load_profile(name: str, directory: Path = PROFILES_DIR) -> Profile:
    """The profile `name` (a file in `directory`); `extends` takes another's fields first.

    Everything a card read needs is checked here, so a mistake in a profile stops the
    terminal's start with a ProfileError naming the file and the key, not every card read."""
    return _load_profile(name, directory, ())


def _load_profile(name: str, directory: Path, extending: tuple[str, ...]) -> Profile:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise ProfileError(f"no card profile {name!r} in {directory} (known: {known})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    fields: dict[str, FieldSpec] = {}
    base: Profile | None = None
    if "extends" in data:
        parent = str(data["extends"])
        if parent in extending + (name,):
            raise ProfileError(f"{path.name}: extends goes round in a loop "
                               f"({' -> '.join(extending + (name, parent))})")
        base = _load_profile(parent, directory, extending + (name,))
        fields = {f.name: f for f in base.fields}
    entries = data.get("field", [])
    if not isinstance(entries, list):
        raise ProfileError(f"{path.name}: field must be a list of [[field]] tables, not {entries!r}")
    for i, entry in enumerate(entries):
        spec = _field(entry, f"{path.name} field #{i + 1}")
        fields[spec.name] = spec  # a later entry replaces the base's addressing of that field
    photo = base.photo if base else None
    if "photo" in data:
        photo = _photo(data["photo"], f"{path.name} photo")
    application = data.get("application") or (base.application.hex() if base else "")
    if not application:
        raise ProfileError(f"{path.name}: no application (the AID to select)")
    try:
        aid = bytes.fromhex(str(application))
    except ValueError:
        raise ProfileError(f"{path.name}: application {application!r} is not hex") from None
    if len(aid) > 16:
        raise ProfileError(f"{path.name}: application is {len(aid)} bytes; an AID is 1 to 16")
    title = _title(data["title"], f"{path.name} title") if "title" in data else \
        base.title if base else {"zh-CN": name, "en": name}
    return Profile(id=name, title=title, application=aid, fields=tuple(fields.values()), photo=photo,
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
    chained = 0
    while sw >> 8 == 0x61:
        if chained == MAX_GET_RESPONSES:
            raise A.CardDataError(f"{step}: the card still had more to send after {chained} GET RESPONSEs "
                                  f"({len(collected)} bytes); a record is at most 255 bytes, so the card "
                                  "or the reader is faulty")
        chained += 1
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
