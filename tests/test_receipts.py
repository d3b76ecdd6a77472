"""Receipt templates: the shipped file is valid, fills in both languages, and mistakes are named."""
from __future__ import annotations

import copy
import datetime
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from devices.receipt_printer.document import Cut, Qr, Text
from kiosk import receipts
from kiosk.receipts import PLACEHOLDERS, ReceiptTemplateError, ReceiptValuesError, parse_templates

sys.path.insert(0, str(Path(__file__).parent / "devices"))
from receipt_printer_harness import PROGRESS_VALUES, SAMPLE_VALUES, TICKET_VALUES  # noqa: E402

HANZI = re.compile(r"[\u4e00-\u9fff]")
VALUES = {"acceptance": SAMPLE_VALUES, "queue_ticket": TICKET_VALUES, "progress": PROGRESS_VALUES}


def texts(document: Any) -> list[str]:
    return [b.text for b in document.blocks if isinstance(b, Text)]


def minimal(**blocks: Any) -> dict[str, Any]:
    """A receipts file with one template `t` whose blocks are given, followed by a cut."""
    return {"receipt": {"t": {"title": {"zh-CN": "测试", "en": "Test"},
                              "blocks": [*blocks.get("blocks", []), {"type": "cut"}]}}}


# -- the shipped file ---------------------------------------------------------------------------
def test_shipped_templates_load_and_each_ends_with_a_cut() -> None:
    templates = receipts.load()
    assert list(templates) == ["acceptance", "queue_ticket", "progress", "test_print"]
    for name, template in templates.items():
        assert isinstance(template.blocks[-1], receipts.CutBlock)
        if name == "test_print":  # a printer test prints Chinese whatever the language: that is its point
            continue
        assert HANZI.search(template.title["zh-CN"]) and not HANZI.search(template.title["en"])
        for block in template.blocks:  # the English texts are English; the Chinese ones Chinese
            if isinstance(block, (receipts.TextBlock, receipts.ListBlock)):
                assert not HANZI.search(block.en), block.en
                if not re.fullmatch(r"[\s{}a-z_.0-9]*", block.zh_cn):  # not only placeholders
                    assert HANZI.search(block.zh_cn), block.zh_cn


@pytest.mark.parametrize("name", ["acceptance", "queue_ticket", "progress"])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_template_fills_in_both_languages(name: str, language: str) -> None:
    values = VALUES[name]
    assert receipts.load()[name].placeholders() <= set(values)
    document = receipts.build(name, values, language)
    assert isinstance(document.blocks[-1], Cut)
    lines = texts(document)
    assert bool(HANZI.search(lines[0])) is (language == "zh-CN")  # the title
    joined = "\n".join(lines)
    for key in ("receipt_number", "ticket_number", "terminal_id", "service_title"):
        if key in values:
            assert values[key] in joined
    assert "{" not in joined and "}" not in joined


def test_acceptance_receipt_content() -> None:
    document = receipts.build("acceptance", SAMPLE_VALUES)
    lines = texts(document)
    assert lines[0] == "受理回执"
    assert "受理编号：2026060133010600012345" in lines and "申请人：张*三" in lines
    assert "  杭州市西湖区医疗保障局" in lines
    assert "1. 户口簿首页及本人页复印件，2026-06-15前补交" in lines
    assert "2. 居住证明" in lines  # no deadline given: the fallback text
    (qr,) = [b for b in document.blocks if isinstance(b, Qr)]
    assert qr.data == SAMPLE_VALUES["progress_url"] and qr.module_size == 6
    assert any("无需再次办理" in t for t in lines) and not any("已提交承办部门" in t for t in lines)
    sent = texts(receipts.build("acceptance", {**SAMPLE_VALUES, "queued": False}))
    assert any("已提交承办部门" in t for t in sent) and not any("自动提交" in t for t in sent)


def test_the_handout_desks_values_fill_the_acceptance_receipt() -> None:
    """The shape kiosk/handout.py passes: promised materials as titles, no departments, and
    no progress page when no platform is configured (then no QR code and no caption)."""
    values = {"terminal_id": "T1", "location": "大厅", "printed_at": "2026-06-01 10:24",
              "receipt_number": "R1", "service_title": "医保参保登记", "applicant": "张*",
              "departments": [], "commitments": ["户口簿"], "progress_url": "", "queued": False}
    document = receipts.build("acceptance", values, "zh-CN")
    lines = texts(document)
    assert not any(isinstance(b, Qr) for b in document.blocks)
    assert "承办部门：" not in lines and "微信或浏览器扫码查询办理进度" not in lines
    assert "1. 户口簿" in lines


def test_label_indent_and_datetime_values() -> None:
    values = {**SAMPLE_VALUES, "printed_at": datetime.datetime(2026, 6, 1, 10, 24, 59)}
    document = receipts.build("acceptance", values)
    location = next(b for b in document.blocks if isinstance(b, Text) and b.text.startswith("终端位置"))
    assert location.indent == 10 and location.lines(48)[1].startswith(" " * 10)
    assert "受理时间：2026-06-01 10:24" in texts(document)


# -- mistakes in templates ----------------------------------------------------------------------
@pytest.mark.parametrize(("block", "message"), [
    ({"type": "text", "zh-CN": "编号：{reciept_number}", "en": "No. {receipt_number}"},
     r"block 1 \(type text\): unknown placeholder \{reciept_number\}"),
    ({"type": "text", "zh-CN": "{departments}", "en": "{departments}"}, r"is a list: print it with a block of type"),
    ({"type": "text", "en": "x"}, r"block 1 \(type text\): zh-CN: Field required"),
    ({"type": "text", "zh-CN": "x", "en": "x", "colour": "red"}, r"colour: Extra inputs are not permitted"),
    ({"type": "text", "zh-CN": "{n:>3}", "en": "x"}, r"must be a plain name"),
    ({"type": "banner", "zh-CN": "x", "en": "x"}, r"block 1 \(type banner\): type must be one of"),
    ({"type": "list", "items": "receipt_number", "zh-CN": "{item}", "en": "{item}"}, r"not a list placeholder"),
    ({"type": "list", "items": "steps", "zh-CN": "{time} {material}", "en": "x"}, r"unknown placeholder \{material\}"),
    ({"type": "qr", "data": "{queued}"}, r"QR data can only hold text placeholders"),
    ({"type": "qr", "data": "{progress_url}", "module_size": 20}, r"module_size: Input should be less than"),
    ({"type": "text", "when": "sunny", "zh-CN": "x", "en": "x"}, r"names unknown placeholder 'sunny'"),
    ({"type": "rule", "char": "—"}, r"one printable ASCII character"),
])
def test_template_mistakes_name_the_template_and_block(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ReceiptTemplateError, match=r"receipt template 't'.*" + message):
        parse_templates(minimal(blocks=[block]), "receipts.toml")


def test_file_level_mistakes() -> None:
    raw = minimal(blocks=[{"type": "feed"}])
    del raw["receipt"]["t"]["blocks"][-1]
    with pytest.raises(ReceiptTemplateError, match="last block must be type = \"cut\""):
        parse_templates(raw)
    raw = minimal()
    raw["receipt"]["t"]["title"] = {"zh-CN": "测试"}
    with pytest.raises(ReceiptTemplateError, match="title must have exactly zh-CN and en"):
        parse_templates(raw)
    with pytest.raises(ReceiptTemplateError, match="no \\[receipt.<name>\\] tables"):
        parse_templates({})


def test_a_broken_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "receipts.toml"
    path.write_text('[receipt.t]\ntitle = { zh-CN = "x" \n', encoding="utf-8")
    with pytest.raises(ReceiptTemplateError, match=f"{re.escape(str(path))}: not valid TOML"):
        receipts.load(path)
    with pytest.raises(ReceiptTemplateError, match="does not exist"):
        receipts.load(tmp_path / "missing.toml")


# -- mistakes in values -------------------------------------------------------------------------
def test_value_mistakes_are_named() -> None:
    with pytest.raises(ReceiptValuesError, match="needs values for applicant, receipt_number"):
        receipts.build("acceptance", {k: v for k, v in SAMPLE_VALUES.items()
                                      if k not in ("applicant", "receipt_number")})
    with pytest.raises(ReceiptValuesError, match="unknown placeholder values reciept_no"):
        receipts.build("acceptance", {**SAMPLE_VALUES, "reciept_no": "1"})
    with pytest.raises(ReceiptValuesError, match="departments must be a list"):
        receipts.build("acceptance", {**SAMPLE_VALUES, "departments": "医保局"})
    with pytest.raises(ReceiptValuesError, match="queued must be true or false"):
        receipts.build("acceptance", {**SAMPLE_VALUES, "queued": "yes"})
    with pytest.raises(ReceiptValuesError, match="commitments item 1 has unknown fields due"):
        receipts.build("acceptance", {**SAMPLE_VALUES, "commitments": [{"material": "x", "due": "y"}]})
    with pytest.raises(ReceiptValuesError, match="receipt_number must be text"):
        receipts.build("acceptance", {**SAMPLE_VALUES, "receipt_number": ["1"]})
    with pytest.raises(ReceiptValuesError, match="language 'fr' unknown"):
        receipts.build("acceptance", SAMPLE_VALUES, "fr")
    with pytest.raises(ReceiptValuesError, match="no receipt template 'invoice'"):
        receipts.build("invoice", SAMPLE_VALUES)


def test_placeholder_table_is_documented_in_the_file() -> None:
    header = receipts.RECEIPTS_FILE.read_text(encoding="utf-8").split("\n[receipt.", 1)[0]
    for name in PLACEHOLDERS:
        assert name in header, f"{name} is not described at the top of {receipts.RECEIPTS_FILE.name}"


def test_templates_are_not_changed_by_filling() -> None:
    template = receipts.load()["acceptance"]
    before = copy.deepcopy(template)
    receipts.fill(template, SAMPLE_VALUES, "en")
    assert template == before
