"""Helpers for the receipt printer tests: an emulator on a real pty and the real driver on it.

Import the fixtures into a test module (`from receipt_printer_harness import printer_emu,
printer`); conftest.py's `emulator` fixture is the camera's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from devices.base import DeviceEvent
from devices.receipt_printer.driver import EscPosSerialPrinter
from devices.receipt_printer.emulator import EscPosEmulator
from devices.receipt_printer.emulator_render import FONT_PATH
from waiting import wait_until  # noqa: F401 - the tests import it from here

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "receipts"

SAMPLE_VALUES: dict[str, Any] = {
    "terminal_id": "ZJ-HZ-XH-0012",
    "location": "杭州市西湖区文三路行政服务中心一楼大厅自助区",
    "printed_at": "2026-06-01 10:24",
    "accepted_at": "2026-06-01 10:24",
    "receipt_number": "2026060133010600012345",
    "service_title": "城乡居民基本医疗保险参保登记",
    "applicant": "张*三",
    "departments": ["杭州市西湖区医疗保障局", "西湖区社会保险服务中心"],
    "commitments": [{"material": "户口簿首页及本人页复印件", "deadline": "2026-06-15"}, "居住证明"],
    "progress_url": "https://zwfw.example.gov.cn/progress/2026060133010600012345",
    "queued": True,
}
TICKET_VALUES: dict[str, Any] = {
    "location": "西湖区行政服务中心",
    "ticket_number": "A023",
    "service_title": "社保业务",
    "waiting_ahead": 5,
    "counter": "3号窗口",
    "printed_at": "2026-06-01 10:24",
    "terminal_id": "ZJ-HZ-XH-0012",
}
PROGRESS_VALUES: dict[str, Any] = {
    "receipt_number": "2026060133010600012345",
    "service_title": "城乡居民基本医疗保险参保登记",
    "accepted_at": "2026-06-01 10:24",
    "departments": ["杭州市西湖区医疗保障局"],
    "status": "审核中",
    "steps": [{"time": "2026-06-01 10:24", "step": "自助终端受理"},
              {"time": "2026-06-01 14:02", "step": "医保局窗口预审通过，转入复核"}],
    "commitments": [{"material": "居住证明", "deadline": "2026-06-15"}],
    "progress_url": "https://zwfw.example.gov.cn/progress/2026060133010600012345",
    "printed_at": "2026-06-03 09:00",
    "terminal_id": "ZJ-HZ-XH-0012",
}


def require_font() -> None:
    if not FONT_PATH.is_file():
        pytest.fail(f"{FONT_PATH} is missing: apt-get install fonts-wqy-microhei")


class Events:
    def __init__(self, device: EscPosSerialPrinter) -> None:
        self.items: list[DeviceEvent] = []
        device.subscribe(self.items.append)

    def kinds(self, *kinds: str) -> list[DeviceEvent]:
        return [e for e in self.items if e.kind in kinds]

    def paper(self) -> list[str]:
        return [e.kind for e in self.kinds("paper_low", "paper_out", "paper_ok")]


def make_printer(emulator: EscPosEmulator, **kwargs: Any) -> EscPosSerialPrinter:
    params: dict[str, Any] = dict(port=emulator.link or emulator.port, status_timeout_s=0.5,
                                  **EscPosEmulator.DRIVER_DEFAULTS)
    params.update(kwargs)
    return EscPosSerialPrinter("receipt_printer", **params)


@pytest.fixture
def printer_emu(tmp_path: Path) -> Iterator[EscPosEmulator]:
    require_font()
    emu = EscPosEmulator(link=str(tmp_path / "dev" / "printer"), out_dir=str(tmp_path / "receipts"))
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def printer(printer_emu: EscPosEmulator) -> Iterator[EscPosSerialPrinter]:
    p = make_printer(printer_emu)
    p.open()
    yield p
    p.close()
