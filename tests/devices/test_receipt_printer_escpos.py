"""The receipt document (columns, wrapping) and its ESC/POS bytes, checked byte by byte."""
from __future__ import annotations

import pytest
from escpos.printer import Dummy
from PIL import Image

from devices.receipt_printer.document import Document, Qr, Rule, Text, columns_for, text_columns, wrap
from devices.receipt_printer.escpos import EscPosEncoder, ReceiptTooWide, qr_size_dots

FS_ON, FS_OFF = b"\x1c&", b"\x1c."


# -- columns and wrapping ------------------------------------------------------------------------
def test_columns_count_every_multibyte_character_as_two() -> None:
    assert text_columns("abc") == 3
    assert text_columns("受理") == 4
    assert text_columns("￥，。：") == 8  # full-width marks print in 24-dot cells
    assert text_columns("·—é") == 6  # double-byte in GB18030: the printer gives them a hanzi cell
    assert columns_for(80) == 48 and columns_for(58) == 32
    with pytest.raises(ValueError, match="paper width 76"):
        columns_for(76)


@pytest.mark.parametrize("columns", [10, 17, 32, 48])
def test_wrapped_lines_never_exceed_the_paper_and_lose_nothing(columns: int) -> None:
    text = "受理编号：2026060100001234，请妥善保管本回执。Keep it safe: https://zwfw.example.gov.cn/p/1"
    lines = wrap(text, columns)
    assert all(text_columns(line) <= columns for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_wrap_keeps_words_and_punctuation_rules() -> None:
    assert wrap("Receipt number 2026060100001234", 20) == ["Receipt number", "2026060100001234"]
    # a closing mark never starts a line: the character before it comes along
    assert wrap("一二三四五六七八九，十", 9) == ["一二三四", "五六七八", "九，十"]
    # an opening bracket never ends a line
    assert wrap("一二三（四五", 8) == ["一二三", "（四五"]
    # a hanging indent for continuation lines; explicit newlines are kept
    assert wrap("办理事项：城乡居民基本医疗保险参保登记", 20, indent=10) == [
        "办理事项：城乡居民基", "          本医疗保险", "          参保登记"]
    assert wrap("a\n\nb", 10) == ["a", "", "b"]


def test_double_width_text_wraps_at_half_the_columns() -> None:
    block = Text("受理回执受理回执受理回执受理回执", double_width=True)
    assert [text_columns(line) for line in block.lines(48)] == [24, 8]


def test_document_blocks_validate_their_values() -> None:
    with pytest.raises(ValueError, match="module size"):
        Qr("x", module_size=17)
    with pytest.raises(ValueError, match="ASCII"):
        Rule("－")
    with pytest.raises(ValueError, match="underline"):
        Text("x", underline=3)


# -- bytes -------------------------------------------------------------------------------------
def test_python_escpos_mangles_chinese_punctuation_so_it_is_sent_raw() -> None:
    """The reason Chinese text is encoded here: python-escpos turns these into '?'."""
    dummy = Dummy()
    dummy.text("￥，。：")
    assert b"?" in dummy.output
    encoded = EscPosEncoder().encode(Document().text("￥，。："))
    assert FS_ON + "￥，。：".encode("gb18030") + FS_OFF + b"\n" in encoded.data
    assert b"?" not in encoded.data and encoded.unencodable == 0


def test_chinese_text_is_wrapped_in_fs_and_encoded_per_model() -> None:
    line = "金额：￥12.50"
    for encoding in ("gb18030", "gbk", "utf-8"):
        data = EscPosEncoder(encoding=encoding).encode(Document().text(line)).data
        assert FS_ON + line.encode(encoding) + FS_OFF + b"\n" in data, encoding
    without = EscPosEncoder(chinese_mode_command=False).encode(Document().text(line)).data
    assert FS_ON not in without and line.encode("gb18030") + b"\n" in without
    ascii_only = EscPosEncoder().encode(Document().text("Receipt")).data
    assert FS_ON not in ascii_only and b"Receipt\n" in ascii_only


def test_characters_missing_from_gbk_are_counted_and_printed_as_question_marks() -> None:
    encoded = EscPosEncoder(encoding="gbk").encode(Document().text("𠮷野家"))  # 𠮷 is outside GBK
    assert encoded.unencodable == 1
    assert FS_ON + b"?" + "野家".encode("gbk") + FS_OFF in encoded.data
    assert EscPosEncoder(encoding="gb18030").encode(Document().text("𠮷野家")).unencodable == 0


def test_styles_use_gs_size_for_both_character_sets_and_are_sent_only_on_change() -> None:
    doc = (Document().text("受理回执", align="center", bold=True, double_width=True, double_height=True)
           .text("标题二", align="center", bold=True, double_width=True, double_height=True)
           .text("正文", underline=1))
    data = EscPosEncoder().encode(doc).data
    assert data.startswith(b"\x1b@")
    assert b"\x1ba\x01" in data and b"\x1bE\x01" in data and b"\x1d!\x11" in data
    assert data.count(b"\x1d!\x11") == 1 and data.count(b"\x1bE\x01") == 1  # not repeated per line
    assert b"\x1b-\x01\x1c-\x01" in data  # underline for ASCII (ESC -) and hanzi (FS -)
    assert b"\x1b!" not in data  # ESC ! would size ASCII only on Chinese printers
    assert data.endswith(b"\n\x1b-\x00\x1c-\x00")  # left as ESC @ leaves it


def test_qr_code_is_the_printers_native_command_with_the_payload() -> None:
    url = "https://zwfw.example.gov.cn/progress/2026060100001234"
    data = EscPosEncoder().encode(Document().qr(url, module_size=5, error_correction="Q")).data
    store = b"\x1d(k" + (len(url) + 3).to_bytes(2, "little") + b"1P0" + url.encode()
    assert b"\x1d(k\x04\x001A2\x00" in data  # fn 65: model 2
    assert b"\x1d(k\x03\x001C\x05" in data  # fn 67: module size 5
    assert b"\x1d(k\x03\x001E2" in data  # fn 69: level Q ('2')
    assert store in data  # fn 80: store the data
    assert b"\x1d(k\x03\x001Q0" in data  # fn 81: print it
    assert b"\x1dv0" not in data  # not a picture


def test_a_qr_code_wider_than_the_paper_is_refused_before_printing() -> None:
    long = "https://zwfw.example.gov.cn/" + "x" * 400
    assert qr_size_dots(Qr(long, module_size=16)) > 576
    with pytest.raises(ReceiptTooWide, match="smaller module size"):
        EscPosEncoder().encode(Document().qr(long, module_size=16))


def test_pictures_become_gs_v_0_raster_no_wider_than_the_paper() -> None:
    wide = Image.new("L", (1000, 100), 0)
    data = EscPosEncoder(paper_width=58).encode(Document().image(wide)).data
    at = data.index(b"\x1dv0")
    width_bytes = int.from_bytes(data[at + 4 : at + 6], "little")
    height = int.from_bytes(data[at + 6 : at + 8], "little")
    assert width_bytes * 8 == 384 and height == round(100 * 384 / 1000)


def test_cut_feeds_past_the_cutter_and_cuts() -> None:
    data = EscPosEncoder().encode(Document().text("x").cut()).data
    assert b"\x1bd\x06\x1dV\x01" in data  # partial by default
    assert b"\x1bd\x06\x1dV\x00" in EscPosEncoder().encode(Document().cut(partial=False)).data


def test_height_estimate_grows_with_the_receipt() -> None:
    short = EscPosEncoder().encode(Document().text("一行").cut())
    long = EscPosEncoder().encode(Document().text("一行\n" * 20).qr("https://x.cn/1").cut())
    assert long.height_mm > short.height_mm > 0


def test_plain_text_shows_the_receipt_without_a_printer() -> None:
    doc = Document().text("受理回执", align="center").rule().qr("https://x.cn/1").cut()
    lines = doc.plain_text(16).splitlines()
    assert lines == ["    受理回执", "-" * 16, "[QR https://x.cn/1]"]
