"""Document -> ESC/POS bytes for Chinese thermal receipt printers.

python-escpos (3.1) builds, through its `Dummy` printer, the commands it builds well:
alignment (ESC a), emphasis (ESC E), underline (ESC -), character size (GS ! via
`custom_size`), the printer's native QR code (GS ( k fn 65/67/69/80/81, `native=True`;
without it python-escpos sends the QR as a picture), raster images (GS v 0) and the cut
(ESC d 6 + GS V). What it gets wrong is written here by hand:

- Chinese text: python-escpos picks a code page per string and turns characters of
  strings without a common hanzi (￥, ，。：) into '?'. Text is encoded here with the
  model's encoding (gb18030, gbk or utf-8) and, when `chinese_mode_command` is set,
  wrapped in FS & (enter Chinese mode) ... FS . (leave it).
- Size: `set(double_width=...)` sends ESC !, which on Chinese printers sizes ASCII only;
  GS ! sizes both ASCII and hanzi, so sizes go through `custom_size` (GS !).
- Underline for hanzi is FS - (ESC - covers ASCII only on these models): both are sent.

Styles are sent only when they change, which matters at 9600 baud.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import segno
from escpos.constants import QR_ECLEVEL_H, QR_ECLEVEL_L, QR_ECLEVEL_M, QR_ECLEVEL_Q
from escpos.printer import Dummy
from PIL import Image as PILImage
from PIL import ImageOps

from devices.base import DeviceError
from devices.receipt_printer.document import (
    DOTS_PER_MM,
    LINE_DOTS,
    PAPER_DOTS,
    Align,
    Cut,
    Document,
    Feed,
    Image,
    Qr,
    Rule,
    Text,
    columns_for,
)

log = logging.getLogger(__name__)

Encoding = Literal["gb18030", "gbk", "utf-8"]
ENCODINGS: tuple[str, ...] = ("gb18030", "gbk", "utf-8")

ESC_INIT = b"\x1b@"
FS_CHINESE_ON = b"\x1c&"
FS_CHINESE_OFF = b"\x1c."
CUT_FEED_LINES = 6  # python-escpos's ESC d 6 before GS V: the last line passes the cutter

_EC = {"L": QR_ECLEVEL_L, "M": QR_ECLEVEL_M, "Q": QR_ECLEVEL_Q, "H": QR_ECLEVEL_H}
_ALIGN = {Align.LEFT: "left", Align.CENTER: "center", Align.RIGHT: "right"}


class ReceiptTooWide(DeviceError, ValueError):
    """A block cannot be printed on this paper (a QR code wider than the paper). A DeviceError,
    so the kiosk offers the receipt another way instead of waiting for paper that never comes."""


@dataclass(frozen=True)
class Encoded:
    """The bytes of one document and what a driver needs to know about them."""

    data: bytes
    height_dots: int  # paper the receipt takes, for the wait before confirming it printed
    unencodable: int  # characters the model's encoding lacks, printed as '?'

    @property
    def height_mm(self) -> float:
        return self.height_dots / DOTS_PER_MM


@dataclass
class _Style:
    align: Align = Align.LEFT
    bold: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1


def qr_size_dots(qr: Qr) -> int:
    """Side of the printed QR code in dots (the printer chooses the smallest version, as segno)."""
    code = segno.make_qr(qr.data, error=qr.error_correction.value.lower(), boost_error=False)
    return int(code.symbol_size(scale=qr.module_size, border=0)[0])


class EscPosEncoder:
    """Turns Documents into ESC/POS bytes for one printer model's settings."""

    def __init__(self, encoding: Encoding = "gb18030", chinese_mode_command: bool = True,
                 paper_width: int = 80) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding {encoding!r} unknown; known: {', '.join(ENCODINGS)}")
        self.encoding = encoding
        self.chinese_mode_command = chinese_mode_command
        self.paper_width = paper_width
        self.dots = PAPER_DOTS[paper_width]
        self.columns = columns_for(paper_width)

    # -- the pieces -------------------------------------------------------------------------
    def _printer(self) -> Dummy:
        printer = Dummy()
        # python-escpos prints a warning for images unless the profile knows the paper width;
        # an instance attribute, so the shared profile class stays untouched
        data = dict(printer.profile.profile_data)
        data["media"] = {"width": {"pixels": self.dots, "mm": self.paper_width - 8}, "dpi": 203}
        printer.profile.profile_data = data
        return printer

    def encode_text(self, text: str) -> tuple[bytes, int]:
        """One line's characters as the printer expects them; returns (bytes, unencodable count)."""
        if text.isascii():
            return text.encode("ascii"), 0
        out = bytearray()
        bad = 0
        for ch in text:
            try:
                out += ch.encode(self.encoding)
            except UnicodeEncodeError:
                out += b"?"
                bad += 1
        if self.chinese_mode_command:
            return FS_CHINESE_ON + bytes(out) + FS_CHINESE_OFF, bad
        return bytes(out), bad

    def _style(self, printer: Dummy, current: _Style, wanted: _Style) -> None:
        if wanted.align != current.align:
            printer.set(align=_ALIGN[wanted.align])
        if wanted.bold != current.bold:
            printer.set(bold=wanted.bold)
        if wanted.underline != current.underline:
            printer.set(underline=wanted.underline)
            printer._raw(b"\x1c-" + bytes([wanted.underline]))  # FS -: the same for hanzi
        if (wanted.width, wanted.height) != (current.width, current.height):
            printer.set(custom_size=True, width=wanted.width, height=wanted.height)
        current.align, current.bold, current.underline = wanted.align, wanted.bold, wanted.underline
        current.width, current.height = wanted.width, wanted.height

    def _image(self, block: Image) -> PILImage.Image:
        """A 1-bit picture no wider than the paper. It is placed with ESC a rather than padded
        with white: padding would cost seconds of line time at 9600 baud."""
        image = ImageOps.exif_transpose(block.image)
        if image.mode in ("RGBA", "LA", "P"):
            background = PILImage.new("RGBA", image.size, "white")
            image = PILImage.alpha_composite(background, image.convert("RGBA"))
        image = image.convert("L")
        if image.width > self.dots:
            height = max(1, round(image.height * self.dots / image.width))
            image = image.resize((self.dots, height), PILImage.Resampling.LANCZOS)
        return image.convert("1")  # Floyd-Steinberg dithering, as a thermal head prints

    # -- the document -----------------------------------------------------------------------
    def encode(self, document: Document) -> Encoded:
        """All of `document` as bytes, starting with ESC @ so no style of a previous job remains."""
        printer = self._printer()
        printer._raw(ESC_INIT)
        style = _Style()
        height = 0
        bad = 0
        for block in document.blocks:
            if isinstance(block, Text):
                wanted = _Style(block.align, block.bold, block.underline,
                                2 if block.double_width else 1, 2 if block.double_height else 1)
                self._style(printer, style, wanted)
                for line in block.lines(self.columns):
                    data, unencodable = self.encode_text(line)
                    bad += unencodable
                    printer._raw(data + b"\n")
                    height += LINE_DOTS + (24 if block.double_height else 0)
            elif isinstance(block, Rule):
                self._style(printer, style, _Style(align=style.align))
                printer._raw(block.char.encode("ascii") * self.columns + b"\n")
                height += LINE_DOTS
            elif isinstance(block, Qr):
                side = qr_size_dots(block)
                if side > self.dots:
                    raise ReceiptTooWide(
                        f"QR code of {len(block.data)} characters at module size {block.module_size} is "
                        f"{side} dots wide; the paper has {self.dots}: use a smaller module size"
                    )
                self._style(printer, style, _Style(align=block.align, bold=style.bold,
                                                   underline=style.underline, width=style.width,
                                                   height=style.height))
                printer.qr(block.data, ec=_EC[block.error_correction.value], size=block.module_size, native=True)
                printer._raw(b"\n")  # fn 81 prints the symbol; LF ends its line as for text
                height += side + LINE_DOTS
            elif isinstance(block, Image):
                image = self._image(block)
                self._style(printer, style, _Style(align=block.align, bold=style.bold,
                                                   underline=style.underline, width=style.width,
                                                   height=style.height))
                printer.image(image, impl="bitImageRaster", center=False)
                height += image.height
            elif isinstance(block, Feed):
                if block.lines:
                    printer.print_and_feed(block.lines)
                    height += block.lines * LINE_DOTS
            elif isinstance(block, Cut):
                printer.cut(mode="PART" if block.partial else "FULL")
                height += CUT_FEED_LINES * LINE_DOTS
        # leave the printer as ESC @ left it, for whoever prints next
        self._style(printer, style, _Style())
        if bad:
            log.warning("receipt: %d characters are not in %s and print as '?'", bad, self.encoding)
        return Encoded(printer.output, height, bad)


# -- real-time status (DLE EOT n) ---------------------------------------------------------------
# Every answer byte has bit 1 and bit 4 set and bits 0 and 7 clear, so it can never be
# XON (0x11) or XOFF (0x13) and a byte that does not match is line noise.
DLE_EOT = b"\x10\x04"
STATUS_PRINTER = 1  # bit 3: offline
STATUS_OFFLINE = 2  # why offline: cover, feed button, paper end, error
STATUS_ERROR = 3  # which error: cutter, unrecoverable, auto-recoverable
STATUS_PAPER = 4  # the paper roll sensor
GS_R_PAPER = b"\x1dr\x01"  # GS r 1: paper sensor status (not real-time: answered in turn)
STATUS_FIXED_MASK = 0x93
STATUS_FIXED_BITS = 0x12

PRINTER_OFFLINE = 0x08  # n=1
OFFLINE_COVER_OPEN = 0x04  # n=2
OFFLINE_FEED_BUTTON = 0x08
OFFLINE_PAPER_END = 0x20
OFFLINE_ERROR = 0x40
ERROR_CUTTER = 0x08  # n=3: autocutter error (paper jammed at the cutter)
ERROR_UNRECOVERABLE = 0x20
ERROR_AUTO_RECOVERABLE = 0x40  # e.g. the head is too hot; clears by itself
PAPER_NEAR_END = 0x0C  # n=4: bits 2-3
PAPER_END = 0x60  # n=4: bits 5-6
GS_R_NEAR_END = 0x03  # GS r 1: bits 0-1
GS_R_END = 0x0C  # GS r 1: bits 2-3

STATUS_NAMES = {
    STATUS_PRINTER: "printer status",
    STATUS_OFFLINE: "offline cause",
    STATUS_ERROR: "error cause",
    STATUS_PAPER: "paper sensor",
}


def status_query(n: int) -> bytes:
    """DLE EOT n: answered at once, even while the printer is busy or offline."""
    if n not in STATUS_NAMES:
        raise ValueError(f"DLE EOT {n} is not a status query (1..4)")
    return DLE_EOT + bytes([n])


def is_status_byte(value: int) -> bool:
    return value & STATUS_FIXED_MASK == STATUS_FIXED_BITS
