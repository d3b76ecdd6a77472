"""detect: find what is plugged in where, and say which [devices.<name>] section would use it.

For a technician installing a terminal: one command looks at every device stack the
kiosk uses and answers in words, device by device, with the driver and parameters to
configure it. `--output FILE` saves the same as JSON for `python -m provisioning
configure --from FILE`, which writes the terminal's config from it.

What is looked at (each with a short timeout; on an empty machine it takes seconds):

- serial ports: /dev/ttyUSB*, /dev/ttyACM*, the /dev/ttyS* with a UART behind them, and
  every --port; asked first for ESC/POS status (printers), then for SAM status (ID-card
  readers), so that no device is sent what could harm it; silent ports may be QR
  scanners: --listen waits for a scanned code (provisioning/probes/serial_ports.py).
  Ports held by another program (the running kiosk) are not touched: it is named;
- PC/SC smart-card readers, through pcscd (--read-cards: which card profile reads the card);
- cameras: /dev/video* that give a picture, and every --camera URL;
- CUPS queues (state, accepting jobs, A4 paper); SANE scanners.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import sys
import threading
import unicodedata
from pathlib import Path
from typing import Any

from provisioning.console import EXIT_OK, Failure, guarded, write
from provisioning.probes import KINDS, Finding, PortReport, Problem, Results

NAME = "detect"
SUMMARY = "find the devices plugged in (serial, PC/SC, cameras, CUPS, SANE) and suggest their config"
EXAMPLE = "python -m provisioning detect --listen 10 --output detected.json"

EXIT_USAGE = 2  # also argparse's code for a bad argument
EXIT_NAMED_UNKNOWN = 3  # detection ran, but a --port/--camera named was not recognised as a device

FORMAT = "kiosk-detect/1"
RECOGNISED = ("receipt_printer", "idcard", "qr_scanner")  # port states that are a device
CLASS_WORDS = {
    "idcard": "ID-card reader",
    "receipt_printer": "receipt printer",
    "qr_scanner": "QR/barcode scanner",
    "smartcard": "smart-card reader (社会保障卡)",
    "camera": "camera",
    "a4_printer": "A4 printer",
    "scanner": "document scanner",
}
JSON_HELP = """JSON (--json on stdout, --output FILE for configure):
  {"format": "kiosk-detect/1", "detected_at": ISO time, "host": name,
   "looked_for": [serial, pcsc, camera, cups, sane: the kinds that were looked at],
   "detected": [{"class", "driver", "params": {...}, "where", "evidence",
                 "confidence": "certain" | "likely", "facts": {...}}, ...],
   "problems": [{"kind", "where", "message"}, ...],
   "ports": [{"port", "state", "detail", "named", "baudrate"}, ...]}
  a port's state: receipt_printer, idcard, qr_scanner, garbage, silent, in_use,
  console, cannot_open. Scanned codes and card data are never in it."""


# -- looking ----------------------------------------------------------------------------------------
def _check_named_port(port: str) -> None:
    """Failure (exit 2) naming a --port that cannot be a port, or an address nothing listens on."""
    from provisioning.probes.serial_ports import not_a_port

    why = not_a_port(port)
    if why is None and port.startswith("socket://"):
        host, _, number = port[len("socket://"):].partition("?")[0].rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(number)), timeout=2).close()
        except (OSError, ValueError) as exc:
            why = (f"cannot be reached ({getattr(exc, 'strerror', None) or exc}): check the address and that the "
                   "serial-device server is powered and on the network")
    if why is not None:
        raise Failure(EXIT_USAGE, f"--port {port} {why}")


def look_at_serial(named: list[str], scan: bool, timeout: float) -> Results:
    """Probe the named ports and (with `scan`) the machine's own; one thread per port."""
    from provisioning.probes import consoles, holders
    from provisioning.probes import serial_ports as sp

    results = Results()
    ports: list[tuple[str, bool]] = [(p, True) for p in dict.fromkeys(named)]
    if scan:
        seen = {os.path.realpath(p) for p in named if not sp.is_url(p)}
        ports += [(p, False) for p in sp.candidate_ports() if os.path.realpath(p) not in seen]
    local = [p for p, _ in ports if not sp.is_url(p)]
    held = holders(local) if local else {}
    console = consoles()
    reports: dict[str, tuple[PortReport, Finding | None]] = {}

    def one(port: str, is_named: bool) -> None:
        reports[port] = sp.probe_port(port, is_named, timeout)

    threads = []
    for port, is_named in ports:
        if not sp.is_url(port) and os.path.basename(os.path.realpath(port)) in console:
            reports[port] = (PortReport(port, "console", (
                "the system console (kernel messages and perhaps a login go there): not probed; to use it for a "
                "device, remove console= for it from the kernel command line"), is_named), None)
        elif held.get(port):
            users = ", ".join(map(str, held[port]))
            reports[port] = (PortReport(port, "in_use", (
                f"in use by {users}: not probed; if that is the running kiosk, stop it with `systemctl stop kiosk` "
                "and run detect again"), is_named), None)
        else:
            threads.append(threading.Thread(target=one, args=(port, is_named), name=f"probe-{port}", daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 12 + 10)
    for port, is_named in ports:
        report, finding = reports.get(port, (PortReport(port, "silent", "the probe did not finish", is_named), None))
        results.ports.append(report)
        if finding is not None:
            results.findings.append(finding)
        if report.state in ("in_use", "cannot_open"):
            results.problems.append(Problem("serial", port, report.detail))
    return results


def _listen(results: Results, seconds: float, baud: int) -> None:
    from provisioning.probes import serial_ports as sp

    silent = [r for r in results.ports if r.state == "silent"]
    if not silent or seconds <= 0:
        return
    def ready() -> None:
        print(f"{NAME}: listening {seconds:g} s on {', '.join(r.port for r in silent)} at {baud} baud: "
              "scan any QR code or barcode with each scanner now", file=sys.stderr, flush=True)

    results.findings += sp.listen(silent, seconds, baud, ready)


def detect(args: argparse.Namespace) -> tuple[Results, list[str], list[str]]:
    """Everything detect looks at; (results, kinds looked at, --camera URLs that gave no picture)."""
    kinds = [k for k in KINDS if (k in args.only if args.only else k not in (args.skip or []))]
    results = Results()
    serial_results = Results()
    serial_thread = None
    if "serial" in kinds:  # the slowest part runs beside the others
        def serial_work() -> None:
            serial_results.add(look_at_serial(args.port or [], not args.named_only, args.probe_timeout))

        serial_thread = threading.Thread(target=serial_work, name="serial-probes", daemon=True)
        serial_thread.start()
    failed_cameras: list[str] = []
    try:
        if "pcsc" in kinds:
            from provisioning.probes import pcsc

            results.add(pcsc.probe(args.pcsc_socket, args.read_cards))
        if "camera" in kinds:
            from provisioning.probes import cameras

            devices = [] if args.named_only else cameras.candidate_devices()
            found, failed_cameras = cameras.probe(devices, list(dict.fromkeys(args.camera or [])),
                                                  max(1.0, args.probe_timeout * 5))
            results.add(found)
        if "cups" in kinds:
            from provisioning.probes import cups_queues

            results.add(cups_queues.probe(args.cups_server, max(1.0, args.probe_timeout * 3)))
        if "sane" in kinds:
            from provisioning.probes import sane_scanners

            results.add(sane_scanners.probe(args.sane_config_dir))
    finally:
        if serial_thread is not None:
            serial_thread.join()
    _listen(serial_results, args.listen, args.listen_baud)
    serial_results.add(results)
    if not any(f.device_class == "scanner" for f in serial_results.findings):
        from provisioning.probes.cameras import pick_document_camera

        pick_document_camera(serial_results.findings)
    return serial_results, kinds, failed_cameras


# -- saying it ----------------------------------------------------------------------------------------
def as_document(results: Results, kinds: list[str], when: dt.datetime) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "detected_at": when.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "looked_for": kinds,
        "detected": [f.as_json() for f in results.findings],
        "problems": [p.as_json() for p in results.problems],
        "ports": [r.as_json() for r in results.ports],
    }


def toml_value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _pad(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns (a hanzi takes two)."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - columns)


def suggestion(finding: Finding, section: str) -> str:
    keys = [f'driver = "{finding.driver}"'] + [f"{k} = {toml_value(v)}" for k, v in finding.params.items()]
    return f"[devices.{section}] " + ", ".join(keys)


def table(results: Results, kinds: list[str], when: dt.datetime) -> str:
    from provisioning.configure import section_names

    names = section_names()
    out = [f"{NAME}: what is plugged in where ({when:%Y-%m-%d %H:%M}; looked at: {', '.join(kinds) or 'nothing'})", ""]
    if results.findings:
        out.append("FOUND")
        seen: dict[str, int] = {}
        for f in results.findings:
            seen[f.device_class] = seen.get(f.device_class, 0) + 1
            section = names.get(f.device_class, f.device_class)
            out.append(f"  {_pad(CLASS_WORDS.get(f.device_class, f.device_class), 30)} {f.where}")
            out.append(f"      {f.evidence}")
            if seen[f.device_class] == 1:
                out.append(f"      config ({f.confidence}): {suggestion(f, section)}")
            else:
                out.append(f"      another {f.device_class}: configure sets up the first one; to use this one "
                           f"too, add a section by hand: {suggestion(f, section + '_' + str(seen[f.device_class]))}")
    else:
        out.append("nothing found: no device answered"
                   + (f" on the {len(results.ports)} serial port(s) looked at" if results.ports else "")
                   + ("" if results.problems else "; check cables and power") + ".")
    others = [r for r in results.ports if r.state not in RECOGNISED]
    if others:
        out += ["", "SERIAL PORTS WITHOUT A DEVICE FOUND"]
        out += [f"  {r.port}: {r.detail}" for r in others]
    problems = [p for p in results.problems if not (p.kind == "serial" and any(r.port == p.where for r in others))]
    if problems:
        out += ["", "PROBLEMS"]
        out += [f"  - {p.message}" for p in problems]
    out += ["", ("next: save this with --output detected.json, then write the terminal's config with "
                 "python -m provisioning configure --from detected.json")]
    return "\n".join(out) + "\n"


def _save(path: str, document: dict[str, Any]) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise Failure(EXIT_USAGE, f"cannot write --output {path} ({exc.strerror or exc}): check the folder exists "
                                  "and is writable") from None


# -- the command ---------------------------------------------------------------------------------------
def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"{text} s: give 0 to 600 seconds")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0 or value > 10:
        raise argparse.ArgumentTypeError(f"{text} s: a probe waits more than 0 and at most 10 seconds")
    return value


def _baud(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a baud rate (e.g. 9600, 115200)")
    return int(text)


def _cups_server(text: str) -> str:
    from devices.a4_printer.driver import parse_server

    try:
        parse_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: give host:port (127.0.0.1:631) or a socket path") from None
    return text.strip()


def register(subparsers: Any) -> None:
    """Add the detect subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME, help=SUMMARY, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"""examples:
  {EXAMPLE}
  python -m provisioning detect --port /dev/ttyUSB0 --named-only --json
  python -m provisioning detect --camera http://192.0.2.20/stream.mjpg --read-cards
  python -m provisioning detect --only cups --cups-server 192.0.2.30:631

{JSON_HELP}

exit codes:
  0  detection ran (whatever it found, "nothing found" included)
  2  a bad argument: a --port that does not exist or cannot be reached, a bad value
  3  detection ran, but a --port or --camera you named is no device detect knows
     (garbage, silent, held by another program, no picture)
  1  internal error (run with --verbose and report it)""")
    parser.add_argument("--port", action="append", metavar="PATH_OR_URL",
                        help="also probe this serial port: a device path (/dev/serial/by-id/...) or a pyserial URL "
                        "(socket://HOST:PORT, a reader behind a serial-device server); repeatable")
    parser.add_argument("--camera", action="append", metavar="URL",
                        help="also try this camera: a network camera URL (http://.../stream.mjpg, rtsp://...) or a "
                        "device path; repeatable")
    parser.add_argument("--named-only", action="store_true",
                        help="probe only the --port and --camera given, not the machine's /dev/tty* and /dev/video*")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--only", action="append", choices=KINDS, metavar="KIND",
                       help=f"look only at these kinds ({', '.join(KINDS)}); repeatable")
    which.add_argument("--skip", action="append", choices=KINDS, metavar="KIND",
                       help="do not look at this kind; repeatable")
    parser.add_argument("--listen", type=_seconds, default=0.0, metavar="SECONDS",
                        help="wait this long on silent ports for a scanned code, to find QR scanners (default 0: "
                        "do not wait); scan a code when detect says it listens")
    parser.add_argument("--listen-baud", type=_baud, default=9600, metavar="BAUD",
                        help="line speed to listen at (default 9600, scanners' usual setting)")
    parser.add_argument("--probe-timeout", type=_positive_seconds, default=0.3, metavar="SECONDS",
                        help="how long each serial probe waits for an answer (default 0.3; a SAM gets twice that)")
    parser.add_argument("--pcsc-socket", default="", metavar="PATH",
                        help="pcscd's socket when it is not the system one (/run/pcscd/pcscd.comm)")
    parser.add_argument("--read-cards", action="store_true",
                        help="read a card found in a smart-card reader to say which card profile reads it "
                        "(nothing personal is shown)")
    parser.add_argument("--cups-server", type=_cups_server, default="", metavar="HOST:PORT|SOCKET",
                        help="the print server to ask (default: this machine's CUPS)")
    parser.add_argument("--sane-config-dir", default=os.environ.get("SANE_CONFIG_DIR", ""), metavar="DIR",
                        help="SANE's config dir (default: $SANE_CONFIG_DIR, else /etc/sane.d)")
    parser.add_argument("--json", action="store_true", help="print the JSON below instead of the words")
    parser.add_argument("--output", metavar="FILE", help="also save the JSON in FILE, for configure --from FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log the probes' steps on stderr")
    parser.set_defaults(run=run)


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    """Look, say what was found, save it; return the exit code (see the epilog in register())."""
    when = dt.datetime.now().astimezone()
    for port in dict.fromkeys(args.port or []):
        _check_named_port(port)
    results, kinds, failed_cameras = detect(args)
    document = as_document(results, kinds, when)
    if args.output:
        _save(args.output, document)
    if args.json:
        write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    else:
        write(table(results, kinds, when))
    unknown = [r.port for r in results.ports if r.named and r.state not in RECOGNISED] + failed_cameras
    if unknown:
        print(f"{NAME}: not recognised as a device: {', '.join(unknown)} (see above)", file=sys.stderr)
        return EXIT_NAMED_UNKNOWN
    return EXIT_OK
