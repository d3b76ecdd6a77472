"""The kiosk's outbox on loopback: submission round trip and how fast a backlog drains.

Starts the reference platform (as bench/platform_roundtrip.py does), enrols a terminal,
then uses the kiosk's own code (kiosk.outbox.Outbox, kiosk.delivery.Deliverer,
kiosk.govclient.PlatformClient):

1. submission round trip as a citizen waits for it: encrypt and write the application
   to the outbox (SQLite WAL, synchronous=FULL), sign and POST it, mark it delivered;
2. a backlog, as after a network outage: N applications queued while the platform is away,
   then drained by one Deliverer.drain() call: applications per second.

    .venv/bin/python bench/outbox_drain.py [-n 200]

Prints figures only; asserts nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from platform_roundtrip import percentile, start, stop  # noqa: E402  (bench/ is the script's folder)

from govapi.signing import KeyPair  # noqa: E402
from kiosk.delivery import Deliverer  # noqa: E402
from kiosk.govclient import PlatformClient, new_idempotency_key  # noqa: E402
from kiosk.outbox import DELIVERED, Outbox  # noqa: E402

TERMINAL = "T-BENCH-OUTBOX"


def application() -> dict[str, object]:
    """What the kiosk sends for a social insurance record (synthetic resident 张三)."""
    return {
        "item_id": "social-insurance-record", "visit_id": uuid.uuid4().hex,
        "citizen": {"id_number": "110101199003070011", "name": "张三"},
        "answers": {"name": "张三", "id_number": "110101199003070011",
                    "social_security_number": "110101199003070011",
                    "record_type": "contribution_proof", "period": "12m"},
        "materials": [{"id": "id_card", "provided": "e_licence", "reference": "110101199003070011"}],
        "submitted_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="applications in each part")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp:
        data_dir = Path(tmp)
        (data_dir / "platform").mkdir()
        proc, url = start(data_dir / "platform", "sm2-sm3")
        try:
            code = subprocess.run([sys.executable, "-m", "govplatform", "enrolment-code", "--terminal-id", TERMINAL],
                                  cwd=ROOT, capture_output=True, text=True, check=True,
                                  env={"GOVPLATFORM_DATA_DIR": str(data_dir / "platform"),
                                       "PATH": "/usr/bin:/bin"}).stdout.strip()
            keys = KeyPair.generate()
            client = PlatformClient(url, TERMINAL, keys, timeout_s=10)
            client.enrol(code, "bench")
            outbox = Outbox(data_dir / "outbox" / "outbox.db", data_dir / "keys" / "outbox.key", TERMINAL)
            deliverer = Deliverer(outbox, client)

            # 1. one at a time, as citizens submit
            write_ms: list[float] = []
            total_ms: list[float] = []
            for _ in range(args.n):
                t0 = time.perf_counter()
                entry = outbox.enqueue("application", application(), new_idempotency_key())
                t1 = time.perf_counter()
                if deliverer.deliver(entry).state != DELIVERED:
                    raise SystemExit(f"not delivered: {outbox.get(entry.id).last_error}")
                t2 = time.perf_counter()
                write_ms.append((t1 - t0) * 1000)
                total_ms.append((t2 - t0) * 1000)

            # 2. a backlog queued during an outage, then drained
            t0 = time.perf_counter()
            for _ in range(args.n):
                outbox.enqueue("application", application(), new_idempotency_key())
            queued_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            delivered = 0
            while outbox.due():
                delivered += deliverer.drain()
            drain_s = time.perf_counter() - t0
            counts = outbox.counts()
            outbox.close()
        finally:
            stop(proc)

    print(f"kiosk outbox on loopback, {args.n} applications per part (SM2-SM3, SQLite WAL on both sides):")
    print(f"  submission round trip  median {statistics.median(total_ms):6.1f} ms   "
          f"p95 {percentile(total_ms, 0.95):6.1f} ms   (outbox write median {statistics.median(write_ms):5.2f} ms)")
    print(f"  backlog queued         {args.n / queued_s:7.1f} applications/s written")
    print(f"  backlog drained        {delivered / drain_s:7.1f} applications/s delivered "
          f"({delivered} in {drain_s:.1f} s)")
    print(f"  outbox afterwards      {counts}")


if __name__ == "__main__":
    main()
