"""What came out of the emulated receipt printer: parsed elements, and their picture.

The emulator (devices/receipt_printer/emulator.py) turns ESC/POS bytes into these
elements; `render` draws them as the printer would, at its dot width: ASCII in 12x24-dot
cells, every multi-byte (Chinese-mode) character in a 24x24 cell, both scaled by the
character size (GS !, ESC !, FS !), the QR code drawn by segno from the data the printer
stored, pictures dot for dot. A person looks at the PNG to judge the receipt; a test
decodes its QR code with zxing-cpp to prove the print is scannable.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import segno
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CELL_HEIGHT = 24
ASCII_CELL = 12
HANZI_CELL = 24
TOP_MARGIN = 24  # white paper above the first line, as it comes out of the cutter
BOTTOM_MARGIN = 24
INK = 0
PAPER = 255


class FontMissing(RuntimeError):
    """The emulator's font is not installed."""


@dataclass(frozen=True)
class Run:
    """Characters of one style and one character set on a line."""

    text: str
    wide: bool  # Chinese-mode multi-byte characters (24-dot cells) vs ASCII/code page (12-dot)
    bold: bool = False
    underline: int = 0
    width: int = 1  # size multipliers, 1..8
    height: int = 1

    @property
    def dots(self) -> int:
        return len(self.text) * (HANZI_CELL if self.wide else ASCII_CELL) * self.width


@dataclass(frozen=True)
class TextLine:
    """One printed line (ended by LF, ESC d, a cut, or the printer's own wrap at the paper edge)."""

    runs: tuple[Run, ...]
    align: str = "left"  # ESC a: left, center, right
    advance: int = 30  # dots the paper moves for this line
    wrapped: bool = False  # True when the printer broke it because it ran past the paper edge

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.runs)

    @property
    def dots(self) -> int:
        return sum(r.dots for r in self.runs)

    @property
    def height(self) -> int:
        return max((CELL_HEIGHT * r.height for r in self.runs), default=CELL_HEIGHT)

    def style(self) -> dict[str, object]:
        """The style of the line's printed characters when they share one (spaces aside)."""
        runs = [r for r in self.runs if r.text.strip()] or list(self.runs)
        if not runs:
            return {}
        keys = ("bold", "underline", "width", "height")
        values = {k: {getattr(r, k) for r in runs} for k in keys}
        return {k: (v.pop() if len(v) == 1 else "mixed") for k, v in values.items()}


@dataclass(frozen=True)
class QrCode:
    """A QR code printed by GS ( k fn 81 from the data stored by fn 80."""

    data: bytes
    module_size: int
    error_correction: str  # L, M, Q, H
    model: int  # 1, 2, or 3 for micro QR
    align: str = "left"

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def symbol(self) -> segno.QRCode:
        content: str | bytes
        try:
            content = self.data.decode("utf-8")
        except UnicodeDecodeError:
            content = self.data
        if self.model == 3:
            return segno.make_micro(content, error=self.error_correction.lower())
        return segno.make_qr(content, error=self.error_correction.lower(), boost_error=False)

    @property
    def side(self) -> int:
        return int(self.symbol().symbol_size(scale=self.module_size, border=0)[0])


@dataclass(frozen=True, eq=False)
class Picture:
    """A raster picture (GS v 0) or one stripe of a column picture (ESC *), as printed."""

    image: Image.Image  # mode "1", already scaled by the command's density
    command: str  # "GS v 0" or "ESC *"
    align: str = "left"


@dataclass(frozen=True)
class Feed:
    """Blank paper: ESC d n, ESC J n, or an empty line."""

    dots: int


@dataclass(frozen=True)
class Cut:
    partial: bool


@dataclass(frozen=True)
class Unknown:
    """A command the emulator does not know; kept so a test can see what a driver sent."""

    data: bytes

    def __str__(self) -> str:
        return " ".join(f"{b:02X}" for b in self.data)


Element = Union[TextLine, QrCode, Picture, Feed, Cut, Unknown]


@dataclass
class Receipt:
    """One receipt: everything printed up to a cut (or up to the paper running out)."""

    number: int
    elements: list[Element] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # every command parsed, in order, e.g. "FS &"
    cut: bool = False  # False: the paper ran out or the emulator stopped before the cut
    png: Path | None = None

    def lines(self) -> list[TextLine]:
        return [e for e in self.elements if isinstance(e, TextLine)]

    def texts(self) -> list[str]:
        return [line.text for line in self.lines()]

    @property
    def text(self) -> str:
        return "\n".join(self.texts())

    def qr_codes(self) -> list[QrCode]:
        return [e for e in self.elements if isinstance(e, QrCode)]

    def pictures(self) -> list[Picture]:
        return [e for e in self.elements if isinstance(e, Picture)]

    def unknown(self) -> list[Unknown]:
        return [e for e in self.elements if isinstance(e, Unknown)]


# -- drawing -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT_PATH.is_file():
        raise FontMissing(f"{FONT_PATH} is missing: install the Debian package fonts-wqy-microhei")
    return ImageFont.truetype(str(FONT_PATH), size)


@functools.lru_cache(maxsize=4096)
def _glyph(ch: str, wide: bool, width: int, height: int, bold: bool) -> Image.Image:
    """One character cell in the printer's dots ("L", white paper, black ink).

    Drawn at the character's height; an ASCII glyph is placed by its own advance (so the
    font's equal-width digits stay evenly spaced) and squeezed when wider than its
    12-dot cell, like the printer's font A. Double width then stretches the cell.
    """
    base_w = HANZI_CELL if wide else ASCII_CELL
    cell_w, cell_h = base_w * height, CELL_HEIGHT * height  # the cell at square scale
    font = _font(22 * height)
    advance = font.getlength(ch)
    canvas_w = max(cell_w, math.ceil(advance) + (1 if bold else 0))
    canvas = Image.new("L", (canvas_w, cell_h), PAPER)
    draw = ImageDraw.Draw(canvas)
    baseline = (20 if wide else 19) * height
    x = max(0, (cell_w - advance) / 2)
    for dx in ((0, 1) if bold else (0,)):  # emphasis is a second strike one dot to the right
        draw.text((x + dx, baseline), ch, font=font, fill=INK, anchor="ls")
    if canvas_w > cell_w:
        canvas = canvas.resize((cell_w, cell_h), Image.Resampling.LANCZOS)
    wanted = (base_w * width, cell_h)
    if canvas.size != wanted:
        canvas = canvas.resize(wanted, Image.Resampling.LANCZOS)
    return canvas


def _x_for(align: str, width: int, dots: int) -> int:
    if align == "center":
        return max(0, (dots - width) // 2)
    if align == "right":
        return max(0, dots - width)
    return 0


def _draw_line(page: Image.Image, line: TextLine, top: int, dots: int) -> None:
    x = _x_for(line.align, line.dots, dots)
    bottom = top + line.height  # characters of different heights share a baseline at the bottom
    draw = ImageDraw.Draw(page)
    for run in line.runs:
        cell_w = (HANZI_CELL if run.wide else ASCII_CELL) * run.width
        cell_h = CELL_HEIGHT * run.height
        start = x
        for ch in run.text:
            if x + cell_w > dots:
                break
            if not ch.isspace():
                page.paste(_glyph(ch, run.wide, run.width, run.height, run.bold), (x, bottom - cell_h))
            x += cell_w
        if run.underline and x > start:
            thick = run.underline * run.height
            draw.rectangle((start, bottom - thick, x - 1, bottom - 1), fill=INK)


def _draw_qr(page: Image.Image, qr: QrCode, top: int, dots: int) -> None:
    size = qr.module_size
    matrix = qr.symbol().matrix
    side = len(matrix) * size
    left = _x_for(qr.align, side, dots)
    draw = ImageDraw.Draw(page)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                x, y = left + c * size, top + r * size
                draw.rectangle((x, y, x + size - 1, y + size - 1), fill=INK)


def element_height(element: Element) -> int:
    if isinstance(element, TextLine):
        return max(element.advance, element.height)
    if isinstance(element, QrCode):
        try:
            return element.side
        except (ValueError, segno.DataOverflowError):
            return 0
    if isinstance(element, Picture):
        return element.image.height
    if isinstance(element, Feed):
        return element.dots
    return 0


def render(elements: list[Element], dots: int) -> Image.Image:
    """The receipt as printed, `dots` wide, in grey levels (black ink on white paper)."""
    height = TOP_MARGIN + BOTTOM_MARGIN + sum(element_height(e) for e in elements)
    page = Image.new("L", (dots, max(height, TOP_MARGIN + BOTTOM_MARGIN)), PAPER)
    y = TOP_MARGIN
    for element in elements:
        if isinstance(element, TextLine):
            _draw_line(page, element, y, dots)
        elif isinstance(element, QrCode):
            try:
                _draw_qr(page, element, y, dots)
            except (ValueError, segno.DataOverflowError):
                pass  # a real printer prints nothing for data it cannot encode
        elif isinstance(element, Picture):
            image = element.image.crop((0, 0, min(element.image.width, dots), element.image.height))
            page.paste(image.convert("L"), (_x_for(element.align, image.width, dots), y))
        y += element_height(element)
    return page


def save_png(receipt: Receipt, dots: int, directory: Path) -> Path:
    """Render `receipt` into `directory` as receipt-NNNN.png and remember the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"receipt-{receipt.number:04d}.png"
    render(receipt.elements, dots).save(path, optimize=True)
    receipt.png = path
    return path
