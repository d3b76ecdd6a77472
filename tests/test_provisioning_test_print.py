"""`python -m provisioning test-print` as a technician runs it: a subprocess against the
ESC/POS emulator on a real pty (and, with --a4, a private cupsd in tests/devices)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from devices.receipt_printer.emulator import EscPosEmulator

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = "ZJ-TEST-0007"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    env.update({"KIOSK__TERMINAL__ID": TERMINAL, "KIOSK__TERMINAL__LOCATION": "测试网点一楼大厅"})
    return subprocess.run([sys.executable, "-m", "provisioning", "test-print", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[tuple[EscPosEmulator, str]]:
    emu = EscPosEmulator(link=str(tmp_path / "printer.tty"), out_dir=str(tmp_path / "out"))
    port = emu.start()
    yield emu, port
    emu.stop()


def test_prints_the_terminal_id_chinese_and_a_native_qr_code(printer: tuple[EscPosEmulator, str]) -> None:
    printer, port = printer
    done = run("--port", port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "printed a test receipt" in done.stdout and "打印测试 " + TERMINAL in done.stdout
    receipts = printer.receipts()
    assert len(receipts) == 1 and receipts[0].cut
    text = receipts[0].text
    assert TERMINAL in text and "测试网点一楼大厅" in text
    assert "高效办成一件事" in text and "￥12.50" in text and "𠮷" in text  # GB18030, incl. a 4-byte character
    assert "GS ( k" in " ".join(receipts[0].commands)  # the printer's own QR command, not a picture
    assert [q.data.decode() for q in receipts[0].qr_codes()] == [f"打印测试 {TERMINAL}"]
    png = receipts[0].png
    assert png is not None
    decoded = zxingcpp.read_barcodes(Image.open(png).convert("L"))
    assert [d.text for d in decoded] == [f"打印测试 {TERMINAL}"]


def test_out_of_paper_is_exit_4_and_says_so(printer: tuple[EscPosEmulator, str]) -> None:
    printer, port = printer
    printer.paper_out()
    done = run("--port", port)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "did not print" in done.stderr and "paper" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert printer.receipts() == []


def test_a_silent_printer_is_exit_3(printer: tuple[EscPosEmulator, str]) -> None:
    printer, port = printer
    printer.silent(True)
    done = run("--port", port)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_no_printer_on_the_port_is_exit_3(tmp_path: Path) -> None:
    done = run("--port", str(tmp_path / "no-such-tty"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot open the receipt printer" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_setting_is_exit_2_with_the_reason(printer: tuple[EscPosEmulator, str]) -> None:
    printer, port = printer
    done = run("--port", port, "--baud", "-5")
    assert done.returncode == 2 and "baud" in done.stderr.lower(), done.stderr


def test_a4_prints_a_test_page_through_cups_and_follows_the_job() -> None:
    from devices.a4_printer.emulator import CupsPdfEmulator

    cups = CupsPdfEmulator()
    server = cups.start()
    try:
        done = run("--a4", "--server", server, "--queue", cups.queue, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "printed an A4 test page" in done.stdout and "done" in done.stdout
        printed = cups.printed()
        assert len(printed) == 1 and printed[0].read_bytes().startswith(b"%PDF")
        cups.stop_queue("paper out (test)")
        cups.reject("closed for the test")
        refused = run("--a4", "--server", server, "--queue", cups.queue, timeout=120)
        assert refused.returncode == 4 and "Traceback" not in refused.stderr, refused.stderr
    finally:
        cups.stop()


def test_a4_without_a_print_server_is_exit_3() -> None:
    done = run("--a4", "--server", "127.0.0.1:9", "--queue", "KioskA4", timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot reach" in done.stderr and "Traceback" not in done.stderr
