"""ID card: time from card placed to identity parsed, beside the wire's lower bound. Prints; never asserts.

    .venv/bin/python bench/idcard_read.py                    # 20 placements, pty and socket://
    .venv/bin/python bench/idcard_read.py -n 50 --transport tcp --card foreigner-2023
    .venv/bin/python bench/idcard_read.py --interval 0.2     # with the supervisor's polling wait

The emulator paces its line like a real one (`pace_baud`, 115200 by default): a command
counts as received when its last byte would have arrived, a reply byte is delivered no
earlier than it would be on the wire. The real driver (SamSerialReader) reads through a
pty or a loopback socket:// connection.

Per placement: the card is taken away and the driver sees it go, the card is placed,
and the clock runs from placement to the driver's card_placed event carrying the parsed
identity (find 9F, select, read 30 01, appended address 30 03, text decoded, test photo
decoded, validity checked). With `--interval 0` (default) the driver polls right after
the placement, which measures the driver; with `--interval S` a thread polls every S
seconds as the supervisor does, so the wait for the next poll (S/2 on average) is added.

Lower bound: every byte of the find, select and read commands and their replies, at 10
bits a byte (8N1) / baud. The 30 03 exchange the driver adds is listed but not counted.
A real SAM also spends time talking to the card over RF; the emulator answers at once,
so these figures are the host side only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices.base import DeviceEvent  # noqa: E402
from devices.idcard import protocol as p  # noqa: E402
from devices.idcard.driver import SamSerialReader  # noqa: E402
from devices.idcard.emulator import SamEmulator  # noqa: E402
from devices.idcard.identity import encode_appended_address, encode_text_block  # noqa: E402


def wire_bytes(emulator: SamEmulator, card_id: str) -> dict[str, int]:
    """Bytes on the wire, both ways, of each exchange of one read (as the emulator answers it)."""
    card = emulator.card(card_id)
    blocks = p.build_card_blocks(encode_text_block(card), card.photo_wlt)
    appended = (p.build_response(p.SW3_SUCCESS, encode_appended_address(card.appended_address))
                if card.appended_address else p.build_response(p.SW3_NO_SUCH_ITEM))
    return {
        "find": len(p.build_command(*p.FIND_CARD)) + len(p.build_response(p.SW3_CARD_FOUND, bytes(4))),
        "select": len(p.build_command(*p.SELECT_CARD)) + len(p.build_response(p.SW3_SUCCESS, bytes(8))),
        "read": len(p.build_command(*p.READ_TEXT_PHOTO)) + len(p.build_response(p.SW3_SUCCESS, blocks)),
        "appended address (not in the bound)": len(p.build_command(*p.READ_APPENDED_ADDRESS)) + len(appended),
    }


class Placements:
    """Collects card_placed / card_removed events with the time they arrived."""

    def __init__(self, reader: SamSerialReader) -> None:
        self.placed = threading.Event()
        self.removed = threading.Event()
        self.at = 0.0
        self.error = ""
        reader.subscribe(self._on_event)

    def _on_event(self, event: DeviceEvent) -> None:
        if event.kind == "card_placed":
            self.at = time.perf_counter()
            identity = event.data.get("identity")
            self.error = "" if identity is not None else str(event.data.get("error"))
            if identity is not None:
                identity.wipe()
            self.placed.set()
        elif event.kind == "card_removed":
            self.removed.set()


def run(transport: str, card_id: str, runs: int, baud: int, interval: float) -> list[float]:
    """Milliseconds from placement to parsed identity, one per placement."""
    with tempfile.TemporaryDirectory(prefix="idcard-bench-") as tmp:
        emulator = SamEmulator(pace_baud=baud, **({"tcp_port": 0} if transport == "tcp"
                                                 else {"link": str(Path(tmp) / "idcard")}))
        port = emulator.start()
        reader = SamSerialReader("idcard", port=port, baudrate=baud, timeout_s=2.0, photo_decoder="emulator")
        events = Placements(reader)
        poller_stop = threading.Event()
        poller: threading.Thread | None = None
        times: list[float] = []
        try:
            reader.open()
            if interval > 0:
                def poll_forever() -> None:
                    while not poller_stop.wait(interval):
                        reader.poll()

                poller = threading.Thread(target=poll_forever, daemon=True)
                poller.start()
            for n in range(runs + 1):  # the first placement warms up caches and is not counted
                emulator.remove_card()
                if events.placed.is_set():  # let the driver see the card go first
                    if interval == 0:
                        while not events.removed.is_set():
                            reader.poll()
                    elif not events.removed.wait(10):
                        raise RuntimeError("no card_removed event within 10 s")
                events.placed.clear()
                events.removed.clear()
                if interval > 0:  # place at a random phase of the polling cycle
                    time.sleep(interval * (0.37 * n % 1.0))
                emulator.place_card(card_id)
                start = time.perf_counter()
                if interval == 0:
                    reader.poll()
                if not events.placed.wait(10):
                    raise RuntimeError("no card_placed event within 10 s")
                if events.error:
                    raise RuntimeError(f"card placed but not read: {events.error}")
                if n:
                    times.append((events.at - start) * 1000)
        finally:
            poller_stop.set()
            if poller is not None:
                poller.join(timeout=5)
            reader.close()
            emulator.stop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:5]))
    parser.add_argument("-n", "--runs", type=int, default=20, help="placements per transport (default 20)")
    parser.add_argument("--card", default="resident", help="card id from devices/idcard/cards (default resident)")
    parser.add_argument("--baud", type=int, default=115200, help="line speed the emulator paces (default 115200)")
    parser.add_argument("--transport", choices=("pty", "tcp", "both"), default="both")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="poll every S seconds like the supervisor (default 0: poll right after placing)")
    args = parser.parse_args()

    probe = SamEmulator()
    parts = wire_bytes(probe, args.card)
    counted = sum(v for k, v in parts.items() if "not in" not in k)
    bound_ms = counted * 10 / args.baud * 1000
    print(f"ID-card read bench: card {args.card}, {args.runs} placements per transport, "
          f"emulator paced at {args.baud} baud 8N1, "
          + (f"polling every {args.interval:g} s" if args.interval else "polled right after placing"))
    for name, n in parts.items():
        print(f"  wire: {name:<36}{n:>6} bytes {n * 10 / args.baud * 1000:>8.2f} ms")
    print(f"  lower bound (find + select + read): {counted} bytes -> {bound_ms:.2f} ms")
    transports = ("pty", "tcp") if args.transport == "both" else (args.transport,)
    print(f"{'transport':<12}{'median ms':>10}{'min ms':>10}{'max ms':>10}{'bound ms':>10}{'overhead':>10}")
    for transport in transports:
        times = run(transport, args.card, args.runs, args.baud, args.interval)
        median = statistics.median(times)
        print(f"{transport:<12}{median:>10.2f}{min(times):>10.2f}{max(times):>10.2f}{bound_ms:>10.2f}"
              f"{(median / bound_ms - 1) * 100:>9.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
