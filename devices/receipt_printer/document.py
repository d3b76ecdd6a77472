"""A receipt as a printer-neutral list of blocks, and the column arithmetic of thermal paper.

The kiosk builds a Document (kiosk/receipts.py fills templates into one); a driver turns
it into its wire format (devices/receipt_printer/escpos.py for ESC/POS). Keeping the
document free of printer bytes lets the same receipt be shown on screen or sent by SMS
when the paper has run out (`Document.plain_text`).

Columns: thermal printers print ASCII in 12-dot cells and, in Chinese mode, every
multi-byte character (hanzi, full-width punctuation such as ，。：￥, but also ·, —, é)
in a 24-dot cell. So here an ASCII character is 1 column and anything else is 2:
this is how the printer counts, not Unicode's East-Asian-width table. An 80 mm printer
prints 576 dots = 48 columns, a 58 mm one 384 dots = 32 columns.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterator, Union

from PIL import Image as PILImage

ASCII_DOTS = 12  # font A cell width in dots
HANZI_DOTS = 24  # a multi-byte character's cell width in Chinese mode
LINE_DOTS = 30  # a normal line's pitch: 24-dot characters + 6 dots of line spacing
DOTS_PER_MM = 8  # 203 dpi heads, the norm for receipt printers

# printable width in dots by paper width in mm (the head does not reach the paper's edges)
PAPER_DOTS: dict[int, int] = {58: 384, 80: 576}

# characters a line must not begin with (Chinese line-breaking rule, 避头点)
_NO_LINE_START = set("，。、：；！？）》」』】〕〉”’,.;:!?)]}%")
# characters a line must not end with (避尾点)
_NO_LINE_END = set("（《「『【〔〈“‘([{")


class Align(str, enum.Enum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


class ErrorCorrection(str, enum.Enum):
    """QR error-correction levels: share of the code that may be damaged (7/15/25/30 %)."""

    L = "L"
    M = "M"
    Q = "Q"
    H = "H"


def char_columns(ch: str) -> int:
    """Columns one character takes in Chinese mode: 1 for ASCII, 2 for anything else."""
    return 1 if ord(ch) < 0x80 else 2


def text_columns(text: str) -> int:
    return sum(char_columns(ch) for ch in text)


def columns_for(paper_width_mm: int) -> int:
    """Columns of normal-size ASCII on this paper (48 on 80 mm, 32 on 58 mm)."""
    try:
        return PAPER_DOTS[paper_width_mm] // ASCII_DOTS
    except KeyError:
        raise ValueError(f"paper width {paper_width_mm} mm unknown; known: {sorted(PAPER_DOTS)}") from None


def _is_word_char(ch: str) -> bool:
    return ord(ch) < 0x80 and not ch.isspace()


def wrap(text: str, columns: int, indent: int = 0) -> list[str]:
    """Break `text` into lines of at most `columns` columns.

    Hanzi may break anywhere; a run of ASCII letters and digits (a URL, a number) breaks
    at spaces, and only when longer than a line inside itself. Closing punctuation never
    starts a line and opening punctuation never ends one. Continuation lines start with
    `indent` spaces (a hanging indent for list items and "label：value"). Explicit
    newlines in `text` are kept.
    """
    if columns < 2:
        raise ValueError(f"cannot wrap text into {columns} columns")
    indent = max(0, min(indent, columns // 2))
    out: list[str] = []
    for paragraph in text.split("\n"):
        out.extend(_wrap_paragraph(paragraph, columns, indent))
    return out


def _tokens(paragraph: str) -> Iterator[str]:
    """Units that stay together: an ASCII word, one space, or one other character."""
    i = 0
    while i < len(paragraph):
        ch = paragraph[i]
        if _is_word_char(ch):
            j = i
            while j < len(paragraph) and _is_word_char(paragraph[j]):
                j += 1
            yield paragraph[i:j]
            i = j
        else:
            yield ch
            i += 1


def _wrap_paragraph(paragraph: str, columns: int, indent: int) -> list[str]:
    lines: list[str] = []
    current = ""  # the line being filled, hanging indent included
    hang = " " * indent

    def fits(text: str) -> bool:
        return text_columns(text) <= columns

    for token in _tokens(paragraph):
        if fits(current + token):
            if token == " " and lines and not current.strip():
                continue  # a space at a line break vanishes
            current += token
            continue
        if token == " ":
            lines.append(current.rstrip())
            current = hang
            continue
        if text_columns(token) > columns - indent:  # a word longer than a line: hard breaks
            for ch in token:
                if not fits(current + ch):
                    lines.append(current.rstrip())
                    current = hang
                current += ch
            continue
        # the token starts the next line; pull down what must not be separated from it
        body, carried = current, ""
        if token in _NO_LINE_START and body.strip() and not body[-1].isspace():
            keep = len(body) - 1
            while keep > 0 and _is_word_char(body[keep]) and _is_word_char(body[keep - 1]):
                keep -= 1  # a whole ASCII word moves with its punctuation
            body, carried = body[:keep], body[keep:]
        while body.strip() and body[-1] in _NO_LINE_END:
            body, carried = body[:-1], body[-1] + carried
        if not body.strip() or not fits(hang + carried + token):
            body, carried = current, ""  # nothing would be left, or it would not fit: give up the rule
        if body.strip() or lines:
            lines.append(body.rstrip())
        current = (hang if lines else "") + carried + token
    lines.append(current.rstrip())
    return lines


@dataclass(frozen=True)
class Text:
    """A paragraph, wrapped to the paper; styles apply to all its lines."""

    text: str
    align: Align = Align.LEFT
    bold: bool = False
    underline: int = 0  # 0 off, 1 thin, 2 thick
    double_width: bool = False
    double_height: bool = False
    indent: int = 0  # columns of hanging indent on continuation lines

    def __post_init__(self) -> None:
        if self.underline not in (0, 1, 2):
            raise ValueError(f"underline is 0, 1 or 2, not {self.underline!r}")
        if self.indent < 0:
            raise ValueError("indent cannot be negative")

    def lines(self, columns: int) -> list[str]:
        """The printed lines on paper of `columns` normal columns."""
        return wrap(self.text, columns // (2 if self.double_width else 1), self.indent)


@dataclass(frozen=True)
class Rule:
    """A line across the paper, printed as a row of `char` (ASCII so it is 1 column wide)."""

    char: str = "-"

    def __post_init__(self) -> None:
        if len(self.char) != 1 or char_columns(self.char) != 1 or not self.char.isprintable():
            raise ValueError(f"a rule is drawn with one printable ASCII character, not {self.char!r}")


@dataclass(frozen=True)
class Qr:
    """A QR code printed by the printer itself from its data (never sent as a picture)."""

    data: str
    module_size: int = 6  # dots per module, 1..16
    error_correction: ErrorCorrection = ErrorCorrection.M
    align: Align = Align.CENTER

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("a QR code needs data")
        if not 1 <= self.module_size <= 16:
            raise ValueError(f"QR module size is 1..16 dots, not {self.module_size}")
        if len(self.data.encode("utf-8")) > 7089:
            raise ValueError("QR data longer than a QR code holds")


@dataclass(frozen=True, eq=False)
class Image:
    """A picture (logo, seal); printed as 1-bit raster, scaled down to the paper if wider."""

    image: PILImage.Image
    align: Align = Align.CENTER


@dataclass(frozen=True)
class Feed:
    """Blank lines."""

    lines: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.lines <= 255:
            raise ValueError(f"feed is 0..255 lines, not {self.lines}")


@dataclass(frozen=True)
class Cut:
    """Feed the printed part past the cutter and cut. Partial leaves a hinge (less jamming)."""

    partial: bool = True


Block = Union[Text, Rule, Qr, Image, Feed, Cut]


@dataclass
class Document:
    """A receipt: blocks in printing order. Builder methods return self for chaining."""

    blocks: list[Block] = field(default_factory=list)

    def add(self, block: Block) -> "Document":
        self.blocks.append(block)
        return self

    def text(self, text: str, *, align: Align | str = Align.LEFT, bold: bool = False, underline: int = 0,
             double_width: bool = False, double_height: bool = False, indent: int = 0) -> "Document":
        return self.add(Text(text, Align(align), bold, underline, double_width, double_height, indent))

    def rule(self, char: str = "-") -> "Document":
        return self.add(Rule(char))

    def qr(self, data: str, *, module_size: int = 6, error_correction: ErrorCorrection | str = ErrorCorrection.M,
           align: Align | str = Align.CENTER) -> "Document":
        return self.add(Qr(data, module_size, ErrorCorrection(error_correction), Align(align)))

    def image(self, image: PILImage.Image, *, align: Align | str = Align.CENTER) -> "Document":
        return self.add(Image(image, Align(align)))

    def feed(self, lines: int = 1) -> "Document":
        return self.add(Feed(lines))

    def cut(self, partial: bool = True) -> "Document":
        return self.add(Cut(partial))

    @property
    def ends_with_cut(self) -> bool:
        return bool(self.blocks) and isinstance(self.blocks[-1], Cut)

    def plain_text(self, columns: int = 48) -> str:
        """The receipt as text lines (for a screen or SMS when paper is out, and for logs of
        receipt *layout* in tests; never log a filled receipt with personal data)."""
        out: list[str] = []
        for block in self.blocks:
            if isinstance(block, Text):
                width = columns // (2 if block.double_width else 1)
                for line in block.lines(columns):
                    pad = width - text_columns(line)
                    if block.align is Align.CENTER:
                        line = " " * (pad // 2) + line
                    elif block.align is Align.RIGHT:
                        line = " " * pad + line
                    out.append(line.rstrip())
            elif isinstance(block, Rule):
                out.append(block.char * columns)
            elif isinstance(block, Qr):
                out.append(f"[QR {block.data}]")
            elif isinstance(block, Image):
                out.append(f"[image {block.image.width}x{block.image.height}]")
            elif isinstance(block, Feed):
                out.extend([""] * block.lines)
        return "\n".join(out)
