"""Virtual cards: an ISO 7816-4 file system built from a card data file, answering APDUs.

A card data file (devices/smartcard/cards/*.toml) names the profile the card is laid
out by and the holder's values; the card's files and records are built with the same
profile the reader uses, so a new generation's layout is one profile file for both.
Records carry their identifier as TLV tag and are numbered in file order. A file a
profile selects by file id also has a short file id (EF06 is SFI 6), as real cards do;
a file a profile reads by short file id only cannot be selected (an older card), so a
card of one layout read with another profile answers as such a card would (file or
record not found, another tag).

Behaviours make the card misbehave on purpose (keys of `[behaviour]` in the file, or
arguments when inserted): ``wrong_application`` (no social security application),
``blocked`` (the application answers 6283), ``slow`` (seconds before every answer),
``pull_after`` (the citizen pulls the card after that many APDUs), ``sw`` ({field:
"6F00"} answered instead of the record), ``truncate`` ({field: bytes cut off}),
``tlv_length`` ({field: added to the length byte}), ``garbage`` (every answer is one
byte, no status word), ``no_photo``.

`CardEngine` is what devices.smartcard.vpcd_link serves behind the real pcscd.
"""
from __future__ import annotations

import datetime as _dt
import functools
import operator
import logging
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.smartcard import apdu as A
from devices.smartcard.codec import build_tlv_record, encode_value
from devices.smartcard.profile import FieldSpec, Profile, ProfileError, load_profile

log = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).resolve().parent / "cards"
FACES_DIR = Path(__file__).resolve().parents[2] / "var" / "testdata" / "faces"
# a T=1 card's answer to reset (historical bytes "SSCARD-EMU"), TCK computed
_ATR_HEAD = bytes.fromhex("3B8A8001") + b"SSCARD-EMU"
DEFAULT_ATR = _ATR_HEAD + bytes([functools.reduce(operator.xor, _ATR_HEAD[1:], 0)])
PHOTO_SIZE = (179, 220)  # half the standard's 358x441 card photo
FILLER_TAG = 0x0F


class CardFileError(ValueError):
    """A card data file cannot be used: names the file and the problem."""


@dataclass
class _File:
    fid: int
    sfi: int
    records: list[bytes] = field(default_factory=list)  # record files
    data: bytes | None = None  # transparent (binary) files
    selectable: bool = True  # False: an older card's file reachable by short file id only


def _sfi_of(fid: int) -> int:
    return fid & 0x1F if 0 < fid & 0x1F <= 30 else 0


class CardEngine:
    """One virtual card: its ATR, its files, and how it answers (thread-safe)."""

    def __init__(self, profile: Profile, values: dict[str, Any], *, photo: bytes = b"",
                 atr: bytes = DEFAULT_ATR, behaviour: dict[str, Any] | None = None, label: str = "") -> None:
        self.atr = atr
        self.label = label or profile.id
        self.profile = profile
        self.behaviour = dict(behaviour or {})
        unknown = set(self.behaviour) - {"wrong_application", "blocked", "slow", "pull_after", "sw", "truncate",
                                         "tlv_length", "garbage", "no_photo"}
        if unknown:
            raise CardFileError(f"{self.label}: unknown behaviour(s) {', '.join(sorted(unknown))}")
        self._lock = threading.Lock()
        self._files: dict[int, _File] = {}
        self._field_of: dict[tuple[int, int], str] = {}  # (fid, record index) -> field name
        self._build(values, photo)
        self.apdus = 0
        self._current: _File | None = None
        self._in_app = False

    # -- the file system ------------------------------------------------------------------------
    def _file_for(self, spec: FieldSpec) -> _File:
        fid = spec.select[-1] if spec.select else 0xEF00 | spec.sfi
        if fid not in self._files:
            self._files[fid] = _File(fid=fid, sfi=spec.sfi or _sfi_of(fid), selectable=bool(spec.select))
        return self._files[fid]

    def _build(self, values: dict[str, Any], photo: bytes) -> None:
        by_number: dict[int, dict[int, tuple[str, bytes]]] = {}
        by_identifier: dict[int, list[tuple[str, bytes]]] = {}
        for spec in self.profile.fields:
            if spec.name not in values:
                if spec.required:
                    raise CardFileError(f"{self.label}: the profile {self.profile.id} needs {spec.name}")
                continue
            try:
                record = build_tlv_record(spec.tag, encode_value(values[spec.name], spec.format, spec.length))
            except (TypeError, ValueError) as exc:
                raise CardFileError(f"{self.label}: {spec.name} = {values[spec.name]!r}: {exc}") from None
            f = self._file_for(spec)
            if spec.by_identifier:
                by_identifier.setdefault(f.fid, []).append((spec.name, record))
            else:
                by_number.setdefault(f.fid, {})[spec.record] = (spec.name, record)
        for fid, numbered in by_number.items():
            top = max(numbered)
            for n in range(1, top + 1):
                name, record = numbered.get(n, ("", build_tlv_record(FILLER_TAG, b"\x00")))
                self._files[fid].records.append(record)
                if name:
                    self._field_of[(fid, n - 1)] = name
        for fid, listed in by_identifier.items():
            for name, record in listed:
                self._field_of[(fid, len(self._files[fid].records))] = name
                self._files[fid].records.append(record)
        if self.profile.photo is not None and photo and not self.behaviour.get("no_photo"):
            fid = self.profile.photo.select[-1]
            self._files[fid] = _File(fid=fid, sfi=_sfi_of(fid), data=photo)

    # -- the card's life --------------------------------------------------------------------------
    def power_on(self) -> None:
        self.reset()

    def power_off(self) -> None:
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._current = None
            self._in_app = False

    def respond(self, apdu: bytes) -> bytes:
        """The card's answer (data + SW1 SW2) to one command APDU."""
        from devices.smartcard.vpcd_link import CardPulled

        with self._lock:
            self.apdus += 1
            pull_after = self.behaviour.get("pull_after")
            if pull_after is not None and self.apdus > int(pull_after):
                raise CardPulled(f"{self.label} pulled after {pull_after} APDUs")
            delay = float(self.behaviour.get("slow", 0) or 0)
        if delay:
            time.sleep(delay)
        if self.behaviour.get("garbage"):
            return b"\x6f"
        with self._lock:
            return self._answer(apdu)

    def _answer(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return _sw(0x6700)
        cla, ins, p1, p2 = apdu[:4]
        if cla != 0x00:
            return _sw(0x6E00)
        body = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        if ins == 0xA4:
            return self._select(p1, body)
        if ins == 0xB2:
            return self._read_record(p1, p2)
        if ins == 0xB0:
            le = apdu[4] if len(apdu) == 5 else 0
            return self._read_binary(((p1 & 0x7F) << 8) | p2, le or 256)
        return _sw(0x6D00)

    def _select(self, p1: int, body: bytes) -> bytes:
        if p1 == 0x04:
            if self.behaviour.get("wrong_application") or body != self.profile.application:
                return _sw(0x6A82)
            if self.behaviour.get("blocked"):
                return _sw(0x6283)
            self._in_app, self._current = True, None
            return _sw(A.SW_OK)
        if p1 in (0x00, 0x02) and len(body) == 2:
            fid = int.from_bytes(body, "big")
            if fid == 0x3F00:
                self._in_app, self._current = False, None
                return _sw(A.SW_OK)
            if self._in_app and fid in self._files and self._files[fid].selectable:
                self._current = self._files[fid]
                return _sw(A.SW_OK)
            return _sw(0x6A82)
        return _sw(0x6A86)

    def _read_record(self, p1: int, p2: int) -> bytes:
        if not self._in_app:
            return _sw(0x6986)
        sfi, mode = p2 >> 3, p2 & 0x07
        f = next((f for f in self._files.values() if f.sfi == sfi), None) if sfi else self._current
        if f is None:
            return _sw(0x6A82 if sfi else 0x6986)
        if f.data is not None:
            return _sw(0x6981)
        if mode == 0x04:
            index = p1 - 1
        elif mode == 0x00:
            index = next((i for i, r in enumerate(f.records) if r[:1] == bytes([p1])), -1)
        else:
            return _sw(0x6A86)
        if not 0 <= index < len(f.records):
            return _sw(0x6A83)
        return self._misbehave(self._field_of.get((f.fid, index), ""), f.records[index])

    def _misbehave(self, name: str, record: bytes) -> bytes:
        if name in self.behaviour.get("sw", {}):
            return _sw(int(str(self.behaviour["sw"][name]), 16))
        if name in self.behaviour.get("tlv_length", {}):
            record = record[:1] + bytes([(record[1] + int(self.behaviour["tlv_length"][name])) & 0xFF]) + record[2:]
        if name in self.behaviour.get("truncate", {}):
            record = record[: max(0, len(record) - int(self.behaviour["truncate"][name]))]
        return record + _sw(A.SW_OK)

    def _read_binary(self, offset: int, le: int) -> bytes:
        f = self._current
        if f is None:
            return _sw(0x6986)
        if f.data is None:
            return _sw(0x6981)
        if offset >= len(f.data):
            return _sw(0x6B00)
        chunk = f.data[offset : offset + le]
        return chunk + _sw(A.SW_OK if len(chunk) == le else 0x6282)


def _sw(sw: int) -> bytes:
    return bytes([sw >> 8, sw & 0xFF])


# -- card data files ---------------------------------------------------------------------------
def card_path(card: str | Path) -> Path:
    """A card file by path, or by name in devices/smartcard/cards ("zhang-san")."""
    path = Path(card)
    if path.suffix != ".toml":
        path = CARDS_DIR / f"{card}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CARDS_DIR.glob("*.toml")))
        raise CardFileError(f"no card file {card!r} (cards in {CARDS_DIR}: {known})")
    return path


@functools.lru_cache(maxsize=8)
def card_photo(name: str, faces_dir: Path | None = None) -> bytes:
    """A card photo (JPEG, 179x220) cut from a test face photo fetched by scripts/setup.sh
    (kept: finding the face takes a while, and cards are inserted again and again)."""
    import cv2

    from devices.idcard.emulator_photo import portrait_crop

    path = (faces_dir or FACES_DIR) / name
    if not path.is_file():
        raise CardFileError(f"the face photo {path} is missing: run scripts/setup.sh to fetch the test photos")
    ok, packed = cv2.imencode(".jpg", portrait_crop(path, *PHOTO_SIZE), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise CardFileError(f"cannot encode a card photo from {path}")
    return packed.tobytes()


def load_card(card: str | Path = "zhang-san", faces_dir: str | Path | None = None, **behaviour: Any) -> CardEngine:
    """The virtual card described by a card data file; `behaviour` adds to the file's own."""
    path = card_path(card)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CardFileError(f"{path}: {exc}") from None
    holder, emulator, file_behaviour = (_table(data, key, path) for key in ("holder", "emulator", "behaviour"))
    try:
        profile = load_profile(_text(data, "profile", path, "social_security_3"))
    except ProfileError as exc:
        raise CardFileError(f"{path.name}: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in holder.items():
        if isinstance(value, _dt.datetime):
            value = value.date()
        if not isinstance(value, (str, _dt.date)):
            raise CardFileError(f"{path.name}: holder {key} must be text or a date, not {value!r}")
        values[key] = value
    photo_name = _text(emulator, "photo", path)
    photo = card_photo(photo_name, Path(faces_dir) if faces_dir else None) if photo_name else b""
    try:
        atr = bytes.fromhex(_text(emulator, "atr", path)) or DEFAULT_ATR
    except ValueError:
        raise CardFileError(f"{path.name}: emulator atr {emulator['atr']!r} is not hex") from None
    merged = {**file_behaviour, **behaviour}
    return CardEngine(profile, values, photo=photo, atr=atr, behaviour=merged, label=path.stem)


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CardFileError(f"{path.name}: {key} must be a table ([{key}]), not {value!r}")
    return value


def _text(data: dict[str, Any], key: str, path: Path, default: str = "") -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise CardFileError(f"{path.name}: {key} must be text (in quotes), not {value!r}")
    return value
