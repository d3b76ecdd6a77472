"""Shared by the A4 printer tests: one private cupsd per module, and ways to look at printed PDFs.

A test module makes `running_emulator()` its module-scoped fixture, so cupsd starts once
per module. Missing system tools fail the tests with the package to install instead
of skipping them.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from devices.a4_printer.emulator import CupsPdfEmulator
from waiting import wait_until as _wait_until


def wait_until(condition: Any, timeout: float = 20.0) -> Any:
    """As waiting.wait_until, with CUPS's longer default (filters and backends are processes)."""
    return _wait_until(condition, timeout)


TOOLS = {
    "/usr/sbin/cupsd": "cups-daemon",
    "/usr/sbin/lpadmin": "cups-client",
    "/usr/lib/cups/backend/cups-pdf": "printer-driver-cups-pdf",
    "pdftoppm": "poppler-utils",
    "pdftotext": "poppler-utils",
    "pdfinfo": "poppler-utils",
}


def require_tools() -> None:
    missing = [(tool, package) for tool, package in TOOLS.items()
               if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))]
    if missing:
        packages = " ".join(sorted({p for _, p in missing}))
        pytest.fail(f"{', '.join(t for t, _ in missing)} missing: apt-get install {packages}", pytrace=False)


@contextlib.contextmanager
def running_emulator() -> Iterator[CupsPdfEmulator]:
    """A private cupsd with a cups-pdf queue, stopped on exit (tests make it a module fixture)."""
    require_tools()
    emulator = CupsPdfEmulator()  # a 0711 temporary directory: cupsd's filters run as lp
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def pdf_info(path: Path | bytes) -> dict[str, str]:
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    out = subprocess.run(["pdfinfo", "-"], input=data, capture_output=True, check=True).stdout.decode()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def pdf_pages(path: Path | bytes) -> int:
    return int(pdf_info(path)["Pages"])


def pdf_text(path: Path | bytes, page: int | None = None) -> str:
    """The text poppler extracts, all whitespace removed (CJK layout spacing varies)."""
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    pages = ["-f", str(page), "-l", str(page)] if page else []
    out = subprocess.run(["pdftotext", *pages, "-", "-"], input=data, capture_output=True, check=True).stdout
    return "".join(out.decode().split())


def page_image(path: Path | bytes, page: int = 1, dpi: int = 150) -> Image.Image:
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    png = subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-f", str(page), "-l", str(page), "-"],
                         input=data, capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("L")


def ink_missing(a: Image.Image, b: Image.Image) -> float:
    """Share of a's ink (dark pixels) with no ink of b within 2 pixels: ~0 for the same page
    rendered twice, most of it for another page."""
    import numpy as np
    from PIL import ImageFilter

    if abs(a.size[0] - b.size[0]) > 2 or abs(a.size[1] - b.size[1]) > 2:
        return 1.0  # another paper size
    w, h = min(a.size[0], b.size[0]), min(a.size[1], b.size[1])  # 595.28 pt vs 595 pt: a pixel apart
    ink_a = np.asarray(a)[:h, :w] < 128
    near_b = np.asarray(b.filter(ImageFilter.MinFilter(5)))[:h, :w] < 128
    return float((ink_a & ~near_b).sum() / max(1, ink_a.sum()))


def qr_texts(image: Image.Image) -> list[str]:
    import zxingcpp

    return [r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def certificate(months: int = 12, **changes: Any) -> dict[str, Any]:
    """Certificate data as the platform sends it (synthetic holder, masked ID number)."""
    data: dict[str, Any] = {
        "kind": "social_insurance_record",
        "title": {"zh-CN": "社会保险个人权益记录", "en": "Social insurance personal rights record"},
        "holder": {"name": "张三", "id_number": "110101********1234"},
        "issuer": "某市社会保险事业管理中心",
        "issued_at": "2026-11-27T10:00:00+08:00",
        "verification_code": "SI-2026-8F3K-22QX",
        "verify_url": "https://zwfw.example.gov.cn/verify?c=SI-2026-8F3K-22QX",
        "summary": [["参保险种", "职工基本养老保险"], ["参保状态", "正常参保"], ["首次参保年月", "2012-07"],
                    ["累计缴费月数", str(months)]],
        "table": {
            "columns": ["年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位"],
            "rows": [[f"{2012 + (i + 6) // 12}-{(i + 6) % 12 + 1:02d}", "8000.00", "1280.00", "640.00",
                      "某某信息科技有限公司"] for i in range(months)],
        },
        "notes": ["本记录由自助终端打印，与经办机构柜台出具的记录具有同等效力。",
                  "如对记录有异议，请携带身份证到参保地社保经办机构核实。"],
    }
    data.update(changes)
    return data
