"""The privacy audit's detectors: what a synthetic person's data looks like in bytes and in
memory, and where it is found.

Used by tests/test_privacy_audit.py. Three searches, each returning `Hit`s (where, whose, what):

- `search_files(folders)`: every regular file under the folders, read raw. A value is looked
  for in UTF-8, UTF-16-LE (the ID card's own text encoding), GB18030 (the receipt printer's) and
  JSON's ASCII escapes; PDFs are searched again after inflating their streams and through
  pdftotext; gzip files after decompression. Images: a strong signature (PNG, JPEG, WebP, BMP)
  that really decodes is a hit in a file that should have none, and any decoded image in which
  YuNet finds a face is a hit anywhere. Chunks of each person's card photo are looked for as
  bytes and in base64.
- `search_memory(roots, ...)`: everything reachable from the roots through attributes, slots,
  containers, closures, bound methods, what C objects hold (gc.get_referents), kept exceptions'
  frames, threads and the stacks of the live ones, bounded; modules, classes, loggers and what
  `skip` names (emulated hardware, the test harness) are not entered. Strings, bytes, lists of
  byte values and 1-D uint8 arrays are searched as above, dates against the birth dates; uint8
  picture arrays are searched for faces; 128-number float vectors (what SFace makes of a face)
  are reported as face templates.
- `search_payloads(payloads)`: MQTT payloads as received by the help desk.

A value is "in clear" when its exact characters are there; the masked forms the product
writes (张*, 110101********0011, 138****0011) do not match any needle.
"""
from __future__ import annotations

import base64
import collections
import datetime as dt
import gc
import gzip
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import types
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

MAX_FILE_BYTES = 64 * 1024 * 1024  # a bigger file is reported as unsearched, never skipped silently
MIN_IMAGE_SIDE = 40  # arrays smaller than this on a side are not pictures of a face
PHOTO_CHUNK = 48  # bytes of a photo looked for at several places in it


@dataclass(frozen=True)
class Hit:
    where: str  # a file path (with "#inflated stream", "#pdftotext", "@offset"), or an object path
    who: str  # the person's label, or "-" for a face found without knowing whose
    kind: str  # "name", "id_number", "id_number_15", "birth_date", "address", "phone", "face image", ...
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} of {self.who}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Person:
    """A known synthetic identity and everything of theirs the terminal must not keep."""

    label: str
    name: str
    id_number: str
    birth: dt.date
    addresses: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    other: tuple[tuple[str, str], ...] = ()  # (kind, value): a card number, a typed value, ...
    photos: tuple[bytes, ...] = ()  # the face photo as the terminal received it (and decoded)

    def values(self) -> list[tuple[str, str]]:
        """(kind, text) of every personal value."""
        out = [("name", self.name), ("id_number", self.id_number)]
        if len(self.id_number) == 18:
            # the old 15-digit form: region, birth date without the century, sequence
            out.append(("id_number_15", self.id_number[:6] + self.id_number[8:17]))
        out += [("birth_date", self.birth.strftime("%Y%m%d")), ("birth_date", self.birth.isoformat())]
        for address in self.addresses:
            out.append(("address", address))
            if len(address) > 12:
                out.append(("address", address[-8:]))  # the distinctive end, should it be cut short
        out += [("phone", p) for p in self.phones]
        out += list(self.other)
        return [(k, v) for k, v in dict.fromkeys(out) if len(v) >= 2]

    def byte_needles(self) -> list[tuple[str, bytes]]:
        """(kind, pattern) for raw bytes: each value in every encoding the terminal might use,
        and chunks of each photo as bytes and as base64."""
        out: list[tuple[str, bytes]] = []
        for kind, value in self.values():
            for encoded in encodings(value):
                out.append((kind, encoded))
        for photo in self.photos:
            for chunk in photo_chunks(photo):
                out.append(("face photo bytes", chunk))
                for shift in range(3):  # base64 of the chunk at each alignment, its stable middle
                    b64 = base64.b64encode(chunk[shift:shift + 45])[4:-4]
                    out.append(("face photo bytes (base64)", b64))
        return list(dict.fromkeys(out))


def encodings(value: str) -> list[bytes]:
    out = [value.encode("utf-8"), value.encode("utf-16-le")]
    if not value.isascii():
        out.append(value.encode("gb18030"))
        escaped = value.encode("ascii", "backslashreplace").decode("ascii")  # \u5f20 (and \U0002020c)
        out.append(_json_escape(value).encode("ascii"))
        out.append(escaped.encode("ascii"))
    return list(dict.fromkeys(out))


def _json_escape(value: str) -> str:
    """What json.dumps(ensure_ascii=True) writes for the text (surrogate pairs outside the BMP)."""
    import json

    return json.dumps(value)[1:-1]


def photo_chunks(photo: bytes) -> list[bytes]:
    """Up to three chunks from the photo's body that are unique enough to mean this photo: the
    zero padding of a photo block and the flat areas of a drawn test portrait would match any
    file's empty pages, so a chunk must hold many different byte values."""
    photo = photo.rstrip(b"\x00")
    out: list[bytes] = []
    for start in range(PHOTO_CHUNK, max(PHOTO_CHUNK, len(photo) - PHOTO_CHUNK), PHOTO_CHUNK):
        chunk = photo[start:start + PHOTO_CHUNK]
        if len(chunk) == PHOTO_CHUNK and len(set(chunk)) >= 24:
            out.append(chunk)
    if len(out) <= 3:
        return out
    return [out[len(out) // 4], out[len(out) // 2], out[3 * len(out) // 4]]


# -- faces ---------------------------------------------------------------------------------------------
_detect_lock = threading.Lock()


def faces_in(image: np.ndarray) -> int:
    """How many faces YuNet finds in a uint8 picture (the terminal's own detector)."""
    import cv2

    from kiosk.face.detect import detect

    if image.ndim == 3 and image.shape[2] not in (3, 4) or image.ndim not in (2, 3):
        return 0
    with _detect_lock:
        try:
            return len(detect(np.ascontiguousarray(image)))
        except (cv2.error, ValueError):  # an odd picture (channels, size): not a face
            return 0


_SIGNATURES = (  # (name, regex on raw bytes) strong enough not to match ciphertext by chance
    ("PNG", re.compile(rb"\x89PNG\r\n\x1a\n")),
    ("JPEG", re.compile(rb"\xff\xd8\xff[\xdb\xe0-\xef]")),
    ("WebP", re.compile(rb"RIFF....WEBPVP8", re.DOTALL)),
    ("BMP", re.compile(rb"BM....\x00\x00\x00\x00....[\x0c\x28\x38\x6c\x7c]\x00\x00\x00", re.DOTALL)),
)


def embedded_images(data: bytes, limit: int = 50) -> Iterator[tuple[int, str, np.ndarray]]:
    """(offset, format, picture) of each image that really decodes inside `data`."""
    import cv2

    found = 0
    for fmt, pattern in _SIGNATURES:
        for match in pattern.finditer(data):
            image = cv2.imdecode(np.frombuffer(data[match.start():], np.uint8), cv2.IMREAD_COLOR)
            if image is not None and image.size:
                yield match.start(), fmt, image
                found += 1
                if found >= limit:
                    return


# -- files -----------------------------------------------------------------------------------------------
@dataclass
class FileReport:
    hits: list[Hit] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every file searched
    unsearched: list[str] = field(default_factory=list)  # and why not


def _views(path: Path, data: bytes) -> Iterator[tuple[str, bytes]]:
    """The file's bytes, and what a reader would get out of them (inflated, extracted)."""
    yield str(path), data
    if data[:2] == b"\x1f\x8b":
        try:
            yield f"{path}#gunzip", gzip.decompress(data)
        except (OSError, EOFError):
            pass
    if b"%PDF-" in data[:1024]:
        for n, m in enumerate(re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL)):
            try:
                yield f"{path}#stream{n}", zlib.decompress(m.group(1))
            except zlib.error:
                continue
        if shutil.which("pdftotext"):
            done = subprocess.run(["pdftotext", "-q", str(path), "-"], check=False, capture_output=True,
                                  timeout=60)
            yield f"{path}#pdftotext", done.stdout


def search_files(places: Iterable[Path], people: Iterable[Person], *,
                 images_allowed: Callable[[Path], bool] = lambda _p: False) -> FileReport:
    """Search each file in `places`, and every regular file under each folder there, for each
    person's values, photos and for faces. `images_allowed(path)`: files that may hold images
    (a face is still a hit in them)."""
    people = list(people)
    needles = [(p.label, kind, pattern) for p in people for kind, pattern in p.byte_needles()]
    report = FileReport()
    for place in places:
        if not place.exists():
            continue
        found = [place] if place.is_file() else place.rglob("*")
        for path in sorted(p for p in found if p.is_file() and not p.is_symlink()):
            try:
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    report.unsearched.append(f"{path}: {size} bytes, over the audit's limit")
                    continue
                data = path.read_bytes()
            except OSError as exc:  # a socket, a file that went meanwhile, no permission
                report.unsearched.append(f"{path}: {exc}")
                continue
            report.files.append(path)
            for where, view in _views(path, data):
                report.hits += _search_bytes(where, view, needles)
                report.hits += _search_images(where, view, images_allowed(path))
    return report


def _search_bytes(where: str, data: bytes, needles: list[tuple[str, str, bytes]]) -> list[Hit]:
    hits = []
    seen: set[tuple[str, str]] = set()
    for who, kind, pattern in needles:
        at = data.find(pattern)
        if at >= 0 and (who, kind) not in seen:
            seen.add((who, kind))
            hits.append(Hit(f"{where}@{at}", who, kind, _context(data, at, len(pattern))))
    return hits


def _context(data: bytes, at: int, length: int) -> str:
    text = data[max(0, at - 40): at + length + 40].decode("utf-8", "replace")
    return re.sub(r"[^\S ]|[\x00-\x1f]", " ", text)[:160]


def _search_images(where: str, data: bytes, allowed: bool) -> list[Hit]:
    hits = []
    for offset, fmt, image in embedded_images(data):
        faces = faces_in(image)
        if faces:
            hits.append(Hit(f"{where}@{offset}", "-", "face image",
                            f"{fmt} {image.shape[1]}x{image.shape[0]} with {faces} face(s)"))
        elif not allowed:
            hits.append(Hit(f"{where}@{offset}", "-", "image",
                            f"{fmt} {image.shape[1]}x{image.shape[0]} in a file that should hold none"))
    return hits


# -- memory ----------------------------------------------------------------------------------------------
_LEAVES = (int, float, complex, bool, type(None), range, slice, type(Ellipsis), dt.date, dt.time, dt.timedelta)
_NEVER_ENTER = (types.ModuleType, type, types.CodeType, types.BuiltinFunctionType, logging.Logger,
                logging.Manager, logging.PlaceHolder, threading.Condition, type(threading.Lock()),
                type(threading.RLock()))


@dataclass
class MemoryReport:
    hits: list[Hit] = field(default_factory=list)
    objects: int = 0  # how many objects were visited
    bounded: bool = False  # True: the walk stopped at its limit
    types: collections.Counter[str] = field(default_factory=collections.Counter)
    frontier: collections.Counter[str] = field(default_factory=collections.Counter)  # bounded: where the walk was

    def why_bounded(self) -> str:
        """Where the unvisited objects hang from (their paths' first steps), to find what grew."""
        return "; ".join(f"{path} ({n})" for path, n in self.frontier.most_common(12))


def search_memory(roots: dict[str, Any], people: Iterable[Person], *, skip: Callable[[Any], bool] = lambda _o: False,
                  limit: int = 400_000, include_thread_frames: bool = True) -> MemoryReport:
    """Walk everything reachable from `roots` (name -> object) and report each person's values in
    strings and bytes, faces in picture arrays and face templates. `skip(obj)`: objects not to
    enter (test doubles standing in for the world outside the terminal)."""
    people = list(people)
    str_needles = [(p.label, kind, value) for p in people for kind, value in p.values()]
    byte_needles = [(p.label, kind, pattern) for p in people for kind, pattern in p.byte_needles()]
    report = MemoryReport()
    parent: dict[int, tuple[int, str]] = {}
    seen: set[int] = set()
    queue: collections.deque[Any] = collections.deque()
    keep_alive: list[Any] = []  # f_locals dicts made on the fly must live until the walk ends
    main = threading.main_thread()

    births = {p.birth: p.label for p in people}

    def path_of(obj_id: int) -> str:
        parts = []
        while obj_id in parent:
            obj_id, label = parent[obj_id]
            parts.append(label)
            if obj_id == 0:
                break
        return "".join(reversed(parts))

    def push(obj: Any, from_id: int, label: str) -> None:
        if type(obj) is dt.date and obj in births:  # a birth date kept as a date
            report.hits.append(Hit(path_of(from_id) + label, births[obj], "birth_date", repr(obj)))
            return
        if isinstance(obj, _LEAVES) or id(obj) in seen:
            return
        if isinstance(obj, _NEVER_ENTER) or skip(obj):
            return
        seen.add(id(obj))
        parent[id(obj)] = (from_id, label)
        queue.append(obj)

    for name, root in roots.items():
        push(root, 0, name)

    while queue:
        if report.objects >= limit:
            report.bounded = True
            for left in list(queue)[:20_000]:
                report.frontier[re.sub(r"\[[^\]]*\]", "[]", path_of(id(left)))[:90]] += 1
            break
        obj = queue.popleft()
        report.objects += 1
        oid = id(obj)
        report.types[type(obj).__name__] += 1
        if isinstance(obj, str):
            for who, kind, value in str_needles:
                if value in obj:
                    report.hits.append(Hit(path_of(oid), who, kind, repr(obj[:120])))
            continue
        if isinstance(obj, (bytes, bytearray, memoryview)):
            data = bytes(obj)
            report.hits += [Hit(path_of(oid), h.who, h.kind, h.detail)
                            for h in _search_bytes("", data, byte_needles)]
            report.hits += [Hit(path_of(oid), h.who, h.kind, h.detail) for h in _search_images("", data, True)]
            continue
        if isinstance(obj, np.ndarray):
            report.hits += _array_hits(path_of(oid), obj)
            if obj.dtype == np.uint8 and obj.ndim == 1:  # encoded bytes (a JPEG, a text) in an array
                report.hits += [Hit(path_of(oid), h.who, h.kind, h.detail)
                                for h in _search_bytes("", obj.tobytes(), byte_needles)]
                report.hits += [Hit(path_of(oid), h.who, h.kind, h.detail)
                                for h in _search_images("", obj.tobytes(), True)]
            continue
        if isinstance(obj, (list, tuple)) and len(obj) >= 8:
            report.hits += _number_sequence_hits(path_of(oid), obj, byte_needles)
        for label, child in _children(obj, keep_alive):
            push(child, oid, label)
        if include_thread_frames and isinstance(obj, threading.Thread) and obj.is_alive() and obj is not main:
            frame = sys._current_frames().get(obj.ident or -1)
            depth = 0
            while frame is not None and depth < 60:
                for label, local_vars in _frame_locals(frame, keep_alive):
                    push(local_vars, oid, f"<stack of thread {obj.name!r}>{label}")
                frame, depth = frame.f_back, depth + 1
    return report


def _array_hits(where: str, array: np.ndarray) -> list[Hit]:
    if array.dtype == np.uint8 and array.ndim in (2, 3) and min(array.shape[:2]) >= MIN_IMAGE_SIDE:
        faces = faces_in(array)
        if faces:
            return [Hit(where, "-", "face image", f"array {array.shape} with {faces} face(s)")]
    if array.dtype.kind == "f" and array.size == 128 and np.isfinite(array).all() and np.any(array):
        return [Hit(where, "-", "face template", f"float vector of 128 ({array.dtype}), as SFace makes")]
    return []


def _number_sequence_hits(where: str, seq: list[Any] | tuple[Any, ...],
                          byte_needles: list[tuple[str, str, bytes]]) -> list[Hit]:
    """Bytes kept as a list of ints (pyscard answers APDUs so), a face template as a list of floats."""
    if all(type(v) is int and 0 <= v <= 255 for v in seq):
        return [Hit(where, h.who, h.kind, h.detail) for h in _search_bytes("", bytes(seq), byte_needles)]
    if len(seq) == 128 and all(type(v) is float for v in seq):
        return [Hit(where, "-", "face template", "a list of 128 floats, as SFace makes")]
    return []


def _children(obj: Any, keep_alive: list[Any]) -> Iterator[tuple[str, Any]]:
    """(label, child) of what `obj` holds, named where a person can read the name."""
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            yield f"[{_short(key)}]", value
            yield "<key>", key
        return
    if isinstance(obj, (list, tuple, collections.deque)):
        for i, value in enumerate(list(obj)):
            yield f"[{i}]", value
        return
    if isinstance(obj, (set, frozenset)):
        for value in list(obj):
            yield "{}", value
        return
    if isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
        yield ".__func__", obj.__func__
        return
    if isinstance(obj, types.FunctionType):  # closures and defaults, never the module's globals
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
            try:
                yield f"<closure {obj.__qualname__}.{name}>", cell.cell_contents
            except ValueError:  # an empty cell
                continue
        for i, value in enumerate(obj.__defaults__ or ()):
            yield f"<default {i} of {obj.__qualname__}>", value
        return
    if isinstance(obj, types.TracebackType):  # a kept exception: the locals of every frame it went through
        tb: types.TracebackType | None = obj
        while tb is not None:
            yield from _frame_locals(tb.tb_frame, keep_alive)
            tb = tb.tb_next
        return
    if isinstance(obj, types.FrameType):  # a generator's or coroutine's
        yield from _frame_locals(obj, keep_alive)
        return
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        for name, value in list(attrs.items()):
            yield f".{name}", value
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                yield f".{name}", getattr(obj, name)
            except AttributeError:
                continue
    for child in gc.get_referents(obj):  # C-level holders: cells, partials, queues, caches, iterators
        if child is not attrs:
            yield f"<{type(obj).__name__} holds>", child


def _frame_locals(frame: types.FrameType, keep_alive: list[Any]) -> Iterator[tuple[str, Any]]:
    if frame.f_code.co_name == "<module>":  # a module's frame: its locals are its globals
        return
    local_vars = dict(frame.f_locals)
    keep_alive.append(local_vars)  # a copy made here must live until the walk ends (ids stay unique)
    yield f"<locals of {frame.f_code.co_name}>", local_vars


def _short(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


# -- what this process writes -------------------------------------------------------------------------------
class WrittenFiles:
    """Every file this process opens for writing (or renames or copies into place) while active,
    seen through Python's audit hooks: the files the terminal wrote, wherever they are. Opens
    made inside C libraries (SQLite, OpenCV) are not seen; their files are in the folders searched.
    The hook stays installed for the rest of the process (Python cannot remove one); inactive, it
    returns at once."""

    _installed: WrittenFiles | None = None

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self.active = False
        self._lock = threading.Lock()

    @classmethod
    def watcher(cls) -> WrittenFiles:
        """The one watcher of this process (an audit hook cannot be removed once added)."""
        if cls._installed is None:
            cls._installed = cls()
            sys.addaudithook(cls._installed._hook)
        return cls._installed

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
            if writing and isinstance(path, (str, bytes, os.PathLike)):
                self._add(path)
        elif event in ("os.rename", "shutil.copyfile"):
            self._add(args[1])

    def _add(self, path: Any) -> None:
        text = os.fsdecode(path)
        if not text.startswith(("/dev/", "/proc/")):
            with self._lock:
                self.paths.add(Path(os.path.abspath(text)))

    def __enter__(self) -> Self:
        with self._lock:
            self.paths = set()
        self.active = True
        return self

    def __exit__(self, *_exc: object) -> None:
        self.active = False


def search_payloads(payloads: Iterable[tuple[str, bytes]], people: Iterable[Person]) -> list[Hit]:
    """(topic, payload) as the help desk received them."""
    people = list(people)
    needles = [(p.label, kind, pattern) for p in people for kind, pattern in p.byte_needles()]
    hits: list[Hit] = []
    for n, (topic, payload) in enumerate(payloads):
        hits += _search_bytes(f"mqtt message {n} on {topic}", payload, needles)
        hits += _search_images(f"mqtt message {n} on {topic}", payload, False)
    return hits
