"""Reading social security cards through the real pcscd and vpcd. Prints; never asserts.

    .venv/bin/python bench/smartcard_read.py              # 20 rounds per card
    .venv/bin/python bench/smartcard_read.py --rounds 50

Virtual cards (devices/smartcard/cards) answer behind the real pcscd in a private network
namespace (devices.smartcard.pcscd_rig), and the real PcscReader reads them. Figures:

- insert -> card_placed: from the card side connecting (the card "inserted") to the driver's
  event with the holder read, p50 / p95 / max, per card generation (profile);
- read_card() alone, called directly on a card already in: connect, select, every record
  (and the photo on a third-generation card), disconnect;
- remove -> card_removed;
- the APDU round trip of one READ RECORD through pyscard, pcscd and vpcd.

pcscd polls a virtual reader's presence every 0.4 s, so insert/remove figures are bounded
below by that poll (a USB CCID reader signals insertions itself and is faster).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.base import DeviceEvent  # noqa: E402
from devices.smartcard.emulator import FACTORY, acquire_rig, release_rig  # noqa: E402
from devices.smartcard.pcsc_driver import PcscReader, use_pcsc_socket  # noqa: E402

CARDS = ("zhang-san", "li-si-gen2", "liu-guizhi-gen1")


def figures(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rig = acquire_rig()
    use_pcsc_socket(rig.socket_path)
    reader = PcscReader("bench", reader=rig.reader_names()[0], pcsc_socket=rig.socket_path)
    events: list[tuple[float, DeviceEvent]] = []
    arrived = threading.Condition()

    def on_event(event: DeviceEvent) -> None:
        with arrived:
            events.append((time.monotonic(), event))
            arrived.notify_all()

    def wait_for(kind: str, after: int) -> tuple[float, DeviceEvent]:
        with arrived:
            arrived.wait_for(lambda: any(e.kind == kind for _, e in events[after:]), timeout=20)
            return next((t, e) for t, e in events[after:] if e.kind == kind)

    reader.subscribe(on_event)
    reader.open()
    try:
        print(f"pcscd bench up: {rig.socket_path}, reader {rig.reader_names()[0]}; {args.rounds} rounds per card")
        for card in CARDS:
            placed, removed, direct = [], [], []
            profile = ""
            for _ in range(args.rounds):
                mark = len(events)
                t0 = time.monotonic()
                rig.insert(0, FACTORY, card=card)
                t, event = wait_for("card_placed", mark)
                placed.append(t - t0)
                profile = event.data["identity"].profile
                t1 = time.perf_counter()
                reader.read_card().wipe()
                direct.append(time.perf_counter() - t1)
                mark = len(events)
                t0 = time.monotonic()
                rig.remove(0)
                t, _ = wait_for("card_removed", mark)
                removed.append(t - t0)
            print(f"\n{card} ({profile})")
            print(f"  insert -> card_placed  {figures(placed)}")
            print(f"  read_card() alone      {figures(direct)}")
            print(f"  remove -> card_removed {figures(removed)}")
        from smartcard import scard

        mark = len(events)
        rig.insert(0, FACTORY, card="zhang-san")
        wait_for("card_placed", mark)
        hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        hr, card_handle, protocol = scard.SCardConnect(context, rig.reader_names()[0], scard.SCARD_SHARE_SHARED,
                                                       scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        pci = scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        select = list(bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF"))
        scard.SCardTransmit(card_handle, pci, select)
        times = []
        for _ in range(500):
            t0 = time.perf_counter()
            scard.SCardTransmit(card_handle, pci, [0x00, 0xB2, 0x07, 0x2C, 0x00])
            times.append(time.perf_counter() - t0)
        scard.SCardDisconnect(card_handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)
        print(f"\nREAD RECORD round trip (500): {figures(times)}")
        rig.remove(0)
    finally:
        reader.close()
        release_rig()
    return 0


if __name__ == "__main__":
    sys.exit(main())
