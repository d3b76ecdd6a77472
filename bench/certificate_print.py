"""Certificates: render time (fpdf2, embedded Chinese font, QR) and submit-to-done time through CUPS.

Prints; never asserts.

    .venv/bin/python bench/certificate_print.py            # 5 renders and 5 jobs of each size
    .venv/bin/python bench/certificate_print.py -n 10

Render: a 1-page and a 3-page 社会保险个人权益记录 (a summary, a contribution table
breaking over pages with its header repeated, notes, QR code, footers), from data to
PDF bytes, in this process (the first render also loads the font's character map).

Print: the real CUPS driver (CupsPrinter) against the emulator's private cupsd
(CupsPdfEmulator: loopback IPP, CUPS' filters, the cups-pdf backend, Ghostscript), from
submit() to wait() seeing the job completed, polling every 20 ms. A real printer adds its
own warm-up and paper time; this is the host's share. Needs root (cups-pdf runs as root).
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices.a4_printer.driver import CupsPrinter
from devices.a4_printer.emulator import CupsPdfEmulator
from devices.a4_printer.interface import JobState
from kiosk.certificates import render_certificate

PRINTED_AT = dt.datetime(2026, 11, 27, 10, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def certificate(months: int) -> dict[str, Any]:
    """Synthetic data shaped as the platform sends it (masked ID number)."""
    return {
        "kind": "social_insurance_record",
        "title": {"zh-CN": "社会保险个人权益记录", "en": "Social insurance personal rights record"},
        "holder": {"name": "张三", "id_number": "110101********1234"},
        "issuer": "某市社会保险事业管理中心",
        "issued_at": "2026-11-27T10:00:00+08:00",
        "verification_code": "SI-2026-8F3K-22QX",
        "verify_url": "https://zwfw.example.gov.cn/verify?c=SI-2026-8F3K-22QX",
        "summary": [["参保险种", "职工基本养老保险"], ["参保状态", "正常参保"], ["累计缴费月数", str(months)]],
        "table": {"columns": ["年月", "缴费基数", "单位缴纳", "个人缴纳", "缴费单位"],
                  "rows": [[f"{2012 + (i + 6) // 12}-{(i + 6) % 12 + 1:02d}", "8000.00", "1280.00", "640.00",
                            "某某信息科技有限公司"] for i in range(months)]},
        "notes": ["本记录由自助终端打印，与经办机构柜台出具的记录具有同等效力。",
                  "如对记录有异议，请携带身份证到参保地社保经办机构核实。"],
    }


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def months_for(pages: int) -> int:
    """The smallest table that makes a certificate of `pages` pages."""
    months = 1
    while page_count(render_certificate(certificate(months), "BENCH-0001", PRINTED_AT)) < pages:
        months += 8
    while months > 1 and page_count(render_certificate(certificate(months - 1), "BENCH-0001", PRINTED_AT)) >= pages:
        months -= 1
    return months


def timed(fn: Callable[[], Any], n: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def line(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (f"  {label:<34} median {statistics.median(ms):7.1f} ms   min {min(ms):7.1f}   max {max(ms):7.1f}"
            f"   (n={len(ms)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="renders and jobs per size (default 5)")
    args = parser.parse_args(argv)

    sizes = {1: 12, 3: months_for(3)}
    documents: dict[int, bytes] = {}
    print("render (data -> PDF bytes):")
    for pages, months in sizes.items():
        times, pdf = timed(functools.partial(render_certificate, certificate(months), "BENCH-0001", PRINTED_AT),
                           args.n)
        documents[pages] = pdf
        print(line(f"{pages}-page certificate ({months} rows, {len(pdf) // 1024} KiB)", times))

    print("print (submit -> completed, private cupsd + cups-pdf):")
    emulator = CupsPdfEmulator()
    start = time.perf_counter()
    address = emulator.start()
    print(f"  emulator start (cupsd + lpadmin)   {1000 * (time.perf_counter() - start):7.1f} ms   on {address}")
    try:
        printer = CupsPrinter("a4_printer", queue=emulator.DRIVER_DEFAULTS["queue"], server=address,
                              poll_interval_s=0.02)
        printer.open()

        def one_job(pdf: bytes) -> float:
            submit = time.perf_counter()
            job = printer.submit(pdf, "social_insurance_record")
            queued = time.perf_counter() - submit
            final = printer.wait(job, 120)
            if final.state is not JobState.DONE:
                raise SystemExit(f"job did not print: {final.describe()}")
            return queued

        first, _ = timed(lambda: one_job(documents[1]), 1)
        print(line("first job (cold filters)", first))
        for pages, pdf in documents.items():
            submits: list[float] = []
            times, _ = timed(functools.partial(lambda s, d: s.append(one_job(d)), submits, pdf), args.n)
            print(line(f"{pages}-page certificate, to done", times))
            print(line(f"{pages}-page certificate, submit() alone", submits))
        printer.close()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
