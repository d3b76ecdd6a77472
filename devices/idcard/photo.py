"""Photo decoding plug-ins: the card's 1024-byte WLT block to a 102x126 BMP.

WLT is a licensed format: only a vendor's shared library decodes it. The driver takes
any object with `decode(wlt) -> bmp` and, with none configured, reports the photo as
unavailable rather than inventing one.

Vendor libraries seen in public code share one calling convention,
``int unpack(char *wlt, char *out, int flag)``, returning 1 on success and writing
either a whole BMP or the raw 102x126x3 BGR pixels into `out`; the symbol name and the
flag differ per vendor (e.g. "unpack", "ZKID_PHunpack"). `CtypesWltDecoder` handles both
outputs. It has not been run against a real vendor library here: check the vendor's
header before relying on it in the field.
"""
from __future__ import annotations

import ctypes
import os
import struct
from typing import Protocol, runtime_checkable

from devices.base import DeviceError

PHOTO_WIDTH = 102
PHOTO_HEIGHT = 126
BMP_SIZE = 38862  # 54-byte header + 126 rows of 308 bytes (306 padded to a multiple of 4)
RAW_BGR_SIZE = PHOTO_WIDTH * PHOTO_HEIGHT * 3


class PhotoDecodeError(DeviceError):
    """The photo block could not be decoded (corrupt block, decoder refused it)."""


class PhotoDecoderUnavailable(DeviceError):
    """The configured decoder cannot be loaded: a configuration or installation fault."""


@runtime_checkable
class PhotoDecoder(Protocol):
    """Turns a card's photo block into a BMP file's bytes; raises PhotoDecodeError if it cannot."""

    def decode(self, wlt: bytes) -> bytes: ...


def bmp_from_rows(width: int, height: int, bgr_bottom_up: bytes) -> bytes:
    """A 24-bit BMP from unpadded BGR rows stored bottom row first (BMP's own order)."""
    row = width * 3
    if len(bgr_bottom_up) < row * height:
        raise PhotoDecodeError(f"pixel data is {len(bgr_bottom_up)} bytes, {row * height} needed")
    pad = (4 - row % 4) % 4
    pixels = b"".join(
        bgr_bottom_up[y * row : (y + 1) * row] + b"\x00" * pad for y in range(height)
    )
    header = struct.pack(
        "<2sIHHIIiiHHIIiiII",
        b"BM", 54 + len(pixels), 0, 0, 54,
        40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0,
    )
    return header + pixels


class CtypesWltDecoder:
    """A vendor WLT library loaded with ctypes (see the module notes for the calling convention)."""

    def __init__(self, library: str, symbol: str = "unpack", flag: int = 0) -> None:
        if not os.path.exists(library):
            raise PhotoDecoderUnavailable(
                f"photo decoder library {library} does not exist; install the reader vendor's "
                "WLT library or leave photo_decoder empty"
            )
        try:
            lib = ctypes.CDLL(library)
        except OSError as exc:
            raise PhotoDecoderUnavailable(f"photo decoder library {library} cannot be loaded: {exc}") from None
        try:
            fn = getattr(lib, symbol)
        except AttributeError:
            raise PhotoDecoderUnavailable(f"photo decoder library {library} has no function {symbol!r}") from None
        fn.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int)
        fn.restype = ctypes.c_int
        self._fn = fn
        self._flag = flag
        self.library = library
        self.symbol = symbol

    def decode(self, wlt: bytes) -> bytes:
        src = ctypes.create_string_buffer(bytes(wlt), max(len(wlt), 1024))
        out = ctypes.create_string_buffer(BMP_SIZE + 1024)
        rc = self._fn(src, out, self._flag)
        if rc != 1:
            raise PhotoDecodeError(f"{os.path.basename(self.library)}:{self.symbol} returned {rc}")
        data = out.raw
        ctypes.memset(out, 0, len(out))  # the decoded face is personal data
        ctypes.memset(src, 0, len(src))
        if data[:2] == b"BM":
            size = int.from_bytes(data[2:6], "little")
            return data[: size if 54 < size <= len(data) else BMP_SIZE]
        return bmp_from_rows(PHOTO_WIDTH, PHOTO_HEIGHT, data[:RAW_BGR_SIZE])


EMULATOR_DECODER = "emulator"


def load_photo_decoder(spec: str, symbol: str = "unpack") -> PhotoDecoder | None:
    """The decoder named in config: "" for none, "emulator" for the emulator's test encoding,
    or the path of a vendor shared library (with `symbol` as its unpack function)."""
    spec = spec.strip()
    if not spec:
        return None
    if spec == EMULATOR_DECODER:
        from devices.idcard.emulator_photo import EmulatorPhotoDecoder

        return EmulatorPhotoDecoder()
    return CtypesWltDecoder(spec, symbol)
