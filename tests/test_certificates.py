"""Certificates and the A4 test page as PDF: read back with poppler, QR codes decoded with zxing-cpp.

No printer here (tests/devices/test_a4_printer.py prints them through CUPS); what is
checked is the document itself: text, fonts, page breaks, footers, the QR code, the
test page's geometry, and that bad data is refused with the field named.
"""
from __future__ import annotations

import copy
import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from kiosk.certificates import (
    LAYOUT_FILE,
    CertificateDataError,
    LayoutError,
    MissingGlyphs,
    job_title,
    load_layout,
    render_certificate,
)
from kiosk.certificates import test_page as render_test_page

PRINTED_AT = dt.datetime(2026, 11, 27, 10, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
URL = "https://zwfw.example.gov.cn/verify?c=SI-2026-8F3K-22QX"

for tool in ("pdftotext", "pdftoppm", "pdfinfo", "pdffonts"):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} missing: apt-get install poppler-utils", pytrace=False)


def certificate(months: int = 12) -> dict[str, Any]:
    return {
        "kind": "social_insurance_record",
        "title": {"zh-CN": "社会保险个人权益记录", "en": "Social insurance personal rights record"},
        "holder": {"name": "张三", "id_number": "110101********1234"},
        "issuer": "某市社会保险事业管理中心",
        "issued_at": "2026-11-27T10:00:00+08:00",
        "verification_code": "SI-2026-8F3K-22QX",
        "verify_url": URL,
        "summary": [["参保险种", "职工基本养老保险"], ["参保状态", "正常参保"], ["累计缴费月数", months]],
        "table": {
            "columns": ["年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位"],
            "rows": [[f"{2012 + (i + 6) // 12}-{(i + 6) % 12 + 1:02d}", "8000.00", 1280.0, 640, "某某信息科技有限公司"]
                     for i in range(months)],
        },
        "notes": ["本记录由自助终端打印，与经办机构柜台出具的记录具有同等效力。"],
    }


def text(pdf: bytes, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    out = subprocess.run(["pdftotext", *pages, "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return "".join(out.decode().split())


def info(pdf: bytes) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def fonts(pdf: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True).stdout
    return out.splitlines()[2:]


def image(pdf: bytes, page: int = 1, dpi: int = 150) -> Image.Image:
    png = subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-f", str(page), "-l", str(page), "-"],
                         input=pdf, capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("L")


def qr(img: Image.Image) -> list[str]:
    import zxingcpp

    return [r.text for r in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)]


def test_one_page_certificate_has_text_fonts_footer_and_qr(tmp_path: Path) -> None:
    pdf = render_certificate(certificate(), "GZ-TH-0001", PRINTED_AT)
    meta = info(pdf)
    assert meta["Pages"] == "1" and meta["Page size"].endswith("(A4)")
    assert meta["Title"] == "社会保险个人权益记录" and meta["Subject"] == "social_insurance_record"
    assert "张三" not in "".join(meta.values())  # nothing personal in the metadata
    body = text(pdf)
    for expected in ("社会保险个人权益记录", "Socialinsurancepersonalrightsrecord", "姓名Name", "张三",
                     "公民身份号码IDnumber", "110101********1234", "职工基本养老保险", "累计缴费月数12",
                     "某某信息科技有限公司", "1280.00", "出具机构Issuedby：某市社会保险事业管理中心",
                     "出具时间Issuedat：2026-11-2710:00", "验证码SI-2026-8F3K-22QX", "zwfw.example.gov.cn",
                     "自助终端GZ-TH-0001", "打印时间2026-11-2710:05", "第1页共1页", "Page1of1", "说明Notes"):
        assert expected in body, expected
    embedded = fonts(pdf, tmp_path)
    assert len(embedded) == 1 and "WenQuanYiMicroHei" in embedded[0]
    assert " yes yes yes " in embedded[0]  # embedded, subset, with a ToUnicode map
    assert qr(image(pdf)) == [URL]


def test_long_table_breaks_over_pages_with_its_header_repeated() -> None:
    pdf = render_certificate(certificate(110), "GZ-TH-0001", PRINTED_AT)
    pages = int(info(pdf)["Pages"])
    assert pages >= 3
    months_seen = []
    for page in range(1, pages + 1):
        body = text(pdf, page)
        assert f"第{page}页共{pages}页" in body and f"Page{page}of{pages}" in body
        assert "自助终端GZ-TH-0001" in body
        if "8000.00" in body:
            head = body.split("8000.00")[0]
            assert all(c in head for c in ("年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位")), page
        if page > 1:
            assert "社会保险个人权益记录（续continued）" in body and "SI-2026-8F3K-22QX" in body
        months_seen += [m for m in ("2012-07", "2021-08") if m in body]
    assert months_seen == ["2012-07", "2021-08"]  # first and last rows, in order, each once
    assert "某市社会保险事业管理中心" in text(pdf, pages)
    assert qr(image(pdf, 1)) == [URL] and qr(image(pdf, 2)) == []


def test_labels_and_footers_come_from_the_layout_file(tmp_path: Path) -> None:
    layout_text = LAYOUT_FILE.read_text(encoding="utf-8")
    changed = (layout_text.replace('zh-CN = "姓名"', 'zh-CN = "持证人"')
               .replace('zh-CN = "自助终端 {terminal_id}"', 'zh-CN = "终端 {terminal_id} 自助打印"'))
    assert changed != layout_text
    path = tmp_path / "certificates.toml"
    path.write_text(changed, encoding="utf-8")
    body = text(render_certificate(certificate(), "T-9", PRINTED_AT, layout=load_layout(path)))
    assert "持证人Name" in body and "姓名" not in body and "终端T-9自助打印" in body


def _without(data: dict[str, Any], path: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    del node[last]
    return data


def _with(changes: dict[str, Any]) -> dict[str, Any]:
    data = certificate()
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return data


@pytest.mark.parametrize("data, field, words", [
    (_without(certificate(), "holder.name"), "holder.name", "is missing"),
    (_without(certificate(), "verify_url"), "verify_url", "is missing"),
    (_without(certificate(), "title"), "title", "is missing"),
    (_with({"title": {"en": "only English"}}), "title.zh-CN", "must be text"),
    (_with({"table.rows": [["2020-01", "1", "2", "3", "x"], ["2020-02", "1", "2", "x"]]}), "table.rows[1]",
     "has 4 cells but table.columns names 5"),
    (_with({"table.columns": []}), "table.columns", "non-empty list"),
    (_with({"holder.id_number": "110101199003071234"}), "holder.id_number", "must arrive masked"),
    (_with({"verify_url": "ftp://example.org/v"}), "verify_url", "http(s) URL"),
    (_with({"issued_at": "27/11/2026"}), "issued_at", "ISO 8601"),
    (_with({"kind": "社保"}), "kind", "lower-case identifier"),
    (_with({"summary": [["only a label"]]}), "summary[0]", "[label, value] pair"),
    (_with({"verification_code": "码"}), "verification_code", "ASCII"),
    (_with({"holder.name": "  "}), "holder.name", "is empty"),
    (_with({"note": ["misspelt key"]}), "note", "not a certificate key"),
    (_with({"table.rows": [["2020-01", True, "2", "3", "x"]]}), "table.rows[0][1]", "not a boolean"),
])
def test_bad_data_is_refused_naming_the_field(data: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(CertificateDataError) as caught:
        render_certificate(data, "T-1", PRINTED_AT)
    assert caught.value.field == field
    assert words in str(caught.value) and field in str(caught.value)
    assert "张三" not in str(caught.value) and "1990" not in str(caught.value)  # values never in messages


def test_rare_characters_fall_back_to_another_font_or_are_refused(tmp_path: Path) -> None:
    layout = load_layout()
    if len(layout.fonts) < 2:
        pytest.fail("only one of the layout's fonts is installed: apt-get install fonts-droid-fallback",
                    pytrace=False)
    rare = render_certificate(_with({"holder.name": "王䶮"}), "T-1", PRINTED_AT)  # U+4DAE, not in Micro Hei
    assert "王䶮" in text(rare)
    assert len(fonts(rare, tmp_path)) == 2
    with pytest.raises(MissingGlyphs) as caught:
        render_certificate(_with({"holder.name": "王\U0002A6A5"}), "T-1", PRINTED_AT)  # in no font here
    assert caught.value.field == "holder.name" and "U+2A6A5" in str(caught.value)


def test_layout_without_fonts_says_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "certificates.toml"
    path.write_text(LAYOUT_FILE.read_text(encoding="utf-8").replace("/usr/share/fonts/", "/nonexistent/"),
                    encoding="utf-8")
    with pytest.raises(LayoutError, match="fonts-wqy-microhei"):
        load_layout(path)
    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text(LAYOUT_FILE.read_text(encoding="utf-8").replace("[footer.page]", "[footer.pages]"),
                          encoding="utf-8")
    with pytest.raises(LayoutError, match=r"\[footer.page\]"):
        load_layout(incomplete)


def test_job_title_is_the_kind() -> None:
    assert job_title(certificate()) == "social_insurance_record"


def _dark_near(row: np.ndarray, x: float, tolerance: int = 2) -> bool:
    lo, hi = round(x) - tolerance, round(x) + tolerance + 1
    return bool((row[lo:hi] < 128).any())


def test_technicians_test_page_has_frames_ruler_square_and_qr() -> None:
    pdf = render_test_page("GZ-TH-0001", "天河区政务服务中心一楼大厅", PRINTED_AT)
    meta = info(pdf)
    assert meta["Pages"] == "1" and meta["Page size"].endswith("(A4)")
    body = text(pdf)
    for expected in ("A4打印机测试页", "GZ-TH-0001", "天河区政务服务中心一楼大厅", "2026-11-2710:05",
                     "此正方形边长应为100mm", "Thissquareshouldmeasure100mm", "wqy-microhei.ttc"):
        assert expected in body, expected
    dpi = 150
    img = image(pdf, 1, dpi)
    px = np.asarray(img)
    mm = dpi / 25.4
    assert img.size == (1241, 1754)
    codes = qr(img)
    assert len(codes) == 1 and "terminal=GZ-TH-0001" in codes[0] and "2026-11-27T10:05:00+08:00" in codes[0]
    # frames 5 and 10 mm from each edge, along most of the page's height
    rows = range(int(40 * mm), int(250 * mm), 25)
    for x_mm in (5, 10, 200, 205):
        assert all(_dark_near(px[y], x_mm * mm) for y in rows), f"vertical frame line at {x_mm} mm"
    # the 100 mm square is centred: its sides at 55 and 155 mm on the page's middle row
    middle = px[int(148.5 * mm)]
    assert _dark_near(middle, 55 * mm) and _dark_near(middle, 155 * mm)
    assert not _dark_near(middle, 80 * mm, tolerance=3)  # blank inside the square, away from the cross
    # ruler: a tick every millimetre along the top
    ticks = px[int(10.8 * mm)]
    assert all(_dark_near(ticks, x * mm, tolerance=1) for x in range(20, 190, 7))


def test_printed_at_may_be_iso_text_and_terminal_is_required() -> None:
    pdf = render_certificate(certificate(1), "T-2", "2026-11-27T23:59:00+08:00")
    assert "打印时间2026-11-2723:59" in text(pdf)
    with pytest.raises(ValueError, match="terminal_id"):
        render_certificate(certificate(1), " ", PRINTED_AT)
