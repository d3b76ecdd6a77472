"""The emulator's test photo encoding, and the only decoder that understands it.

The emulator cannot produce real WLT (a licensed format), so its cards carry this
clearly fake encoding in the 1024-byte photo block:

    b"EMU1" | width (1 byte) | height (1 byte) | zlib(grayscale pixels, top row first) | zero padding

`EmulatorPhotoDecoder` implements devices.idcard.photo.PhotoDecoder for this encoding
only; a real WLT block makes it raise PhotoDecodeError, so an emulator decoder left in
a field configuration can never pass a real card's photo off as decoded.
"""
from __future__ import annotations

import hashlib
import zlib

from devices.idcard.photo import PHOTO_HEIGHT, PHOTO_WIDTH, PhotoDecodeError, bmp_from_rows

MAGIC = b"EMU1"
BLOCK_LEN = 1024


def encode_emulator_photo(gray: bytes, width: int = PHOTO_WIDTH, height: int = PHOTO_HEIGHT) -> bytes:
    """Pack grayscale pixels (top row first) into a 1024-byte photo block."""
    if len(gray) != width * height or not (0 < width < 256 and 0 < height < 256):
        raise ValueError(f"need {width}x{height} grayscale pixels with sides below 256")
    packed = MAGIC + bytes([width, height]) + zlib.compress(bytes(gray), 9)
    if len(packed) > BLOCK_LEN:
        raise ValueError(f"test photo compresses to {len(packed)} bytes; the block holds {BLOCK_LEN}")
    return packed + bytes(BLOCK_LEN - len(packed))


def synthetic_portrait(seed: str, width: int = PHOTO_WIDTH, height: int = PHOTO_HEIGHT) -> bytes:
    """A deterministic face-like drawing (oval head, eyes, mouth) that varies with `seed`.

    Flat shapes keep it small after compression; it is a test pattern, not a face.
    """
    h = hashlib.sha256(seed.encode("utf-8")).digest()
    background = 200 + h[0] % 40
    skin = 120 + h[1] % 60
    cx, cy = width // 2, height // 2 + 4
    rx, ry = 30 + h[2] % 8, 40 + h[3] % 8
    eye_dx, eye_y = 11 + h[4] % 4, cy - 10
    out = bytearray(width * height)
    for y in range(height):
        for x in range(width):
            v = background
            if ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0:
                v = skin
                if abs(y - eye_y) <= 2 and (abs(x - cx + eye_dx) <= 3 or abs(x - cx - eye_dx) <= 3):
                    v = 30
                elif abs(y - (cy + 18)) <= 1 and abs(x - cx) <= 10:
                    v = 60
            elif y > cy + ry - 6:
                v = 80  # shoulders
            out[y * width + x] = v
    return bytes(out)


class EmulatorPhotoDecoder:
    """Decodes the emulator's test encoding (and nothing else) to a 24-bit BMP."""

    def decode(self, wlt: bytes) -> bytes:
        if not wlt.startswith(MAGIC) or len(wlt) < len(MAGIC) + 2:
            raise PhotoDecodeError("photo block is not in the emulator's test encoding")
        width, height = wlt[4], wlt[5]
        inflater = zlib.decompressobj()
        try:
            gray = inflater.decompress(wlt[6:], width * height + 1)
        except zlib.error as exc:
            raise PhotoDecodeError(f"emulator test photo is corrupt: {exc}") from None
        if len(gray) != width * height:
            raise PhotoDecodeError(f"emulator test photo holds {len(gray)} pixels, {width}x{height} expected")
        rows = [gray[y * width : (y + 1) * width] for y in range(height)]
        bgr = b"".join(bytes(v for v in row for _ in range(3)) for row in reversed(rows))
        return bmp_from_rows(width, height, bgr)
