"""The emulated receipt printer's brain, no I/O: ESC/POS bytes in; receipts and status out.

devices/receipt_printer/emulator.py serves it on a pseudo-terminal; tests and the bench
feed it bytes directly. It parses what Chinese ESC/POS printers understand: text in
Chinese mode (FS & / FS .) decoded with the model's encoding, styles (ESC ! E G - a,
GS !, FS ! -), native QR codes (GS ( k fn 65/67/69/80/81), raster (GS v 0) and column
(ESC *) pictures, feeds (LF, ESC d, ESC J), cuts (GS V, ESC i/m) and status queries
(DLE EOT 1-4 in real time, GS r 1 in turn). Commands it does not know are recorded as
Unknown elements and skipped, never fatal: `feed` never raises, whatever the bytes.

Status bytes follow the protocol notes: DLE EOT 4 sets 0x0C near end and 0x60 paper
end (12 / 1E / 7E for paper / near end / out); GS r 1 answers 00 / 03 / 0F.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from PIL import Image

from devices.receipt_printer import escpos as ep
from devices.receipt_printer.document import LINE_DOTS, PAPER_DOTS
from devices.receipt_printer.emulator_render import (
    Cut,
    Element,
    Feed,
    Picture,
    QrCode,
    Receipt,
    Run,
    TextLine,
    Unknown,
)

log = logging.getLogger(__name__)

ESC, FS, GS, DLE = 0x1B, 0x1C, 0x1D, 0x10
_QR_EC = {48: "L", 49: "M", 50: "Q", 51: "H"}
_ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}
# commands with fixed parameters that change nothing the emulator draws: prefix -> parameter bytes
_IGNORED: dict[bytes, tuple[str, int]] = {
    b"\x1bM": ("ESC M", 1), b"\x1bt": ("ESC t", 1), b"\x1bR": ("ESC R", 1), b"\x1b{": ("ESC {", 1),
    b"\x1bV": ("ESC V", 1), b"\x1b ": ("ESC SP", 1), b"\x1bp": ("ESC p", 3), b"\x1b$": ("ESC $", 2),
    b"\x1b\\": ("ESC \\", 2), b"\x1bc3": ("ESC c 3", 1), b"\x1bc4": ("ESC c 4", 1), b"\x1bc5": ("ESC c 5", 1),
    b"\x1bU": ("ESC U", 1), b"\x1br": ("ESC r", 1), b"\x1b=": ("ESC =", 1),
    b"\x1dB": ("GS B", 1), b"\x1db": ("GS b", 1), b"\x1dL": ("GS L", 2), b"\x1dW": ("GS W", 2),
    b"\x1dH": ("GS H", 1), b"\x1dh": ("GS h", 1), b"\x1dw": ("GS w", 1), b"\x1df": ("GS f", 1),
    b"\x1da": ("GS a", 1), b"\x1dP": ("GS P", 2), b"\x1d$": ("GS $", 2), b"\x1d\\": ("GS \\", 2),
    b"\x1cS": ("FS S", 2), b"\x1cW": ("FS W", 1), b"\x1cC": ("FS C", 1), b"\x1cp": ("FS p", 2),
}


class _NeedMore(Exception):
    """The command at the head of the buffer is not complete yet."""


@dataclass
class _Style:
    bold: bool = False
    ank_underline: int = 0
    hanzi_underline: int = 0
    ank_width: int = 1
    ank_height: int = 1
    hanzi_width: int = 1
    hanzi_height: int = 1
    align: str = "left"
    line_spacing: int = LINE_DOTS
    chinese: bool = True


@dataclass
class PaperState:
    """What the emulated printer's sensors see; changed by the scripting methods."""

    paper: str = "ok"  # ok, low, out
    jammed: bool = False
    cover_open: bool = False
    silent: bool = False
    silent_without_paper: bool = False
    lines_left: int | None = None  # run_out_after: printed lines until the paper ends

    @property
    def can_print(self) -> bool:
        return self.paper != "out" and not self.jammed and not self.cover_open

    @property
    def answers(self) -> bool:
        return not self.silent and not (self.silent_without_paper and self.paper == "out")


@dataclass
class Counters:
    received: int = 0  # bytes received since start
    queries: int = 0  # status queries received (answered or not)
    answered: int = 0
    discarded: int = 0  # print elements thrown away (no paper, jam, cover open)
    overflowed: int = 0  # bytes lost because the buffer overflowed while busy
    unknown: int = 0


class PrinterModel:
    """The printer's brain, no I/O: bytes in; elements, receipts and status answers out.

    Thread-unsafe by itself; the emulator calls it under its lock. `feed` never raises on
    any input (a hypothesis test feeds it random bytes).
    """

    def __init__(self, encoding: str = "gb18030", paper_width: int = 80, chinese_at_power_up: bool = True,
                 on_receipt: Callable[[Receipt], None] | None = None) -> None:
        if encoding not in ep.ENCODINGS:
            raise ValueError(f"encoding {encoding!r} unknown; known: {', '.join(ep.ENCODINGS)}")
        self.encoding = encoding
        self.dots = PAPER_DOTS[paper_width]
        self.chinese_at_power_up = chinese_at_power_up
        self.state = PaperState()
        self.counters = Counters()
        self.on_receipt = on_receipt
        self.receipts: list[Receipt] = []
        self._buf = bytearray()
        self._rt_tail = b""  # the last bytes received, for a DLE EOT split across reads
        self._style = _Style(chinese=chinese_at_power_up)
        self._runs: list[Run] = []
        self._line_align: str | None = None
        self._after_column_picture = False
        self._qr_data = b""
        self._qr_size = 3
        self._qr_ec = "L"
        self._qr_model = 2
        self._receipt = Receipt(1)

    # -- results ----------------------------------------------------------------------------
    @property
    def current(self) -> Receipt:
        """The receipt being printed (not yet cut)."""
        return self._receipt

    def _finish(self, cut: bool) -> None:
        receipt = self._receipt
        receipt.cut = cut
        self.receipts.append(receipt)
        self._receipt = Receipt(receipt.number + 1)
        if self.on_receipt is not None:
            self.on_receipt(receipt)

    def finish_partial(self) -> None:
        """Tear off what has been printed without a cut (paper ran out, emulator stopped)."""
        self._flush_line(end=False)
        if any(not isinstance(e, Unknown) for e in self._receipt.elements):
            self._finish(cut=False)

    # -- status -----------------------------------------------------------------------------
    def status_byte(self, n: int) -> int | None:
        """The answer to DLE EOT n (None: the printer does not answer n)."""
        s = self.state
        value = ep.STATUS_FIXED_BITS
        if n == ep.STATUS_PRINTER:
            return value | (ep.PRINTER_OFFLINE if not s.can_print else 0)
        if n == ep.STATUS_OFFLINE:
            return (value | (ep.OFFLINE_COVER_OPEN if s.cover_open else 0)
                    | (ep.OFFLINE_PAPER_END if s.paper == "out" else 0)
                    | (ep.OFFLINE_ERROR if s.jammed else 0))
        if n == ep.STATUS_ERROR:
            return value | (ep.ERROR_CUTTER if s.jammed else 0)
        if n == ep.STATUS_PAPER:
            if s.paper == "out":
                return value | ep.PAPER_NEAR_END | ep.PAPER_END
            return value | (ep.PAPER_NEAR_END if s.paper == "low" else 0)
        return None

    def gs_r_byte(self, n: int) -> int | None:
        if n in (1, 49):
            s = self.state
            if s.paper == "out":
                return ep.GS_R_NEAR_END | ep.GS_R_END
            return ep.GS_R_NEAR_END if s.paper == "low" else 0
        return None

    # -- input ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Take bytes from the line; return the bytes to answer (status queries).

        DLE EOT n is answered as it arrives, wherever it stands, as the printer's receive
        interrupt does: a half-received picture never stops status answers (and a picture
        whose bytes happen to hold 10 04 0n gets an answer too, as on real printers). As
        this printer prints instantly, everything received before the query has been
        printed when it answers, so a paper end in the receipt shows in that answer.
        """
        self.counters.received += len(data)
        answer = bytearray()
        window = self._rt_tail + data
        seen = len(self._rt_tail)  # bytes of the window that came with earlier reads
        taken = 0  # bytes of `data` handed to the parser so far
        at = window.find(ep.DLE_EOT)
        while 0 <= at < len(window) - 2:
            if at + 2 >= seen:  # completed by the new bytes (older ones were answered already)
                end = at + 3 - seen
                self._buf += data[taken:end]
                taken = end
                answer += self._parse()
                n = window[at + 2]
                self.counters.queries += 1
                value = self.status_byte(n)
                if value is not None and self.state.answers:
                    self.counters.answered += 1
                    answer.append(value)
            at = window.find(ep.DLE_EOT, at + 1)
        self._rt_tail = window[-2:]
        self._buf += data[taken:]
        answer += self._parse()
        return bytes(answer)

    def _parse(self) -> bytes:
        """Parse what the buffer holds; keep an incomplete command for the next bytes."""
        answer = bytearray()
        pos = 0
        try:
            while pos < len(self._buf):
                try:
                    used, reply = self._step(pos)
                except _NeedMore:
                    break
                pos += used
                answer += reply
        except Exception:  # the model must never stop the emulator; say what broke
            log.exception("ESC/POS emulator: parser error at byte %d; input skipped", pos)
            pos = len(self._buf)
        del self._buf[:pos]
        return bytes(answer)

    def _need(self, pos: int, count: int) -> bytes:
        if pos + count > len(self._buf):
            raise _NeedMore
        return bytes(self._buf[pos:pos + count])

    def _command(self, name: str) -> None:
        self._receipt.commands.append(name)

    def _unknown(self, data: bytes) -> None:
        self.counters.unknown += 1
        self._receipt.commands.append("unknown " + " ".join(f"{b:02X}" for b in data))
        self._receipt.elements.append(Unknown(data))

    def _step(self, pos: int) -> tuple[int, bytes]:
        """Parse the item at `pos`; return (bytes used, answer bytes)."""
        b = self._buf[pos]
        if b == 0x0A:
            self._command("LF")
            self._line_feed()
            return 1, b""
        if b == DLE:
            return self._dle(pos)
        if b == ESC:
            return self._esc(pos), b""
        if b == FS:
            return self._fs(pos), b""
        if b == GS:
            return self._gs(pos)
        if b == 0x0D:  # CR: ignored, as with auto line feed off
            return 1, b""
        if b == 0x09:
            self._text(" ", wide=False)
            return 1, b""
        if b < 0x20 or b == 0x7F:
            self._unknown(bytes([b]))
            return 1, b""
        return self._character(pos), b""

    # -- characters -----------------------------------------------------------------------------
    def _character(self, pos: int) -> int:
        b = self._buf[pos]
        if b < 0x80:
            self._text(chr(b), wide=False)
            return 1
        if not self._style.chinese:
            self._text(bytes([b]).decode("cp437"), wide=False)
            return 1
        length = self._multibyte_length(pos)
        if length == 0:  # not a valid lead byte: printed as a box
            self._text("\ufffd", wide=True)
            return 1
        raw = self._need(pos, length)
        try:
            ch = raw.decode(self.encoding)
        except UnicodeDecodeError:
            self._text("\ufffd", wide=True)
            return 1
        self._text(ch, wide=True)
        return length

    def _multibyte_length(self, pos: int) -> int:
        b = self._buf[pos]
        if self.encoding == "utf-8":
            if 0xC2 <= b <= 0xDF:
                return 2
            if 0xE0 <= b <= 0xEF:
                return 3
            if 0xF0 <= b <= 0xF4:
                return 4
            return 0
        if not 0x81 <= b <= 0xFE:
            return 0
        second = self._need(pos, 2)[1]
        if self.encoding == "gb18030" and 0x30 <= second <= 0x39:
            return 4
        return 2

    def _text(self, ch: str, wide: bool) -> None:
        if self._after_column_picture:
            self._after_column_picture = False
        s = self._style
        run = Run(ch, wide, s.bold,
                  s.hanzi_underline if wide else s.ank_underline,
                  s.hanzi_width if wide else s.ank_width,
                  s.hanzi_height if wide else s.ank_height)
        if self._line_align is None:
            self._line_align = s.align  # ESC a counts at the start of a line
        used = sum(r.dots for r in self._runs)
        if used and used + run.dots > self.dots:  # the printer wraps at the paper edge
            self._flush_line(end=True, wrapped=True)
            self._line_align = s.align
        last = self._runs[-1] if self._runs else None
        if last is not None and (last.wide, last.bold, last.underline, last.width, last.height) == (
                run.wide, run.bold, run.underline, run.width, run.height):
            self._runs[-1] = Run(last.text + ch, wide, run.bold, run.underline, run.width, run.height)
        else:
            self._runs.append(run)

    def _flush_line(self, end: bool, wrapped: bool = False) -> None:
        """Print the pending characters as a line; with `end`, an empty line still feeds one."""
        if not self._runs and not end:
            return
        if not self._runs and self._after_column_picture:
            self._after_column_picture = False  # the LF after an ESC * stripe: stripes stack
            return
        line = TextLine(tuple(self._runs), self._line_align or self._style.align, self._style.line_spacing, wrapped)
        self._runs = []
        self._line_align = None
        self._print(line)

    def _line_feed(self) -> None:
        self._flush_line(end=True)

    # -- printing and paper ---------------------------------------------------------------------
    def _print(self, element: Element) -> None:
        """Put an element on paper, or discard it when the printer cannot print."""
        state = self.state
        if not state.can_print:
            self.counters.discarded += 1
            return
        self._receipt.elements.append(element)
        if isinstance(element, Cut):
            self._finish(cut=True)
            return
        if state.lines_left is not None and not isinstance(element, Unknown):
            state.lines_left -= 1
            if state.lines_left <= 0:
                state.lines_left = None
                state.paper = "out"
                self._finish(cut=False)  # the printed part is torn off; the rest is lost

    # -- ESC ------------------------------------------------------------------------------------
    def _esc(self, pos: int) -> int:
        head = self._need(pos, 2)
        c = head[1]
        s = self._style
        if c == ord("@"):
            self._command("ESC @")
            self._runs = []  # the print buffer is cleared
            self._line_align = None
            self._style = _Style(chinese=self.chinese_at_power_up)
            return 2
        if c == ord("!"):
            n = self._need(pos, 3)[2]
            self._command("ESC !")
            s.ank_width = 2 if n & 0x20 else 1
            s.ank_height = 2 if n & 0x10 else 1
            s.bold = bool(n & 0x08)
            s.ank_underline = 1 if n & 0x80 else 0
            return 3
        if c in (ord("E"), ord("G")):
            n = self._need(pos, 3)[2]
            self._command("ESC E" if c == ord("E") else "ESC G")
            s.bold = bool(n & 1)
            return 3
        if c == ord("-"):
            n = self._need(pos, 3)[2]
            self._command("ESC -")
            s.ank_underline = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(n, 0)
            return 3
        if c == ord("a"):
            n = self._need(pos, 3)[2]
            self._command("ESC a")
            s.align = _ALIGN.get(n, s.align)
            return 3
        if c == ord("d"):
            n = self._need(pos, 3)[2]
            self._command("ESC d")
            lines = n
            if self._runs:
                self._flush_line(end=True)
                lines -= 1
            if lines > 0:
                self._print(Feed(lines * s.line_spacing))
            return 3
        if c == ord("J"):
            n = self._need(pos, 3)[2]
            self._command("ESC J")
            self._flush_line(end=False)
            self._print(Feed(n))
            return 3
        if c == ord("2"):
            self._command("ESC 2")
            s.line_spacing = LINE_DOTS
            return 2
        if c == ord("3"):
            s.line_spacing = self._need(pos, 3)[2]
            self._command("ESC 3")
            return 3
        if c in (ord("i"), ord("m")):
            self._command("ESC i" if c == ord("i") else "ESC m")
            self._flush_line(end=False)
            self._print(Cut(partial=c == ord("m")))
            return 2
        if c == ord("*"):
            return self._column_picture(pos)
        if c == ord("D"):  # tab positions, ended by NUL (at most 32)
            end = self._buf.find(b"\x00", pos + 2, pos + 35)
            if end < 0:
                if len(self._buf) < pos + 35:
                    raise _NeedMore
                self._unknown(self._need(pos, 2))
                return 2
            self._command("ESC D")
            return end - pos + 1
        return self._ignored_or_unknown(pos, head)

    def _ignored_or_unknown(self, pos: int, head: bytes) -> int:
        for prefix, (name, params) in _IGNORED.items():
            if head == prefix[:2] and (len(prefix) == 2 or self._need(pos, len(prefix)) == prefix):
                self._need(pos, len(prefix) + params)
                self._command(name)
                return len(prefix) + params
        self._unknown(head)
        return 2

    def _column_picture(self, pos: int) -> int:
        m, nl, nh = self._need(pos, 5)[2:5]
        columns = nl + 256 * nh
        if m not in (0, 1, 32, 33) or columns == 0:
            self._unknown(self._need(pos, 5))
            return 5
        rows = 24 if m >= 32 else 8
        data = self._need(pos + 5, columns * rows // 8)
        self._command("ESC *")
        self._flush_line(end=False)
        image = Image.new("1", (columns, rows), 1)
        pixels = image.load()
        assert pixels is not None
        step = rows // 8
        for x in range(columns):
            for byte_index in range(step):
                byte = data[x * step + byte_index]
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        pixels[x, byte_index * 8 + bit] = 0
        scale_x = 2 if m in (0, 32) else 1
        scale_y = 3 if rows == 8 else 1  # 8-dot modes are a third of the head's vertical density
        if scale_x != 1 or scale_y != 1:
            image = image.resize((columns * scale_x, rows * scale_y), Image.Resampling.NEAREST)
        self._print(Picture(image, "ESC *", self._style.align))
        self._after_column_picture = True
        return 5 + len(data)

    # -- FS -------------------------------------------------------------------------------------
    def _fs(self, pos: int) -> int:
        head = self._need(pos, 2)
        c = head[1]
        s = self._style
        if c == ord("&"):
            self._command("FS &")
            s.chinese = True
            return 2
        if c == ord("."):
            self._command("FS .")
            s.chinese = False
            return 2
        if c == ord("!"):
            n = self._need(pos, 3)[2]
            self._command("FS !")
            s.hanzi_width = 2 if n & 0x04 else 1
            s.hanzi_height = 2 if n & 0x08 else 1
            s.hanzi_underline = 1 if n & 0x80 else 0
            return 3
        if c == ord("-"):
            n = self._need(pos, 3)[2]
            self._command("FS -")
            s.hanzi_underline = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(n, 0)
            return 3
        return self._ignored_or_unknown(pos, head)

    # -- GS -------------------------------------------------------------------------------------
    def _gs(self, pos: int) -> tuple[int, bytes]:
        head = self._need(pos, 2)
        c = head[1]
        s = self._style
        if c == ord("!"):
            n = self._need(pos, 3)[2]
            self._command("GS !")
            width, height = ((n >> 4) & 0x07) + 1, (n & 0x07) + 1
            s.ank_width = s.hanzi_width = width
            s.ank_height = s.hanzi_height = height
            return 3, b""
        if c == ord("V"):
            m = self._need(pos, 3)[2]
            if m in (0, 1, 48, 49):
                self._command("GS V")
                self._flush_line(end=False)
                self._print(Cut(partial=m in (1, 49)))
                return 3, b""
            if m in (65, 66):
                n = self._need(pos, 4)[3]
                self._command("GS V")
                self._flush_line(end=False)
                if n:
                    self._print(Feed(n))
                self._print(Cut(partial=m == 66))
                return 4, b""
            self._unknown(self._need(pos, 3))
            return 3, b""
        if c == ord("("):
            return self._gs_paren(pos), b""
        if c == ord("v"):
            return self._raster(pos), b""
        if c == ord("r"):
            n = self._need(pos, 3)[2]
            self._command("GS r")
            self.counters.queries += 1
            value = self.gs_r_byte(n)
            if value is None or not self.state.answers:
                return 3, b""
            self.counters.answered += 1
            return 3, bytes([value])
        if c == ord("k"):
            return self._barcode(pos), b""
        return self._ignored_or_unknown(pos, head), b""

    def _gs_paren(self, pos: int) -> int:
        fn_letter, pl, ph = self._need(pos, 5)[2:5]
        length = pl + 256 * ph
        body = self._need(pos + 5, length)
        total = 5 + length
        if fn_letter != ord("k") or length < 2 or body[0] != ord("1"):  # only QR (cn 49) is drawn
            self._unknown(self._need(pos, min(total, 8)))
            return total
        fn = body[1]
        params = body[2:]
        if fn == 65 and params:
            self._command("GS ( k fn 65")
            self._qr_model = {49: 1, 50: 2, 51: 3}.get(params[0], 2)
        elif fn == 67 and params:
            self._command("GS ( k fn 67")
            if 1 <= params[0] <= 16:
                self._qr_size = params[0]
        elif fn == 69 and params:
            self._command("GS ( k fn 69")
            self._qr_ec = _QR_EC.get(params[0], self._qr_ec)
        elif fn == 80 and params:
            self._command("GS ( k fn 80")
            self._qr_data = bytes(params[1:])  # params[0] is m = '0'
        elif fn == 81:
            self._command("GS ( k fn 81")
            self._flush_line(end=False)
            if self._qr_data:
                self._print(QrCode(self._qr_data, self._qr_size, self._qr_ec, self._qr_model, self._style.align))
        else:
            self._unknown(self._need(pos, min(total, 8)))
        return total

    def _raster(self, pos: int) -> int:
        head = self._need(pos, 8)
        if head[2] != ord("0"):
            self._unknown(head[:3])
            return 3
        m, xl, xh, yl, yh = head[3:8]
        width_bytes, height = xl + 256 * xh, yl + 256 * yh
        data = self._need(pos + 8, width_bytes * height)
        self._command("GS v 0")
        self._flush_line(end=False)
        if width_bytes and height:
            # "1;I": a set bit is a black dot, as on the printer (PIL's plain "1" is the opposite)
            image = Image.frombytes("1", (width_bytes * 8, height), data, "raw", "1;I")
            sx = 2 if m & 1 else 1
            sy = 2 if m & 2 else 1
            if sx != 1 or sy != 1:
                image = image.resize((image.width * sx, image.height * sy), Image.Resampling.NEAREST)
            self._print(Picture(image, "GS v 0", self._style.align))
        return 8 + len(data)

    def _barcode(self, pos: int) -> int:
        m = self._need(pos, 3)[2]
        if m <= 6:  # data ended by NUL
            end = self._buf.find(b"\x00", pos + 3, pos + 3 + 256)
            if end < 0:
                if len(self._buf) < pos + 3 + 256:
                    raise _NeedMore
                self._unknown(self._need(pos, 3))
                return 3
            self._unknown(self._need(pos, 3))
            return end - pos + 1
        n = self._need(pos, 4)[3]
        self._need(pos + 4, n)
        self._unknown(self._need(pos, 4))
        return 4 + n

    # -- DLE ------------------------------------------------------------------------------------
    def _dle(self, pos: int) -> tuple[int, bytes]:
        head = self._need(pos, 2)
        if head[1] != 0x04:
            self._unknown(head)
            return 2, b""
        n = self._need(pos, 3)[2]
        self._command(f"DLE EOT {n}")  # answered on arrival (see feed)
        return 3, b""
