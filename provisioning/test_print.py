"""test-print: print a test receipt (or, with --a4, a test page) and say what to look for.

For a technician at the terminal: proves the printer, its cable and its settings end to
end. The receipt carries the terminal's id, Chinese text (common, full-width and rare
characters), styles, a width ruler and a QR code printed by the printer's own command;
the A4 page goes through CUPS like a certificate and is followed until it is out.

Settings come from the terminal's configuration ([devices.receipt_printer] and
[devices.a4_printer]); options given here override them for this one print, so a
technician can try another baud rate or encoding before changing the file.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from typing import Any

from config.loader import ConfigError, load_config
from config.schema import KioskConfig
from devices.base import DeviceDisconnected, DeviceError, DeviceTimeout
from provisioning.console import EXIT_INTERNAL, EXIT_OK

NAME = "test-print"
SUMMARY = "print a test receipt (terminal id, Chinese, QR code), or --a4 a test page through CUPS"
EXAMPLE = "python -m provisioning test-print --port /dev/ttyS0   |   test-print --a4 --queue KioskA4"

EXIT_USAGE = 2  # also argparse's code for a bad argument
EXIT_UNREACHABLE = 3  # no printer there: port, cable, power, print server
EXIT_CANNOT_PRINT = 4  # the printer answered but did not print: paper, jam, cover, queue stopped


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(NAME, help=SUMMARY, description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the terminal's configuration file (default: as the kiosk finds it)")
    parser.add_argument("--device", default="", help="the [devices.<name>] to use (default: the [handout] printer)")
    receipt = parser.add_argument_group("receipt printer (ESC/POS over serial)")
    receipt.add_argument("--port", help="serial port or pyserial URL, e.g. /dev/ttyS0 (default: from the config)")
    receipt.add_argument("--baud", type=int, help="line speed, e.g. 9600 or 115200")
    receipt.add_argument("--encoding", choices=("gb18030", "gbk", "utf-8"), help="how the model prints Chinese")
    receipt.add_argument("--paper-width", type=int, choices=(58, 80), help="paper width in mm")
    a4 = parser.add_argument_group("A4 printer (CUPS)")
    a4.add_argument("--a4", action="store_true", help="print an A4 test page through CUPS instead")
    a4.add_argument("--queue", help="CUPS queue name, as `lpstat -p` lists it (default: from the config)")
    a4.add_argument("--server", help="print server host:port or socket path (default: from the config)")
    a4.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the page (default 120)")
    parser.set_defaults(run=run)


def _config(path: str | None) -> KioskConfig:
    return load_config(path)


def _params(cfg: KioskConfig, name: str, device_class: str) -> dict[str, Any]:
    section = cfg.devices.get(name)
    if section is None or section.device_class != device_class:
        return {}
    return section.driver_params()


def _driver(cls: type, name: str, params: dict[str, Any], overrides: dict[str, Any], required: str,
            missing: str) -> Any:
    """The driver from the config's parameters and this command's overrides; None (after
    saying why) when a setting is missing or wrong."""
    from pydantic import ValidationError

    params = {**params, **{k: v for k, v in overrides.items() if v is not None}}
    if not params.get(required):
        print(f"test-print: {missing}", file=sys.stderr)
        return None
    try:
        return cls(name, **params)
    except (ValidationError, TypeError, ValueError) as exc:
        print(f"test-print: bad printer setting: {exc}", file=sys.stderr)
        return None


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = _config(args.config)
    except ConfigError as exc:
        print(f"test-print: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return print_a4(cfg, args) if args.a4 else print_receipt(cfg, args)
    except KeyboardInterrupt:
        print("test-print: interrupted", file=sys.stderr)
        return EXIT_INTERNAL


# -- receipt printer ----------------------------------------------------------------------------------
def print_receipt(cfg: KioskConfig, args: argparse.Namespace) -> int:
    from devices.receipt_printer.driver import EscPosSerialPrinter
    from devices.receipt_printer.interface import PrinterFault
    from kiosk.device_checks import receipt_test_page

    name = args.device or cfg.handout.receipt_printer or "receipt_printer"
    printer = _driver(EscPosSerialPrinter, name, _params(cfg, name, "receipt_printer"),
                      {"port": args.port, "baudrate": args.baud, "encoding": args.encoding,
                       "paper_width": args.paper_width}, "port",
                      "no port: give --port (e.g. /dev/ttyS0) or set [devices.receipt_printer] port")
    if printer is None:
        return EXIT_USAGE
    page = receipt_test_page(printer, cfg.terminal.id, cfg.terminal.location, _now())  # shared with selftest
    settings, check, document = page.settings, page.check_code, page.document
    try:
        printer.open()
    except DeviceError as exc:
        print(f"test-print: cannot open the receipt printer: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        status = printer.status()
        if status.fault:
            print(f"printer status: {status.device.value}, paper {status.media.value}: {status.fault}")
        printer.print_document(document)
    except (DeviceDisconnected, DeviceTimeout) as exc:
        print(f"test-print: the printer stopped answering: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (PrinterFault, DeviceError) as exc:
        print(f"test-print: the printer did not print: {exc}", file=sys.stderr)
        return EXIT_CANNOT_PRINT
    finally:
        printer.close()
    print(f"printed a test receipt on {settings}.")
    print("Check the paper: the Chinese lines read correctly (no ? or garbled signs), the ruler line of "
          f"digits fits on one line, and a phone scanning the QR code shows: {check}")
    return EXIT_OK


# -- A4 printer ---------------------------------------------------------------------------------------
def print_a4(cfg: KioskConfig, args: argparse.Namespace) -> int:
    from devices.a4_printer.driver import CupsPrinter
    from devices.a4_printer.interface import JobState
    from kiosk.certificates import test_page

    name = args.device or cfg.handout.a4_printer or "a4_printer"
    printer = _driver(CupsPrinter, name, _params(cfg, name, "a4_printer"),
                      {"queue": args.queue or None, "server": args.server}, "queue",
                      "no CUPS queue: give --queue (see `lpstat -p`) or set [devices.a4_printer] queue")
    if printer is None:
        return EXIT_USAGE
    pdf = test_page(cfg.terminal.id, cfg.terminal.location, _now())
    try:
        printer.open()
    except DeviceError as exc:
        print(f"test-print: cannot reach the A4 printer: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        job = printer.submit(pdf, title="test-page")
        print(f"test page sent to queue {printer.queue} as job {job.job_id}")
        final = printer.wait(job, args.timeout, on_change=lambda st: print(f"  job {st.job_id}: {st.describe()}"))
    except DeviceDisconnected as exc:
        print(f"test-print: the print server went away: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except DeviceError as exc:
        print(f"test-print: the queue did not take the page: {exc}", file=sys.stderr)
        return EXIT_CANNOT_PRINT
    finally:
        printer.close()
    if final.state is not JobState.DONE:
        print(f"test-print: the page did not print: {final.describe()}", file=sys.stderr)
        return EXIT_CANNOT_PRINT
    print("printed an A4 test page. Check the paper: the Chinese text reads correctly, the frame and the "
          "ruler are whole (nothing cut off at the edges: scaling and margins), and the QR code scans.")
    return EXIT_OK
