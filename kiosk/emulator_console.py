"""Drive the emulated devices from the terminal's own console while the kiosk runs.

`scripts/start.sh` runs the kiosk on emulators; without this a developer or technician
could not put a card on the emulated reader. Lines typed on standard input become
emulator actions: `place resident`, `remove`, `unplug`, `replug`, `cards`, `help`.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

HELP = """emulated devices: type a command and Enter
  cards              list the test cards
  place CARD         put a card on the ID-card reader (e.g. place resident)
  remove             take the card away
  fail               the next card read fails
  unplug | replug    pull the reader's cable out / plug it back in
  camera COMMAND     the emulated camera: camera help lists its commands
                     (person, pose yaw=25, photo, screen, noface, two, leave, unplug, ...)
  printer COMMAND    the emulated receipt printer (low, out, ok, jam, silent, receipts, ...)
  a4 COMMAND         the emulated A4 printer (its private CUPS: stop, resume, printed, ...)
  scanner COMMAND    the emulated document scanner or camera (place, blur, remove, jam, ...)
  qr COMMAND         the emulated QR scanner (scan TEXT, garbage, partial, unplug, ...)
  smartcard COMMAND  the emulated social security card reader (insert zhang-san, remove,
                     pull, unplug, restart, ...)
  help               this text"""


# console word -> the [devices.<name>] whose emulator takes the rest of the line
CONSOLE_DEVICES = {"camera": "camera", "printer": "receipt_printer", "a4": "a4_printer",
                   "scanner": "scanner", "qr": "qr_scanner", "smartcard": "smartcard"}


def handle(line: str, emulators: dict[str, Any], out: TextIO) -> None:
    """Carry out one console command; unknown input is answered, never fatal."""
    words = line.split()
    if not words:
        return
    idcard = emulators.get("idcard")
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd == "help":
            out.write(HELP + "\n")
        elif cmd in CONSOLE_DEVICES:
            emulator = emulators.get(CONSOLE_DEVICES[cmd])
            out.write((emulator.command(" ".join(args) or "help") if emulator is not None
                       else f"no emulated {CONSOLE_DEVICES[cmd]} in this configuration") + "\n")
        elif idcard is None:
            out.write("no emulated ID-card reader in this configuration\n")
        elif cmd == "cards":
            out.write("  ".join(idcard.cards()) + "\n")
        elif cmd == "place" and len(args) == 1:
            idcard.place_card(args[0])
            out.write(f"card {args[0]} placed\n")
        elif cmd == "remove":
            idcard.remove_card()
            out.write("card removed\n")
        elif cmd == "fail":
            idcard.fail_next_read()
            out.write("the next read will fail\n")
        elif cmd == "unplug":
            idcard.unplug()
            out.write("reader unplugged\n")
        elif cmd == "replug":
            idcard.replug()
            out.write("reader plugged in again\n")
        else:
            out.write(f"unknown command {line.strip()!r}; type help\n")
    except (KeyError, ValueError) as exc:
        out.write(f"{exc}; type cards for the card names\n")
    out.flush()


def start_console(emulators: dict[str, Any], stream: TextIO = sys.stdin,
                  out: TextIO = sys.stdout) -> threading.Thread | None:
    """Read commands from an interactive console in a daemon thread; None when not a tty."""
    if not emulators or not stream.isatty():
        return None
    out.write(HELP + "\n")
    out.flush()

    def run() -> None:
        for line in stream:
            handle(line, emulators, out)

    thread = threading.Thread(target=run, name="emulator-console", daemon=True)
    thread.start()
    return thread
