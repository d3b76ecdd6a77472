"""The emulated printer's parser and renderer, fed bytes directly, and its console.

The driver-over-pty tests are in test_receipt_printer_over_pty.py; here the byte
sequences come from python-escpos's Dummy or are written out, so each command the
emulator claims to understand is checked on its own, and random bytes never break it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import zxingcpp
from escpos.printer import Dummy
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from receipt_printer_harness import require_font

from devices.receipt_printer.document import Document
from devices.receipt_printer.emulator import EscPosEmulator
from devices.receipt_printer.emulator_model import PrinterModel
from devices.receipt_printer.emulator_render import Cut, Feed, Picture, render
from devices.receipt_printer.escpos import EscPosEncoder


def test_text_in_chinese_mode_is_decoded_with_styles_per_character_set() -> None:
    model = PrinterModel()
    data = (b"\x1b@\x1ba\x01\x1bE\x01\x1d!\x11" + b"\x1c&" + "受理回执".encode("gb18030") + b"\x1c.\n"
            + b"\x1bE\x00\x1d!\x00\x1b-\x01Total \x1c-\x01\x1c&" + "￥，。：".encode("gb18030") + b"\x1c.\n")
    model.feed(data)
    first, second = model.current.lines()
    assert first.text == "受理回执" and first.align == "center"
    assert first.style() == {"bold": True, "underline": 0, "width": 2, "height": 2}
    assert second.text == "Total ￥，。：" and second.align == "center"
    assert [(r.wide, r.underline) for r in second.runs] == [(False, 1), (True, 1)]
    assert model.current.commands[:4] == ["ESC @", "ESC a", "ESC E", "GS !"]


def test_esc_bang_sizes_ascii_only_and_fs_bang_sizes_hanzi() -> None:
    model = PrinterModel()
    model.feed(b"\x1b!\x30AB\x1c!\x0c\x1c&" + "中".encode("gb18030") + b"\x1c.\n")
    runs = model.current.lines()[0].runs
    assert (runs[0].text, runs[0].width, runs[0].height) == ("AB", 2, 2)
    assert (runs[1].text, runs[1].width, runs[1].height) == ("中", 2, 2)
    model.feed(b"\x1b!\x00\x1c!\x00\x1c&" + "中".encode("gb18030") + b"\x1c.A\n")
    assert [(r.width, r.height) for r in model.current.lines()[1].runs] == [(1, 1), (1, 1)]


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8"])
def test_each_encoding_setting_decodes_its_own_bytes(encoding: str) -> None:
    model = PrinterModel(encoding=encoding)
    model.feed(b"\x1c&" + "政务服务，￥5".encode(encoding) + b"\x1c.\n")
    assert model.current.texts() == ["政务服务，￥5"]


def test_gb18030_four_byte_characters_and_bytes_split_across_reads() -> None:
    model = PrinterModel()
    data = b"\x1c&" + "𠮷一".encode("gb18030") + b"\x1c.\n"
    for i in range(len(data)):  # one byte at a time, as a slow line delivers them
        model.feed(data[i : i + 1])
    assert model.current.texts() == ["𠮷一"]


def test_without_chinese_mode_the_bytes_print_as_code_page_garbage() -> None:
    """Why FS & matters on a model that starts outside Chinese mode."""
    model = PrinterModel(chinese_at_power_up=False)
    model.feed("受理".encode("gb18030") + b"\n")
    assert model.current.texts()[0] != "受理" and len(model.current.texts()[0]) == 4
    model.feed(b"\x1c&" + "受理".encode("gb18030") + b"\x1c.\n")
    assert model.current.texts()[1] == "受理"


def test_printer_wraps_a_line_that_runs_past_the_paper_edge() -> None:
    model = PrinterModel(paper_width=58)  # 384 dots = 32 ASCII columns
    model.feed(b"x" * 40 + b"\n")
    lines = model.current.lines()
    assert [len(line.text) for line in lines] == [32, 8]
    assert lines[0].wrapped and not lines[1].wrapped


def test_native_qr_from_python_escpos_is_stored_and_printed() -> None:
    dummy = Dummy()
    dummy.set(align="center")
    dummy.qr("https://x.cn/p/1", native=True, size=4, ec=3)
    model = PrinterModel()
    model.feed(dummy.output)
    (qr,) = model.current.qr_codes()
    assert (qr.text, qr.module_size, qr.error_correction, qr.model, qr.align) == (
        "https://x.cn/p/1", 4, "H", 2, "center")
    assert [c for c in model.current.commands if c.startswith("GS ( k")] == [
        "GS ( k fn 65", "GS ( k fn 67", "GS ( k fn 69", "GS ( k fn 80", "GS ( k fn 81"]


def test_raster_and_column_pictures_are_drawn_dot_for_dot() -> None:
    picture = Image.new("1", (64, 48), 1)
    ImageDraw.Draw(picture).rectangle((8, 8, 23, 39), fill=0)
    for impl, command in (("bitImageRaster", "GS v 0"), ("bitImageColumn", "ESC *")):
        dummy = Dummy()
        dummy.image(picture, impl=impl)
        model = PrinterModel()
        model.feed(dummy.output + b"\x1dV\x00")
        pictures = [e for e in model.receipts[0].elements if isinstance(e, Picture)]
        assert pictures and all(p.command == command for p in pictures)
        page = render(model.receipts[0].elements, 576).convert("1")
        black = [(x, y) for y in range(page.height) for x in range(80) if page.getpixel((x, y)) == 0]
        xs = {x for x, _ in black}
        assert min(xs) == 8 and max(xs) == 23, impl  # the rectangle's columns, nothing else
        assert len({y for _, y in black}) == 32, impl  # 32 rows high, stripes stacked without gaps


def test_cut_variants_feeds_and_receipt_boundaries() -> None:
    model = PrinterModel()
    model.feed(b"one\n\x1bd\x03\x1dV\x01two\x1dVB\x05three\n\x1bi")
    first, second, third = model.receipts
    assert first.texts() == ["one"] and first.cut and first.elements[-1] == Cut(partial=True)
    assert Feed(90) in first.elements  # ESC d 3 at 30 dots a line
    assert second.texts() == ["two"] and second.elements[-2:] == [Feed(5), Cut(partial=True)]
    assert third.texts() == ["three"] and third.elements[-1] == Cut(partial=False)


def test_status_queries_answer_per_paper_state() -> None:
    model = PrinterModel()
    queries = b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04\x1dr\x01"
    assert model.feed(queries) == bytes([0x12, 0x12, 0x12, 0x12, 0x00])
    model.state.paper = "low"
    assert model.feed(queries) == bytes([0x12, 0x12, 0x12, 0x1E, 0x03])
    model.state.paper = "out"
    assert model.feed(queries) == bytes([0x1A, 0x32, 0x12, 0x7E, 0x0F])
    model.state.paper = "ok"
    model.state.jammed = True
    assert model.feed(queries) == bytes([0x1A, 0x52, 0x1A, 0x12, 0x00])
    model.state.jammed = False
    model.state.cover_open = True
    assert model.feed(b"\x10\x04\x02") == bytes([0x16])
    model.state.silent = True
    assert model.feed(queries) == b""
    assert (model.counters.queries, model.counters.answered) == (26, 21)


def test_status_is_answered_in_real_time_even_inside_a_half_received_picture() -> None:
    model = PrinterModel()
    assert model.feed(b"\x1dv0\x00\xff\xff\xff\xff\x00\x10") == b""  # a picture of 4 GB announced
    assert model.feed(b"\x04\x04") == b"\x12"  # DLE EOT 4 split across reads, inside the picture's data
    assert model.feed(b"\x10\x04\x04\x1dr\x01") == b"\x12"  # GS r 1 waits its turn behind the picture
    assert model.current.lines() == []


def test_print_data_is_discarded_without_paper_and_the_receipt_torn_off_when_it_ends() -> None:
    model = PrinterModel()
    model.state.paper = "out"
    model.feed(b"lost\n\x1dV\x00")
    assert model.receipts == [] and model.counters.discarded == 2
    model.state.paper = "ok"
    model.state.lines_left = 2
    model.feed(b"one\ntwo\nthree\n\x1dV\x00")
    (torn,) = model.receipts
    assert torn.texts() == ["one", "two"] and not torn.cut
    assert model.state.paper == "out" and model.counters.discarded == 4


def test_unknown_commands_are_recorded_and_printing_goes_on() -> None:
    model = PrinterModel()
    model.feed(b"\x1bz\x01A\x1d\x99B\x1d(L\x02\x000p\x1dk\x04123\x00C\n")
    assert model.current.texts() == ["ABC"]
    unknown = [str(u) for u in model.current.unknown()]
    assert "1B 7A" in unknown and "01" in unknown and "1D 99" in unknown
    assert any(u.startswith("1D 28 4C") for u in unknown) and "1D 6B 04" in unknown


# command heads make random input reach deep into the parser, not only into plain text
_HEADS = [b"\x1b", b"\x1c", b"\x1d", b"\x10\x04", b"\x1d(k", b"\x1dv0", b"\x1b*", b"\x1dV", b"\n", b"\x1c&",
          "受".encode("gb18030"), "𠮷".encode("gb18030")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64), st.sampled_from(_HEADS)), max_size=24),
       st.sampled_from(["gb18030", "gbk", "utf-8"]))
def test_random_bytes_never_break_the_parser(chunks: list[bytes], encoding: str) -> None:
    model = PrinterModel(encoding=encoding)
    handler = _ErrorLog()
    logging.getLogger("devices.receipt_printer.emulator_model").addHandler(handler)
    try:
        for chunk in chunks:
            answer = model.feed(chunk)
            assert all(b & 0x93 == 0x12 or b in (0x00, 0x03, 0x0F) for b in answer)
        model.feed(b"\x00" * 8 + b"\n")  # whatever was half-parsed, the printer carries on
        model.finish_partial()
    finally:
        logging.getLogger("devices.receipt_printer.emulator_model").removeHandler(handler)
    assert handler.errors == []  # "never raises" includes the model's own safety net
    for receipt in model.receipts:
        render(receipt.elements, model.dots)


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(record.getMessage())


def test_rendered_receipt_has_the_papers_width_and_a_scannable_qr(tmp_path: Path) -> None:
    require_font()
    url = "https://zwfw.example.gov.cn/progress/2026060100001234"
    doc = Document().text("受理回执", align="center", double_width=True, double_height=True).feed(1)
    doc.qr(url, module_size=5).cut()
    model = PrinterModel(paper_width=58)
    model.feed(EscPosEncoder(paper_width=58).encode(doc).data)
    page = render(model.receipts[0].elements, model.dots)
    assert page.width == 384
    assert [r.text for r in zxingcpp.read_barcodes(page)] == [url]


def test_console_commands_script_the_printer(tmp_path: Path) -> None:
    emu = EscPosEmulator(out_dir=str(tmp_path))
    emu.start()
    try:
        assert "runout N" in emu.command("help")
        assert emu.command("low") == "paper near its end" and emu.model.state.paper == "low"
        assert emu.command("out") == "out of paper" and emu.model.state.paper == "out"
        assert emu.command("ok") == "a new roll is loaded" and emu.model.state.paper == "ok"
        assert emu.command("jam") and emu.model.state.jammed
        assert emu.command("unjam") and not emu.model.state.jammed
        assert emu.command("silent") and not emu.model.state.answers
        assert emu.command("answer") and emu.model.state.answers
        assert "3 more lines" in emu.command("runout 3")
        assert "paper ends in 3 lines" in emu.command("status")
        assert emu.command("runout x").startswith("error:")
        assert emu.command("receipts") == "no receipt printed yet"
        assert emu.command("unplug") == "printer unplugged" and not emu.running
        assert emu.command("replug").startswith("printer plugged in again on /dev/pts/")
        assert "unknown printer command 'dance'" in emu.command("dance")
    finally:
        emu.stop()
