"""selftest: check every configured device and print a pass/fail table.

For a technician at the terminal (with the kiosk stopped: the kiosk service holds its
devices): every enabled device in the configuration (or those named with --device) is
opened, asked for its status and its self-test, and the receipt printer prints its test
receipt. The table says which device failed and what to check. --emulated runs every
chosen device on its emulator, as `python main.py --emulated` does, to prove the tool
(and the configuration's drivers) without hardware.

The checks themselves are kiosk/device_checks.py, the same ones the kiosk's maintenance
screen runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning.console import EXIT_OK, Failure, guarded, load_config_or_fail, write

NAME = "selftest"
SUMMARY = "check every configured device: status, self-test and a test receipt; a pass/fail table"
EXAMPLE = "python -m provisioning selftest   |   selftest --device idcard --device receipt_printer --no-print"

EXIT_USAGE = 2  # also argparse's code for a bad argument
EXIT_FAILED = 3  # some device failed its check: the table says which and what to check

STOP_KIOSK = ("the kiosk service holds its devices while it runs: stop the kiosk first (systemctl stop "
              "kiosk-retry.service kiosk.service), run the test, then start it again (systemctl start "
              "kiosk.service), or use the maintenance screen in the running kiosk")


# -- shared with `diagnose` ------------------------------------------------------------------------
@dataclass
class Bench:
    """The devices under test and what was started for them; `close()` releases everything."""

    devices: dict[str, Any]
    emulators: dict[str, Any] = field(default_factory=dict)
    kiosk: list[Any] = field(default_factory=list)  # device_setup.Holder of a running kiosk
    run_dir: Path | None = None

    def close(self) -> None:
        from kiosk.device_checks import close_all
        from kiosk.device_setup import stop_emulators

        try:
            close_all(self.devices)
        finally:
            stop_emulators(self.emulators)
            if self.run_dir is not None:
                shutil.rmtree(self.run_dir, ignore_errors=True)


def open_bench(cfg: Any, names: Iterable[str] | None, *, emulate_all: bool = False) -> Bench:
    """Open the chosen devices (kiosk.device_checks.selected_names), on their emulators when
    configured with `emulate = true` or `emulate_all`. A device whose port the running kiosk
    holds is left alone and reported as unavailable. UnknownDevice for an unknown name."""
    from kiosk.device_checks import open_configured, selected_names
    from kiosk.device_setup import (
        device_address,
        processes_holding,
        running_kiosk,
        start_emulators,
        terminal_paths,
    )

    chosen = selected_names(cfg, names)
    emulated = [n for n in chosen if emulate_all or cfg.devices[n].emulate]
    real = [n for n in chosen if n not in emulated]
    unavailable: dict[str, str] = {}
    kiosk = running_kiosk(terminal_paths(cfg))
    if kiosk and real:
        pids = {h.pid for h in kiosk}
        addresses = {n: device_address(cfg.devices[n]) for n in real}
        held = processes_holding(a for a in addresses.values() if a is not None)
        for name, address in addresses.items():
            by_kiosk = [h for h in held.get(address, []) if h.pid in pids] if address is not None else []
            if by_kiosk:
                unavailable[name] = (f"{address} is in use by the running kiosk, {by_kiosk[0].describe()}: "
                                     f"{STOP_KIOSK}")
    run_dir = Path(tempfile.mkdtemp(prefix="kiosk-selftest-")) if emulated else None
    emulators: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    try:
        if emulated:
            assert run_dir is not None
            emulators, params, failed = start_emulators(cfg, emulated, run_dir)
            unavailable.update(failed)
        devices = open_configured(cfg, chosen, params=params, unavailable=unavailable)
    except BaseException:
        Bench({}, emulators, kiosk, run_dir).close()
        raise
    return Bench(devices, emulators, kiosk, run_dir)


def add_port_hints(cfg: Any, bench: Bench, checks: list[Any]) -> None:
    """Under a failed real device whose port another process has open, say which process."""
    from devices.base import SelfTestResult
    from kiosk.device_setup import device_address, processes_holding

    addresses = {c.name: device_address(cfg.devices[c.name]) for c in checks
                 if not c.passed and c.name not in bench.emulators and c.name in cfg.devices}
    held = processes_holding(a for a in addresses.values() if a is not None)
    for check in checks:
        address = addresses.get(check.name)
        holders = held.get(address, []) if address is not None else []
        if holders and not any("in use by the running kiosk" in r.detail for r in check.results):
            check.results.append(SelfTestResult(
                "port free", False, f"{address} is also open in {holders[0].describe()}; if that is the kiosk, "
                                    f"{STOP_KIOSK}"))


# -- the command -------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add the selftest subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME, help=SUMMARY, description=__doc__,
        epilog=f"""examples:
  {EXAMPLE}
  python -m provisioning selftest --emulated              every device on its emulator (no hardware)
  python -m provisioning selftest --json > selftest.json  for a support ticket

exit codes:
  0  every device passed
  3  some device failed (the table says which and what to check)
  2  bad arguments or configuration (an unknown --device name lists the configured ones)
  1  internal error (run with --verbose and report it)""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the terminal's configuration file (default: as the kiosk finds it)")
    parser.add_argument("--device", action="append", metavar="NAME",
                        help="check only this [devices.<name>] (repeat for more; default: every enabled device)")
    parser.add_argument("--no-print", action="store_true", help="do not print the test receipt")
    parser.add_argument("--a4-page", action="store_true", help="also print the A4 test page on A4 printers")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--emulated", action="store_true",
                        help="run every chosen device on its emulator, as `python main.py --emulated` does")
    parser.add_argument("--details", action="store_true", help="list every check, not only the failed ones")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log the drivers' steps on stderr")
    parser.set_defaults(run=run)


def _progress(name: str, what: str) -> None:
    print(f"{NAME}: {name}: {what}", file=sys.stderr, flush=True)


def _emulated_receipts(bench: Bench) -> list[str]:
    """Where the emulated receipt printers drew what they printed (after the emulators stopped)."""
    lines = []
    for name, emulator in bench.emulators.items():
        receipts = getattr(emulator, "receipts", None)
        if not callable(receipts):
            continue
        try:
            pngs = [r.png for r in receipts() if getattr(r, "png", None)]
        except Exception:
            continue
        if pngs:
            lines.append(f"emulated {name}: the printed receipt is drawn in {pngs[-1]}")
    return lines


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    """Check the devices; print the table; return the exit code (see the epilog in register())."""
    # OpenCV's own notes (DNN backends) are not for a technician's console; its errors still show
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from kiosk.device_checks import UnknownDevice, check_devices, format_table

    cfg = load_config_or_fail(args.config, EXIT_USAGE)
    if not args.device and not any(d.enabled for d in cfg.devices.values()):
        raise Failure(EXIT_USAGE, "no enabled devices in the configuration: nothing to check")
    try:
        bench = open_bench(cfg, args.device, emulate_all=args.emulated)
    except UnknownDevice as exc:
        raise Failure(EXIT_USAGE, str(exc)) from None
    try:
        if bench.kiosk:
            print(f"{NAME}: the kiosk is running ({bench.kiosk[0].describe()}); devices it holds are not tested",
                  file=sys.stderr)
        checks = check_devices(bench.devices, print_test_page=not args.no_print, print_a4=args.a4_page,
                               terminal_id=cfg.terminal.id, location=cfg.terminal.location, progress=_progress)
        add_port_hints(cfg, bench, checks)
        for check in checks:  # a hint added after the check fails it
            check.passed = check.passed and all(r.passed for r in check.results)
    finally:
        bench.close()
    passed = all(c.passed for c in checks)
    if args.json:
        write(json.dumps({"terminal": cfg.terminal.id, "passed": passed,
                          "devices": [c.as_dict() for c in checks]}, ensure_ascii=False, indent=2) + "\n")
    else:
        text = format_table(checks, details=args.details)
        extra = _emulated_receipts(bench) if not args.no_print else []
        write(f"self-test of terminal {cfg.terminal.id}\n" + text + "".join(line + "\n" for line in extra))
    return EXIT_OK if passed else EXIT_FAILED
