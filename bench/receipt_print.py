"""Receipt printer: bytes and time of one receipt on the wire, and the emulator's render. Prints; never asserts.

    .venv/bin/python bench/receipt_print.py                 # acceptance receipt, 9600 and 115200 baud
    .venv/bin/python bench/receipt_print.py -n 3 --baud 19200 --logo

The emulator paces its line like a real 8N1 one (`baudrate`): it reads no faster than
10 bits a byte arrive, and its status answers take their wire time too. The real driver
(EscPosSerialPrinter) prints the filled acceptance template through a pty: status
queries first, ESC @ and the receipt in chunks, then the confirming queries. The paper
itself is not modelled: a real printer at ~150 mm/s prints while the bytes arrive, so
a receipt takes about max(wire time, paper length / speed); both are printed.

`--logo` adds a 576x160 picture (GS v 0), to show what pictures cost on a slow line.
The render figure is the emulator drawing the receipt to a PNG (what a person looks at),
not part of printing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from devices.receipt_printer.document import Document  # noqa: E402
from devices.receipt_printer.document import Image as ImageBlock  # noqa: E402
from devices.receipt_printer.driver import EscPosSerialPrinter  # noqa: E402
from devices.receipt_printer.emulator import EscPosEmulator  # noqa: E402
from devices.receipt_printer.emulator_render import render  # noqa: E402
from devices.receipt_printer.escpos import EscPosEncoder  # noqa: E402
from kiosk import receipts  # noqa: E402

VALUES = {
    "terminal_id": "ZJ-HZ-XH-0012",
    "location": "杭州市西湖区文三路行政服务中心一楼大厅自助区",
    "printed_at": "2026-06-01 10:24",
    "receipt_number": "2026060133010600012345",
    "service_title": "城乡居民基本医疗保险参保登记",
    "applicant": "张*三",
    "departments": ["杭州市西湖区医疗保障局", "西湖区社会保险服务中心"],
    "commitments": [{"material": "户口簿首页及本人页复印件", "deadline": "2026-06-15"}, "居住证明"],
    "progress_url": "https://zwfw.example.gov.cn/progress/2026060133010600012345",
    "queued": False,
}
PAPER_SPEED_MM_S = 150.0  # a typical 80 mm kiosk printer


def logo() -> Image.Image:
    picture = Image.new("L", (576, 160), 255)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((208, 0, 368, 159), outline=0, width=10)
    draw.rectangle((40, 60, 536, 100), fill=0)
    return picture


def document(with_logo: bool) -> Document:
    doc = receipts.build("acceptance", VALUES)
    if with_logo:
        doc.blocks.insert(0, ImageBlock(logo()))
    return doc


def run(baud: int, doc: Document, repeat: int, out: Path) -> None:
    encoded = EscPosEncoder().encode(doc)
    wire_s = len(encoded.data) * 10 / baud
    paper_s = encoded.height_mm / PAPER_SPEED_MM_S
    with EscPosEmulator(baudrate=baud, out_dir=str(out / str(baud)), render=False) as emulator:
        printer = EscPosSerialPrinter("receipt_printer", port=emulator.port or "", baudrate=baud,
                                      status_timeout_s=2.0, print_speed_mm_s=0)
        printer.open()
        times = []
        try:
            for _ in range(repeat):
                started = time.perf_counter()
                printer.print_document(doc)
                times.append(time.perf_counter() - started)
        finally:
            printer.close()
        printed = emulator.receipts()
    assert len(printed) == repeat and all(r.cut for r in printed), "the emulator did not get every receipt"
    print(f"{baud:>7} baud  {len(encoded.data):>6} bytes  wire {wire_s * 1000:7.0f} ms  "
          f"print_document {statistics.median(times) * 1000:7.0f} ms (median of {repeat}, "
          f"min {min(times) * 1000:.0f})  paper {encoded.height_mm:.0f} mm = {paper_s * 1000:.0f} ms "
          f"at {PAPER_SPEED_MM_S:g} mm/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--repeat", type=int, default=3)
    parser.add_argument("--baud", type=int, action="append", help="baud rates (default 9600 and 115200)")
    parser.add_argument("--logo", action="store_true", help="add a 576x160 picture at the top")
    args = parser.parse_args(argv)
    doc = document(args.logo)
    print(f"acceptance receipt{' with logo' if args.logo else ''}: "
          f"{sum(1 for _ in doc.blocks)} blocks, ESC/POS {len(EscPosEncoder().encode(doc).data)} bytes")
    with tempfile.TemporaryDirectory(prefix="receipt-bench-") as tmp:
        for baud in args.baud or [9600, 115200]:
            run(baud, doc, args.repeat, Path(tmp))
        # the emulator's render of the same receipt, as its render thread does after the cut
        from devices.receipt_printer.emulator_model import PrinterModel

        model = PrinterModel()
        model.feed(EscPosEncoder().encode(doc).data)
        elements = model.receipts[0].elements
        render(elements, model.dots)  # warm the glyph cache once, as a running emulator has
        times = []
        for _ in range(max(3, args.repeat)):
            started = time.perf_counter()
            page = render(elements, model.dots)
            page.save(Path(tmp) / "render.png", optimize=True)
            times.append(time.perf_counter() - started)
        print(f"render to PNG: {page.width}x{page.height} dots, {statistics.median(times) * 1000:.0f} ms "
              f"(median of {len(times)}, glyphs cached; first render {len(elements)} elements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
